/**
 * Verifies test frames (docs/test-frame.md) as they pass, per flow: every byte, plus loss,
 * duplication and reordering from the sequence numbers. Used on the transmitq (what the guest
 * sent) when verification is on. State is preallocated per flow on its first frame; checking a
 * frame allocates nothing.
 */
import type { ByteSpace } from 'vfio-user-ts';
import { Counter } from './counters.js';
import { TestFrameVerdict, verifyTestFrame } from './test-frame.js';

/** Sequence numbers remembered per flow, to tell a duplicate from a late frame. */
const WINDOW = 1 << 16;
export const MAX_FLOWS = 256;

export class FrameVerifier {
  /** Highest seq seen per flow, -1 before the first. */
  private readonly highest = new Float64Array(MAX_FLOWS).fill(-1);
  /** One bit per seq in the window, per flow; allocated on the flow's first frame. */
  private readonly seen: Array<Uint8Array | undefined> = new Array(MAX_FLOWS);
  private readonly result = { flow: 0, seq: 0 };

  constructor(private readonly counters: Float64Array) {}

  /** Writes the highest sequence number of every flow (-1: none yet) into `into` (MAX_FLOWS). */
  saveFlows(into: Float64Array): void {
    into.set(this.highest);
  }

  /**
   * Continues from flows saved by saveFlows (a device restarted after a kill): every number up
   * to a flow's highest counts as seen, so one arriving again is a duplicate.
   */
  loadFlows(from: Float64Array): void {
    for (let flow = 0; flow < MAX_FLOWS; flow++) {
      const highest = from[flow]!;
      this.highest[flow] = highest;
      if (highest >= 0) this.seen[flow] = new Uint8Array(WINDOW / 8).fill(0xff);
    }
  }

  check(space: ByteSpace, offset: number, length: number): void {
    const c = this.counters;
    const verdict = verifyTestFrame(space.view, offset, length, this.result);
    if (verdict === TestFrameVerdict.notATestFrame) {
      c[Counter.otherFrames]!++;
      return;
    }
    if (verdict === TestFrameVerdict.corrupt || this.result.flow >= MAX_FLOWS) {
      c[Counter.testFramesCorrupt]!++;
      return;
    }
    const { flow, seq } = this.result;
    let bits = this.seen[flow];
    if (!bits) bits = this.seen[flow] = new Uint8Array(WINDOW / 8);
    const highest = this.highest[flow]!;
    const slot = seq % WINDOW;
    const mask = 1 << (slot & 7);
    if (seq > highest) {
      // Forget the slots the window slides past, then count the skipped numbers as gaps.
      for (let s = Math.max(highest + 1, seq - WINDOW + 1); s < seq; s++) bits[(s % WINDOW) >> 3]! &= ~(1 << (s % WINDOW & 7));
      c[Counter.testFrameGaps]! += seq - highest - 1;
      this.highest[flow] = seq;
    } else if (seq <= highest - WINDOW) {
      // Older than the window remembers: taken as late (it fills a gap), not as a duplicate.
      c[Counter.testFramesOutOfOrder]!++;
      c[Counter.testFrameGaps]!--;
      c[Counter.testFramesVerified]!++;
      return;
    } else if ((bits[slot >> 3]! & mask) !== 0) {
      c[Counter.testFramesDuplicate]!++;
      return;
    } else {
      c[Counter.testFramesOutOfOrder]!++;
      c[Counter.testFrameGaps]!--;
    }
    bits[slot >> 3]! |= mask;
    c[Counter.testFramesVerified]!++;
  }
}
