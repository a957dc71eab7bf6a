/**
 * One split virtqueue's rings (virtio 1.2 2.7): the available ring the driver fills, the used
 * ring the device fills, and the notification suppression of both sides (flags or EVENT_IDX).
 * It hands out head indexes; it does not read descriptors (DescriptorChain does).
 *
 * Guest memory is shared with another CPU, so the two indexes that publish work across the
 * boundary (avail.idx read, used.idx written) go through Atomics: Atomics.load keeps the JIT from
 * caching it across a loop, and Atomics.store is a full barrier, so the used elements written
 * before it are visible before the index that publishes them.
 */
import type { GuestMemory } from 'vfio-user-ts';
import { isValidQueueSize, MAX_QUEUE_SIZE, RingFlags } from 'vfio-user-ts';
import type { ChainErrorCode, DescriptorChain } from './descriptor-chain.js';
import { InflightTracker, type InflightArea, type InflightRecovery } from './inflight-tracker.js';
import type { RingLayout, Virtqueue, VringAddresses } from './virtqueue.js';

/** The inflight region a ring is started with (tests make their own). */
export type { InflightArea } from './inflight-tracker.js';

/** How far the event index is parked ahead when the device polls and wants no kicks at all. */
const PARKED_EVENT_DISTANCE = 0x8000;

export class Vring implements Virtqueue {
  readonly layout: RingLayout = 'split';
  readonly size: number;
  /** Region and offset of the descriptor table, for DescriptorChain. */
  readonly descRegion: number;
  readonly descOffset: number;
  /** avail: [flags, idx, ring[size], used_event] */
  private readonly avail: Uint16Array;
  /** used as u16: [flags, idx, ..., avail_event at 2 + 4 * size] */
  private readonly used16: Uint16Array;
  /** used as u32: element i is at 1 + 2i (id) and 2 + 2i (len). */
  private readonly used32: Uint32Array;
  /**
   * Where pushUsed records elements: the used ring itself, or, once completeInBatches() is on,
   * this device-side copy of its layout, from which a publish writes only the last element.
   */
  private usedLog: Uint32Array;
  private readonly mask: number;
  private readonly eventIdx: boolean;

  /** Next avail ring slot to read (free-running u16). */
  lastAvailIdx: number;
  /** used.idx as last published. */
  private usedIdx: number;
  /** Used elements written but not yet published. */
  private pendingUsed = 0;
  /** The inflight region's marks, or null when the frontend gave none. */
  private inflight: InflightTracker | null = null;
  /**
   * Whether a notification was sent since the queue started (vhost's signalled_used_valid).
   * Until then suppression is not trusted: a device killed between publishing used.idx and
   * signalling leaves a driver waiting for a call whose used_event (or NO_INTERRUPT) describes
   * a used.idx the new device never saw, so the first publish always notifies.
   */
  private signalled = false;
  /** What the device last wrote to its kick-suppression field (used.flags, or avail_event). */
  private suppressionWritten = 0;
  /** That field's index in used16: avail_event (after the used ring) with EVENT_IDX, else used.flags. */
  private readonly suppressionIndex: number;
  /**
   * VIRTIO_F_RING_RESET was negotiated: the driver may reset this queue on its own (virtio 1.2
   * 2.6.1). A vhost-user frontend tells the backend nothing of it (QEMU up to 10.2 acts on a
   * queue reset only for a tap peer), so the device infers it from the ring itself: Linux's
   * virtqueue_reset() keeps the ring memory and zeroes avail.idx and used.idx, and used.idx is
   * otherwise written by the device alone. See driverReset().
   */
  followsDriverResets = false;

  private constructor(memory: GuestMemory, addresses: VringAddresses, descRegion: number, avail: Uint16Array, used16: Uint16Array, used32: Uint32Array, eventIdx: boolean, base: number) {
    this.size = addresses.size;
    this.mask = addresses.size - 1;
    this.descRegion = descRegion;
    this.descOffset = memory.offsetIn(descRegion, addresses.descAddr);
    this.avail = avail;
    this.used16 = used16;
    this.used32 = used32;
    this.usedLog = used32;
    this.eventIdx = eventIdx;
    this.suppressionIndex = eventIdx ? 2 + 4 * addresses.size : 0;
    this.lastAvailIdx = base;
    this.usedIdx = used16[1]!;
  }

  /** What starting with an inflight region found; null without one. */
  get recovery(): InflightRecovery | null {
    return this.inflight?.recovery ?? null;
  }

  /**
   * Maps the rings of a queue; a string says why it cannot be (outside guest memory, misaligned,
   * bad size). `base` is the first avail index to read (SET_VRING_BASE).
   */
  static create(memory: GuestMemory, addresses: VringAddresses, eventIdx: boolean, base: number, inflight: InflightArea | null = null): Vring | string {
    const { size, descAddr, availAddr, usedAddr } = addresses;
    if (!isValidQueueSize(size)) return `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`;
    if (descAddr % 16 !== 0 || availAddr % 2 !== 0 || usedAddr % 4 !== 0) return 'ring addresses are not aligned as the spec requires (16/2/4)';
    const descRegion = memory.regionOfGuestRange(descAddr, 16 * size);
    if (descRegion < 0) return `descriptor table 0x${descAddr.toString(16)}+${16 * size} is outside guest memory`;
    const avail = memory.typedView(Uint16Array, availAddr, 3 + size);
    if (!avail) return `available ring 0x${availAddr.toString(16)} is outside guest memory`;
    const usedBytes = 6 + 8 * size;
    const used16 = memory.typedView(Uint16Array, usedAddr, usedBytes / 2);
    const used32 = memory.typedView(Uint32Array, usedAddr, 1 + 2 * size);
    if (!used16 || !used32) return `used ring 0x${usedAddr.toString(16)} is outside guest memory`;
    const ring = new Vring(memory, addresses, descRegion, avail, used16, used32, eventIdx, base & 0xffff);
    if (inflight) {
      const problem = ring.attachInflight(inflight);
      if (problem) return problem;
    }
    return ring;
  }

  /** Takes the inflight region into use (InflightTracker.attach) and resumes where it says. */
  private attachInflight(area: InflightArea): string | null {
    const used32 = this.used32;
    const avail = this.avail;
    const mask = this.mask;
    const tracker = InflightTracker.attach(area, {
      size: this.size,
      usedIdx: this.usedIdx,
      availIdx: avail[1]!,
      base: this.lastAvailIdx,
      usedHead: (index) => used32[1 + 2 * (index & mask)]!,
      availHead: (index) => avail[2 + (index & mask)]!,
    });
    if (typeof tracker === 'string') return tracker;
    this.inflight = tracker;
    this.lastAvailIdx = tracker.recovery.resumeAt;
    return null;
  }

  /**
   * How many heads the driver has made available since the last take, reading avail.idx once.
   * -1 when the driver claims more than the ring holds (a corrupt or hostile index).
   */
  availableCount(): number {
    const count = (Atomics.load(this.avail, 1) - this.lastAvailIdx) & 0xffff;
    return count > this.size ? -1 : count;
  }

  /**
   * Whether the driver reset the ring since the device last published: used.idx reads 0 where
   * the device had published something else; or, when it had published nothing (a queue that
   * broke on its first chain), the kick-suppression field (used.flags, or avail_event with
   * EVENT_IDX) reads 0 where the device wrote something else (parkKicks). The reset zeroes
   * both; otherwise only the device writes them. Only with followsDriverResets; without it a
   * rewrite is the driver's own corruption of its ring.
   */
  driverReset(): boolean {
    if (!this.followsDriverResets) return false;
    if (this.usedIdx !== 0) return Atomics.load(this.used16, 1) === 0;
    return this.suppressionWritten !== 0 && Atomics.load(this.used16, this.suppressionIndex) === 0;
  }

  /**
   * Starts the ring over after a driver's reset, as a fresh queue: the next avail slot is 0,
   * nothing is published, and the first publish notifies. Used elements recorded and not yet
   * published are dropped (their buffers went back to the driver with the reset); returns how
   * many. Inflight marks, if the frontend keeps a region, are cleared with them.
   */
  restartAfterDriverReset(): number {
    const dropped = this.pendingUsed;
    this.pendingUsed = 0;
    this.lastAvailIdx = 0;
    this.usedIdx = 0;
    this.signalled = false;
    this.suppressionWritten = 0;
    this.inflight?.clearAll();
    return dropped;
  }

  /** The avail index to resume from (GET_VRING_BASE of a split ring). */
  get resumeBase(): number {
    return this.lastAvailIdx;
  }

  take(chain: DescriptorChain): ChainErrorCode {
    return chain.resolve(this.takeHead());
  }

  /** The next available head (unchecked: DescriptorChain validates it). */
  takeHead(): number {
    const slot = this.lastAvailIdx & this.mask;
    const head = this.avail[2 + slot]!;
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    const inflight = this.inflight;
    if (inflight !== null) inflight.take(slot, head);
    return head;
  }

  /** Gives back the last `count` heads taken (a frame that did not fit after all). */
  untake(count: number): void {
    const inflight = this.inflight;
    if (inflight !== null) inflight.untake(this.lastAvailIdx, count);
    this.lastAvailIdx = (this.lastAvailIdx - count) & 0xffff;
  }

  /** used.idx as the next publishUsed() will set it. */
  get nextUsedIdx(): number {
    return (this.usedIdx + this.pendingUsed) & 0xffff;
  }

  /** used.idx as last published. */
  get publishedUsedIdx(): number {
    return this.usedIdx;
  }

  /** Records a used element; visible to the driver at the next publish. */
  pushUsed(head: number, length: number): void {
    const slot = (this.usedIdx + this.pendingUsed) & this.mask;
    const inflight = this.inflight;
    if (inflight !== null) inflight.pushUsed(slot, head);
    const log = this.usedLog;
    log[1 + 2 * slot] = head;
    log[2 + 2 * slot] = length;
    this.pendingUsed++;
  }

  /**
   * Batched completion (Virtqueue.completeInBatches): elements are recorded apart and a publish
   * writes the last one into the used slot of the first, used.idx advancing by all of them
   * (virtio 1.2, 2.7 "In-order use of descriptors"). Not with an inflight region, whose
   * recovery reads every published element's head from the used ring (InflightTracker.attach).
   */
  completeInBatches(): void {
    if (this.inflight === null && this.usedLog === this.used32) this.usedLog = new Uint32Array(this.used32.length);
  }

  /** Forgets the last `count` used elements recorded and not yet published. */
  unpushUsed(count: number): void {
    this.pendingUsed -= count;
  }

  /**
   * Publishes the used elements recorded since the last publish. Returns true when the driver
   * asked to be interrupted for them (EVENT_IDX: used_event crossed; else no NO_INTERRUPT flag).
   */
  publishUsed(): boolean {
    if (this.pendingUsed === 0) return false;
    const old = this.usedIdx;
    const count = this.pendingUsed;
    const next = (old + count) & 0xffff;
    const log = this.usedLog;
    if (log !== this.used32) {
      // The batch's one element, in the slot the driver reads next; written before used.idx.
      const from = (next - 1) & this.mask;
      const to = old & this.mask;
      this.used32[1 + 2 * to] = log[1 + 2 * from]!;
      this.used32[2 + 2 * to] = log[2 + 2 * from]!;
    }
    this.pendingUsed = 0;
    this.usedIdx = next;
    const inflight = this.inflight;
    if (inflight !== null) {
      // Around the used.idx store, in the order the spec gives (InflightTracker.beforePublish).
      inflight.beforePublish(next);
      Atomics.store(this.used16, 1, next);
      inflight.published(old, count);
    } else {
      Atomics.store(this.used16, 1, next);
    }
    if (!this.signalled) {
      this.signalled = true;
      return true;
    }
    if (this.eventIdx) {
      const usedEvent = Atomics.load(this.avail, 2 + this.size);
      // vring_need_event: notify if used_event lies in [old, next).
      return ((next - usedEvent - 1) & 0xffff) < ((next - old) & 0xffff);
    }
    return (Atomics.load(this.avail, 0) & RingFlags.availNoInterrupt) === 0;
  }

  /**
   * At start: whether to notify the driver now, before any publish. A ring whose used.idx is
   * not 0 has completions a previous device published, and it may have died before signalling
   * them; with nothing left to complete (a transmit ring the driver filled and now waits on),
   * no publish would ever come to notify for them. A spurious notification is harmless (the
   * driver finds nothing new); a lost one can stop the queue for good. A ring that wrapped to
   * used.idx 0 exactly is not notified here, only at its first publish.
   */
  notifyOnStart(): boolean {
    if (this.usedIdx === 0) return false;
    this.signalled = true;
    return true;
  }

  /**
   * Asks the driver to kick when it adds buffers after what we have taken. The caller must check
   * availableCount() once more afterwards: buffers added before this store are not kicked for.
   */
  enableKicks(): void {
    this.suppressionWritten = this.eventIdx ? this.lastAvailIdx : 0;
    Atomics.store(this.used16, this.suppressionIndex, this.suppressionWritten);
  }

  /**
   * Asks the driver not to kick (the device is busy or polling, or the ring broke). The value
   * written is never 0, so that a driver's reset, which zeroes it, shows (driverReset).
   */
  disableKicks(): void {
    const parked = (this.lastAvailIdx + PARKED_EVENT_DISTANCE) & 0xffff;
    this.suppressionWritten = this.eventIdx ? parked || 1 : RingFlags.usedNoNotify;
    this.used16[this.suppressionIndex] = this.suppressionWritten;
  }
}
