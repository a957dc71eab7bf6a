/**
 * `reflect`: every transmitq frame comes back on the same pair's receiveq, unchanged (checksum
 * completed). Like a NIC in loopback, a frame with no receive buffer posted is dropped and
 * counted (receiveq.noBuffers): the transmit side never waits for the receive side.
 */
import { Counter } from '../counters.js';
import type { WireFrame } from '../tx-frame.js';
import { ServiceAgain, type FrameReceiver, type Port } from './port.js';

export class ReflectPort implements Port {
  constructor(private readonly receiver: FrameReceiver, private readonly counters: Float64Array) {}

  transmit(frame: WireFrame): void {
    if (!frame.linearize() || !this.receiver.receive(frame.linearSpace, 0, frame.length)) {
      this.counters[Counter.rxNoBuffers]!++;
    }
  }
  service(_now: number): number {
    return ServiceAgain.onEvent;
  }
}
