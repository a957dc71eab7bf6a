/**
 * Counters that survive a SIGKILL (`zcnic device --state FILE`): the transmitq's counters and
 * the verifier's per-flow progress are committed to a file mapping with every burst, together
 * with the used.idx that publishes that burst, just before publishing it. A device started
 * again on the same file takes the newest commit whose used.idx is the ring's: if the killed
 * process died before it published its last burst, that commit does not match and the one
 * before it does; the frontend then hands those chains back (it resumes from used.idx), and
 * they are counted once, by the new process. So no frame is counted twice or lost from the
 * count, whatever instant the kill came at.
 *
 * Two slots, written alternately; a slot's generation is cleared first and written last, so a
 * slot half written by a dying process is never taken. One queue pair (one transmitq) per file.
 */
import { closeSync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { sys } from 'vfio-user-ts';
import { COUNTER_COUNT } from '../counters.js';
import { MAX_FLOWS } from '../frame-verifier.js';

const HEADER = 4; // generation, used.idx, flows saved (1) or not (0), spare
const SLOT = HEADER + COUNTER_COUNT + MAX_FLOWS;
const BYTES = Math.ceil((2 * SLOT * 8) / 4096) * 4096;

export interface Restored {
  readonly generation: number;
  readonly usedIdx: number;
  /**
   * Used elements published after the commit by someone else: QEMU completes (drops) a
   * transmitq's chains itself while its vhost-user backend is gone and the link is down. The
   * device never saw those frames.
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

  constructor(path: string) {
    const fd = openSync(path, 'a+');
    try {
      if (fstatSync(fd).size < BYTES) ftruncateSync(fd, BYTES);
      this.mapping = sys.mapShared(fd, 0, BYTES);
    } finally {
      closeSync(fd);
    }
    this.words = new Float64Array(this.mapping, 0, 2 * SLOT);
    this.generation = Math.max(this.words[0]!, this.words[SLOT]!);
  }

  /**
   * The commit to continue from, given the ring's used.idx now: the newest that matches it;
   * else, when used.idx is past both commits (the frontend completed chains itself while the
   * device was gone), the older one, with the difference as completedElsewhere: whether the
   * newest was published before the kill cannot be told then, so its frames are not claimed.
   * Null when no commit is at or behind used.idx (a fresh file, or another ring).
   */
  restore(usedIdx: number): Restored | null {
    const slots = [0, SLOT].filter((at) => this.words[at]! > 0).sort((a, b) => this.words[b]! - this.words[a]!);
    const behind = (at: number): number => (usedIdx - this.words[at + 1]!) & 0xffff;
    let chosen = slots.find((at) => behind(at) === 0);
    if (chosen === undefined) {
      const past = slots.filter((at) => behind(at) <= 0x8000);
      if (past.length === slots.length && past.length > 0) chosen = past[past.length - 1];
      else if (past.length > 0 && slots.length === 2 && behind(slots[0]!) > 0x8000) chosen = past[0];
    }
    if (chosen === undefined) return null;
    const at = chosen;
    const counters = this.words.slice(at + HEADER, at + HEADER + COUNTER_COUNT);
    const flows = this.words[at + 2] === 1 ? this.words.slice(at + HEADER + COUNTER_COUNT, at + SLOT) : null;
    return { generation: this.words[at]!, usedIdx: this.words[at + 1]!, completedElsewhere: behind(at), counters, flows };
  }

  /** Commits `counters` (and the verifier's flows) as the state once `usedIdx` is published. */
  commit(usedIdx: number, counters: Float64Array, saveFlows: ((into: Float64Array) => void) | null): void {
    const generation = this.generation + 1;
    const at = (generation % 2) * SLOT;
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
  }

  close(): void {
    sys.unmap(this.mapping);
  }
}
