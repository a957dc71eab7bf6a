/**
 * One receiveq/transmitq pair (queue indexes 2k and 2k+1) and its port: frames from the
 * transmitq go to the port (and the pcap), frames from the port go to the receiveq (and the
 * pcap). The datapath worker owns these and decides when each side runs.
 */
import type { ByteSpace } from 'vfio-user-ts';
import { Counter } from './counters.js';
import type { FrameVerifier } from './frame-verifier.js';
import type { PcapWriter } from './pcap-writer.js';
import type { Port } from './ports/port.js';
import type { FrameReceiver } from './ports/port.js';
import type { ReceiveQueue } from './receive-queue.js';
import { GsoSegmenter, type WireFrameSink } from './gso.js';
import { GsoType } from './net-header.js';
import type { TransmitQueue, TxFrameConsumer } from './transmit-queue.js';
import type { TxFrame, WireFrame } from './tx-frame.js';
import { PayloadVerdict, type ZeroCopyProof } from './zero-copy-map.js';

export class QueuePair implements TxFrameConsumer, WireFrameSink, FrameReceiver {
  rx: ReceiveQueue | null = null;
  tx: TransmitQueue | null = null;
  port: Port | null = null;
  /** Checks every transmitted test frame when verification is on. */
  verifier: FrameVerifier | null = null;
  /** The user buffer the zero-copy proof looks for transmitted (and, frames maps, received) bytes in, when set. */
  zeroCopy: ZeroCopyProof | null = null;
  /** performance.now() of the current burst, for pcap timestamps without a clock read per frame. */
  now = 0;
  /** Scheduler state: the pair should run again soon (work pending, or spinning before kicks). */
  wantsRun = false;
  /** Scheduler state: the pair is on the list for the next turn. */
  queued = false;
  /** Scheduler state: its last run moved frames (or served its port). */
  moved = false;
  /** performance.now() when the pair last moved a frame. */
  lastWorkAt = 0;

  private readonly segmenter: GsoSegmenter;

  constructor(readonly index: number, private readonly pcap: PcapWriter | null, private readonly counters: Float64Array) {
    this.segmenter = new GsoSegmenter(counters);
  }

  /**
   * A frame from the transmitq. The zero-copy proof looks at it as the driver sent it (a GSO
   * frame once, whole: its payload buffers are the user's); the pcap, the verifier and the port
   * see wire frames (a GSO frame's segments), but for a port that hands offloads on when neither
   * the pcap nor the verifier is on: it gets the frame as the driver sent it.
   */
  transmitted(frame: TxFrame): void {
    this.proveZeroCopy(frame);
    const port = this.port!;
    if (port.transmitWithHeader !== undefined && this.pcap === null && this.verifier === null) port.transmitWithHeader(frame);
    else if (frame.gsoType === GsoType.none) this.sendWire(frame);
    else if (frame.linearize()) this.segmenter.cut(frame, this);
  }

  private proveZeroCopy(frame: TxFrame): void {
    const proof = this.zeroCopy;
    if (proof === null) return;
    const counters = this.counters;
    if (proof.kind === 'frames') {
      counters[Counter.zeroCopyChecked]!++;
      const gpa = frame.contiguousAddress();
      if (gpa >= 0 && proof.holds(gpa, frame.length)) counters[Counter.zeroCopyProven]!++;
    } else if (frame.linearize()) {
      // The headers are read from the copy; the payload's addresses from the chain.
      const verdict = proof.check(frame);
      if (verdict !== PayloadVerdict.notInStream) {
        counters[Counter.zeroCopyChecked]!++;
        if (verdict === PayloadVerdict.proven) counters[Counter.zeroCopyPayloadProven]!++;
      }
    }
  }

  /** A frame as it goes on the wire: to the pcap, the verifier and the port. */
  sendWire(frame: WireFrame): void {
    if (this.pcap && frame.linearize()) this.pcap.write(frame.linearSpace, 0, frame.length, performance.timeOrigin + this.now);
    if (this.verifier && frame.linearize()) this.verifier.check(frame.linearSpace, 0, frame.length);
    this.port!.transmit(frame);
  }

  receive(src: ByteSpace, srcOffset: number, length: number, flags = 0, csumStart = 0, csumOffset = 0, gsoType: number = GsoType.none, gsoSize = 0, hdrLen = 0): boolean {
    const rx = this.rx;
    if (!rx || !rx.receive(src, srcOffset, length, flags, csumStart, csumOffset, gsoType, gsoSize, hdrLen)) return false;
    const proof = this.zeroCopy;
    if (proof !== null && proof.kind === 'frames') {
      const counters = this.counters;
      counters[Counter.rxZeroCopyChecked]!++;
      const gpa = rx.lastFrameAddress;
      if (gpa >= 0 && proof.holds(gpa, length)) counters[Counter.rxZeroCopyProven]!++;
    }
    if (this.pcap) this.pcap.write(src, srcOffset, length, performance.timeOrigin + this.now);
    return true;
  }
}
