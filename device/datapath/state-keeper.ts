/**
 * `--state FILE` on the worker's side: the transmitq commits its counters (and the verifier's
 * flows) to the StateFile before each publish, the scheduler marks the commit published after
 * it, and the first transmitq start of the process continues from the commit the ring's
 * used.idx shows (state-file.ts says why that is exact).
 */
import { Counter } from '../counters.js';
import type { QueuePair } from '../queue-pair.js';
import type { Virtqueue } from '../virtqueue.js';
import type { StateFile } from './state-file.js';

/**
 * An injected fault, for the negative control of the restart accounting only (set in the
 * device's environment, never in normal use): with `--state`, the first burst that verifies a
 * frame loses one of them from the counts (transmitq.frames and verification.verified), though
 * its chain is completed to the driver like the others. The reconciliations of the restart
 * tests must then report a mismatch of one.
 */
export const FAULT_UNCOUNTED_VERIFIED_FRAME = 'ZCNIC_FAULT_UNCOUNTED_VERIFIED_FRAME';

/** What attaching did, for the control plane's log (a queueError message that is not an error). */
export interface StateEvent {
  readonly kind: 'stateFresh' | 'stateRestored';
  readonly detail: string;
}

export class StateKeeper {
  /** Whether this process has restored (or found nothing to restore): only its first transmitq start does. */
  private restored = false;
  /** FAULT_UNCOUNTED_VERIFIED_FRAME is armed and has not struck yet. */
  private uncountedVerifiedFrame = process.env[FAULT_UNCOUNTED_VERIFIED_FRAME] === '1';

  constructor(private readonly file: StateFile, private readonly counters: Float64Array) {}

  /**
   * Commits the counts before every publish of the pair's transmitq on `ring`; at the first
   * start of this process, first continues from the commit marked published, counting how far
   * the ring's used.idx moved since as completed elsewhere. Returns what the start found, once.
   */
  attach(pair: QueuePair, ring: Virtqueue): StateEvent | null {
    const event = this.restored ? null : this.restore(pair, ring);
    this.restored = true;
    this.commitBeforePublish(pair);
    return event;
  }

  /** After a transmit burst whose counts were committed: the commit is published. */
  markPublished(): void {
    this.file.markPublished();
  }

  close(): void {
    this.file.close();
  }

  private restore(pair: QueuePair, ring: Virtqueue): StateEvent {
    const counters = this.counters;
    const restored = this.file.restore(ring.publishedUsedIdx);
    if (!restored) return { kind: 'stateFresh', detail: `no commit in the state file is at or behind used.idx ${ring.publishedUsedIdx}: counting from zero` };
    counters.set(restored.counters);
    counters[Counter.txCompletedElsewhere]! += restored.completedElsewhere;
    if (restored.flows && pair.verifier) pair.verifier.loadFlows(restored.flows);
    return {
      kind: 'stateRestored',
      detail: `continuing from commit ${restored.generation} at used.idx ${restored.usedIdx} (the last published): ${counters[Counter.txFrames]} frames, ${counters[Counter.testFramesVerified]} verified so far; completedElsewhere=${restored.completedElsewhere} (used.idx is ${ring.publishedUsedIdx}: chains the frontend completed itself while no device was attached, frames the device never saw; ${counters[Counter.txCompletedElsewhere]} in all)`,
    };
  }

  private commitBeforePublish(pair: QueuePair): void {
    const counters = this.counters;
    const file = this.file;
    const saveFlows = (into: Float64Array): void => pair.verifier!.saveFlows(into);
    let verifiedBefore = counters[Counter.testFramesVerified]!;
    pair.tx!.beforePublish = (ring) => {
      if (this.uncountedVerifiedFrame && counters[Counter.testFramesVerified]! > verifiedBefore) {
        this.uncountedVerifiedFrame = false;
        counters[Counter.testFramesVerified]!--;
        counters[Counter.txFrames]!--;
      }
      verifiedBefore = counters[Counter.testFramesVerified]!;
      file.commit(ring.nextUsedIdx, counters, pair.verifier ? saveFlows : null);
    };
  }
}
