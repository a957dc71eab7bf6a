/** `sink`: counts (the queue does) and drops every frame. Never produces any. */
import type { WireFrame } from '../tx-frame.js';
import { ServiceAgain, type Port } from './port.js';

export class SinkPort implements Port {
  transmit(_frame: WireFrame): void {}
  service(_now: number): number {
    return ServiceAgain.onEvent;
  }
}
