/**
 * Counters that survive a SIGKILL (`zcnic device --state FILE`): the transmitq's counters and
 * the verifier's per-flow progress are committed to a file mapping with every burst, together
 * with the used.idx that publishes that burst, just before publishing it; just after publishing
 * it, the device marks that commit as published. A device started again on the same file takes
 * the commit marked published: if the killed process died between committing its last burst
 * and publishing it, the mark still names the commit before, the frontend hands those chains
 * back (it resumes from used.idx), and they are counted once, by the new process.
 *
 * Whatever moved the ring's used.idx past the published commit while no device was attached
 * is counted as completedElsewhere: QEMU completes (drops) a transmitq's chains itself while
 * its vhost-user backend is gone and the link is down. It is measured on the ring (used.idx at
 * the new start minus the used.idx the last device published), never derived from the counts
 * it is reconciled with. One window is left: a kill between the store of used.idx and the store
 * of the mark (two stores apart) counts the last burst as completed elsewhere.
 *
 * Two slots, written alternately, never the one the mark names; a slot's generation is cleared
 * first and written last, so a slot half written by a dying process is never taken. One queue
 * pair (one transmitq) per file.
 */
import { closeSync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { sys } from 'vfio-user-ts';
import { COUNTER_COUNT } from '../counters.js';
import { MAX_FLOWS } from '../frame-verifier.js';

const HEADER = 4; // generation, used.idx, flows saved (1) or not (0), spare
const SLOT = HEADER + COUNTER_COUNT + MAX_FLOWS;
/** After both slots: the generation of the commit whose used.idx was published (0: none yet). */
const PUBLISHED = 2 * SLOT;
const WORDS = PUBLISHED + 1;
const BYTES = Math.ceil((WORDS * 8) / 4096) * 4096;

export interface Restored {
  readonly generation: number;
  /** used.idx as the last device published it. */
  readonly usedIdx: number;
  /**
   * Used elements published after the last device's publish by someone else (used.idx moved
   * while no device was attached): chains the device never saw.
   */
  readonly completedElsewhere: number;
  readonly counters: Float64Array;
  /** Highest sequence number per flow (-1: none), or null when verification was off. */
  readonly flows: Float64Array | null;
}

export class StateFile {
  private readonly words: Float64Array;
  private readonly mapping: ArrayBuffer;
  private generation = 0;
  /** The generation this process committed last (0: none yet), marked once published. */
  private committed = 0;

  constructor(path: string) {
    const fd = openSync(path, 'a+');
    try {
      if (fstatSync(fd).size < BYTES) ftruncateSync(fd, BYTES);
      this.mapping = sys.mapShared(fd, 0, BYTES);
    } finally {
      closeSync(fd);
    }
    this.words = new Float64Array(this.mapping, 0, WORDS);
    this.generation = Math.max(this.words[0]!, this.words[SLOT]!);
  }

  /**
   * The commit to continue from, given the ring's used.idx now: the one marked published, with
   * the used.idx movement since as completedElsewhere. Null when none is marked (a fresh file)
   * or the ring is behind it (another ring: used.idx only moves forward, less than half its
   * range while the device is away).
   */
  restore(usedIdx: number): Restored | null {
    const published = this.words[PUBLISHED]!;
    const at = [0, SLOT].find((slot) => published > 0 && this.words[slot] === published);
    if (at === undefined) return null;
    const completedElsewhere = (usedIdx - this.words[at + 1]!) & 0xffff;
    if (completedElsewhere >= 0x8000) return null;
    const counters = this.words.slice(at + HEADER, at + HEADER + COUNTER_COUNT);
    const flows = this.words[at + 2] === 1 ? this.words.slice(at + HEADER + COUNTER_COUNT, at + SLOT) : null;
    return { generation: published, usedIdx: this.words[at + 1]!, completedElsewhere, counters, flows };
  }

  /** Commits `counters` (and the verifier's flows) as the state once `usedIdx` is published. */
  commit(usedIdx: number, counters: Float64Array, saveFlows: ((into: Float64Array) => void) | null): void {
    const generation = this.generation + 1;
    // Never over the commit the mark names: it is the one to continue from until the next mark.
    const at = this.words[0] === this.words[PUBLISHED] ? SLOT : 0;
    const words = this.words;
    words[at] = 0;
    words[at + 1] = usedIdx;
    words.set(counters, at + HEADER);
    if (saveFlows) {
      saveFlows(words.subarray(at + HEADER + COUNTER_COUNT, at + SLOT));
      words[at + 2] = 1;
    } else {
      words[at + 2] = 0;
    }
    words[at] = generation;
    this.generation = generation;
    this.committed = generation;
  }

  /** Marks this process's last commit as published: call right after publishing its used.idx. */
  markPublished(): void {
    if (this.committed > 0) this.words[PUBLISHED] = this.committed;
  }

  close(): void {
    sys.unmap(this.mapping);
  }
}
