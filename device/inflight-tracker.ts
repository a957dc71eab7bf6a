/**
 * One queue's split inflight region (vhost-user INFLIGHT_SHMFD, vhost-user.rst "Inflight I/O
 * tracking"), kept by the frontend across backend restarts: a head is marked inflight when the
 * device takes it and cleared when its used element is published, so a backend that was killed
 * can tell, when it starts again, which heads it had taken and not completed. The layout is the
 * protocol package's (InflightSplit); this module reads and writes it and nothing else does.
 *
 * Recovery relies on the device completing in order (docs/architecture.md, "Inflight regions"):
 * the heads still marked after a kill must be the avail slots from used.idx on.
 */
import { INFLIGHT_SPLIT_VERSION, InflightSplit } from 'vfio-user-ts';

/** The mapping of the frontend's region and where this queue's part starts in it. */
export interface InflightArea {
  readonly buffer: ArrayBuffer;
  readonly offset: number;
}

/** What starting a queue found in its inflight region. */
export interface InflightRecovery {
  /** The region was fresh (version 0): nothing to recover, it is set up now. */
  readonly fresh: boolean;
  /** Heads that were taken and not completed; they are served again, in the order taken. */
  readonly resubmitted: number;
  /** Used elements published after the region last recorded used.idx (the kill came between). */
  readonly publishedUnrecorded: number;
  /** The avail index the frontend gave (SET_VRING_BASE) and the one the device resumes from. */
  readonly baseGiven: number;
  readonly resumeAt: number;
}

/** The split ring as a starting device finds it, which the region is checked against. */
export interface RingAtStart {
  readonly size: number;
  /** used.idx and avail.idx as the ring shows them. */
  readonly usedIdx: number;
  readonly availIdx: number;
  /** The avail index the frontend gave (SET_VRING_BASE). */
  readonly base: number;
  /** The head of used element `index` (free-running u16; wrapped to the ring here). */
  usedHead(index: number): number;
  /** The head in avail slot `index` (free-running u16). */
  availHead(index: number): number;
}

/** The header's u16 fields as indexes of a Uint16Array over the queue's part. */
const VERSION_WORD = InflightSplit.version / 2;
const DESC_NUM_WORD = InflightSplit.descNum / 2;
const LAST_BATCH_HEAD_WORD = InflightSplit.lastBatchHead / 2;
const USED_IDX_WORD = InflightSplit.usedIdx / 2;
/** Byte of head 0's inflight mark; head h's is DESC_SIZE * h further. */
const FIRST_MARK = InflightSplit.headerSize + InflightSplit.descInflight;
const DESC_SIZE = InflightSplit.descSize;
/** Head 0's u64 counter as a u32 index (low word; the high word follows); head h's is DESC_WORDS32 * h further. */
const FIRST_COUNTER_WORD = (InflightSplit.headerSize + InflightSplit.descCounter) / 4;
const DESC_WORDS32 = InflightSplit.descSize / 4;
const TWO_TO_32 = 4294967296;

/** takenHeads' entry for a head out of range, which was never marked (heads are below MAX_QUEUE_SIZE). */
const NOT_MARKED = 0xffff;

export class InflightTracker {
  private readonly size: number;
  private readonly mask: number;
  private readonly bytes: Uint8Array;
  private readonly words16: Uint16Array;
  private readonly words32: Uint32Array;
  /** Next value of a descriptor's counter (the order heads were taken in). */
  private counter = 1;
  /**
   * The heads as the device took them (by avail slot) and as it completed them (by used slot),
   * in the device's own memory: the marks are set and cleared from these, never from the avail
   * and used rings, which the driver can rewrite between take and publish.
   */
  private readonly takenHeads: Uint16Array;
  private readonly usedHeads: Uint16Array;
  /** What attaching found (set by attach(), before anyone else sees the tracker). */
  recovery!: InflightRecovery;

  private constructor(area: InflightArea, size: number) {
    const bytesNeeded = InflightSplit.headerSize + DESC_SIZE * size;
    this.size = size;
    this.mask = size - 1;
    this.bytes = new Uint8Array(area.buffer, area.offset, bytesNeeded);
    this.words16 = new Uint16Array(area.buffer, area.offset, bytesNeeded / 2);
    this.words32 = new Uint32Array(area.buffer, area.offset, bytesNeeded / 4);
    this.takenHeads = new Uint16Array(size);
    this.usedHeads = new Uint16Array(size);
  }

  /**
   * Takes the region into use for `ring`; a string says why it cannot be. A fresh one (version 0)
   * is initialised. Otherwise the previous backend may have died anywhere: used elements it
   * published after the region last recorded used.idx are completed (their marks cleared); the
   * heads still marked were taken and not completed, and are served again, once, in the order
   * they were taken: the device resumes reading the avail ring at used.idx (recovery.resumeAt),
   * whatever base the frontend gave.
   */
  static attach(area: InflightArea, ring: RingAtStart): InflightTracker | string {
    const bytesNeeded = InflightSplit.headerSize + DESC_SIZE * ring.size;
    if (area.offset % 8 !== 0 || area.offset + bytesNeeded > area.buffer.byteLength) return 'the inflight region is too small for the queue or misaligned';
    const tracker = new InflightTracker(area, ring.size);
    const found = tracker.words16[VERSION_WORD] === 0 ? tracker.initialise(ring) : tracker.recover(ring);
    if (typeof found === 'string') return found;
    tracker.recovery = found;
    return tracker;
  }

  private initialise(ring: RingAtStart): InflightRecovery {
    this.bytes.fill(0);
    this.words16[VERSION_WORD] = INFLIGHT_SPLIT_VERSION;
    this.words16[DESC_NUM_WORD] = this.size;
    this.words16[USED_IDX_WORD] = ring.usedIdx;
    return { fresh: true, resubmitted: 0, publishedUnrecorded: 0, baseGiven: ring.base, resumeAt: ring.base };
  }

  private recover(ring: RingAtStart): InflightRecovery | string {
    const words16 = this.words16;
    if (words16[VERSION_WORD] !== INFLIGHT_SPLIT_VERSION) return `inflight region version ${words16[VERSION_WORD]}, expected ${INFLIGHT_SPLIT_VERSION}`;
    if (words16[DESC_NUM_WORD] !== this.size) return `inflight region is for ${words16[DESC_NUM_WORD]} descriptors, the queue has ${this.size}`;
    const usedIdx = ring.usedIdx;
    const recorded = words16[USED_IDX_WORD]!;
    const publishedUnrecorded = (usedIdx - recorded) & 0xffff;
    if (publishedUnrecorded > this.size) return `used.idx ${usedIdx} is more than the queue size ahead of the inflight region's ${recorded}`;
    for (let i = 0; i < publishedUnrecorded; i++) this.clearMark(ring.usedHead(recorded + i));
    words16[USED_IDX_WORD] = usedIdx;
    const pending = this.markedInTakeOrder();
    const problem = this.checkInOrder(pending, ring);
    if (problem) return problem;
    return { fresh: false, resubmitted: pending.length, publishedUnrecorded, baseGiven: ring.base, resumeAt: usedIdx };
  }

  /** The heads still marked, in the order they were taken; the counter continues after the last. */
  private markedInTakeOrder(): Array<{ head: number; counter: number }> {
    const pending: Array<{ head: number; counter: number }> = [];
    let maxCounter = 0;
    for (let head = 0; head < this.size; head++) {
      const at = FIRST_COUNTER_WORD + DESC_WORDS32 * head;
      const counter = this.words32[at]! + this.words32[at + 1]! * TWO_TO_32;
      if (counter > maxCounter) maxCounter = counter;
      if (this.bytes[FIRST_MARK + DESC_SIZE * head] !== 0) pending.push({ head, counter });
    }
    this.counter = maxCounter + 1;
    return pending.sort((a, b) => a.counter - b.counter);
  }

  /**
   * Checks that the marked heads are the avail slots from used.idx on, in that order (what
   * in-order completion leaves behind), and clears their marks: they are marked again when the
   * device takes them once more.
   */
  private checkInOrder(pending: ReadonlyArray<{ head: number }>, ring: RingAtStart): string | null {
    const { usedIdx, availIdx } = ring;
    const waiting = (availIdx - usedIdx) & 0xffff;
    if (pending.length > waiting) return `${pending.length} heads are inflight but avail.idx ${availIdx} is only ${waiting} past used.idx ${usedIdx}`;
    for (let k = 0; k < pending.length; k++) {
      const head = pending[k]!.head;
      const slotHead = ring.availHead(usedIdx + k);
      if (slotHead !== head) return `inflight head ${head} (taken ${k + 1}th) is not the head in avail slot ${(usedIdx + k) & 0xffff} (${slotHead}): completions were out of order`;
      this.bytes[FIRST_MARK + DESC_SIZE * head] = 0;
    }
    return null;
  }

  /** The device took `head` from avail `slot` (already wrapped); unchecked, hence NOT_MARKED. */
  take(slot: number, head: number): void {
    if (head >= this.size) {
      this.takenHeads[slot] = NOT_MARKED;
      return;
    }
    this.takenHeads[slot] = head;
    // Counter first, then the mark: a mark never comes with a stale counter.
    const at = FIRST_COUNTER_WORD + DESC_WORDS32 * head;
    const counter = this.counter++;
    this.words32[at] = counter % TWO_TO_32;
    this.words32[at + 1] = Math.floor(counter / TWO_TO_32);
    this.bytes[FIRST_MARK + DESC_SIZE * head] = 1;
  }

  /** The device gives back the `count` heads taken before avail index `nextAvailIdx`. */
  untake(nextAvailIdx: number, count: number): void {
    for (let i = 1; i <= count; i++) {
      const head = this.takenHeads[(nextAvailIdx - i) & this.mask]!;
      if (head !== NOT_MARKED) this.bytes[FIRST_MARK + DESC_SIZE * head] = 0;
    }
  }

  /** The device recorded `head` as used element `slot` (already wrapped), not yet published. */
  pushUsed(slot: number, head: number): void {
    this.usedHeads[slot] = head;
  }

  /**
   * The first step of a publish up to used.idx `next`, before the ring's used.idx is stored: the
   * spec's order is last_batch_head, then used.idx, then the marks, then the region's used_idx
   * (published()). A kill anywhere in between is undone at the next start (attach).
   */
  beforePublish(next: number): void {
    this.words16[LAST_BATCH_HEAD_WORD] = this.usedHeads[(next - 1) & this.mask]!;
  }

  /** The used elements `old`..`old + count - 1` are published: their heads are no longer inflight. */
  published(old: number, count: number): void {
    for (let i = 0; i < count; i++) this.clearMark(this.usedHeads[(old + i) & this.mask]!);
    Atomics.store(this.words16, USED_IDX_WORD, (old + count) & 0xffff);
  }

  /** The driver reset the ring: nothing is inflight and nothing was published. */
  clearAll(): void {
    for (let head = 0; head < this.size; head++) this.bytes[FIRST_MARK + DESC_SIZE * head] = 0;
    Atomics.store(this.words16, USED_IDX_WORD, 0);
  }

  private clearMark(head: number): void {
    if (head < this.size) this.bytes[FIRST_MARK + DESC_SIZE * head] = 0;
  }
}
