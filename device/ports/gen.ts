/**
 * `gen`: injects test frames (docs/test-frame.md) into the receiveq: a given size, count and
 * rate, sequence numbers from 0. It never drops: when the driver has no buffers posted it waits
 * for the next receiveq kick, so every frame counted as sent reached the driver.
 *
 * The pattern of a test frame depends only on seq & 0xff, so 256 frames are built once and each
 * send patches the sequence fields of one of them: no per-frame work beyond that and the copy.
 */
import { byteSpace, type ByteSpace } from 'vfio-user-ts';
import { DEVICE_IP, GUEST_IP, ipv4SumWithoutIdAndChecksum, parseMac, patchTestFrameSeq, writeTestFrame } from '../test-frame.js';
import type { WireFrame } from '../tx-frame.js';
import { ServiceAgain, type FrameReceiver, type GeneratorOptions, type Port } from './port.js';

const TEMPLATES = 256;
/** Frames offered per service call, so the worker stays responsive. */
const BURST = 256;
/** The source MAC of generated frames: locally administered, "zc" in it. */
const GENERATOR_MAC = '02:7a:63:00:00:01';

export class GenPort implements Port {
  private readonly templates: ByteSpace;
  private readonly size: number;
  private readonly stride: number;
  private readonly headerSum: number;
  private readonly count: number;
  private readonly pps: number;
  private sent = 0;
  /** Rate pacing: when the next frame is due, in ms (performance.now() clock). */
  private nextDue = -1;

  constructor(private readonly receiver: FrameReceiver, options: GeneratorOptions, mac: string, flow: number) {
    this.size = options.size;
    this.count = options.count;
    this.pps = options.pps;
    // Frames start 4-byte aligned in the templates, so copies into guest buffers move words.
    this.stride = (options.size + 3) & ~3;
    this.templates = byteSpace(new ArrayBuffer(TEMPLATES * this.stride));
    const addresses = { dstMac: parseMac(mac), srcMac: parseMac(GENERATOR_MAC), srcIp: DEVICE_IP, dstIp: GUEST_IP };
    for (let i = 0; i < TEMPLATES; i++) writeTestFrame(this.templates.view, i * this.stride, options.size, addresses, flow, i);
    // Every template has the same IPv4 header but for its identification.
    this.headerSum = ipv4SumWithoutIdAndChecksum(this.templates.view, 14);
  }

  transmit(_frame: WireFrame): void {}

  service(now: number): number {
    const size = this.size;
    let budget = BURST;
    if (this.count > 0 && this.count - this.sent < budget) budget = this.count - this.sent;
    if (this.pps > 0) {
      // Catch up after a stall for at most 100 ms worth of frames, not in one long burst.
      if (this.nextDue < 0 || this.nextDue < now - 100) this.nextDue = now;
      if (now < this.nextDue) return this.nextDue - now;
      const due = Math.floor(((now - this.nextDue) * this.pps) / 1000) + 1;
      if (due < budget) budget = due;
    }
    let n = 0;
    for (; n < budget; n++) {
      const seq = this.sent + n;
      const offset = (seq & 0xff) * this.stride;
      patchTestFrameSeq(this.templates.view, offset, seq, this.headerSum);
      if (!this.receiver.receive(this.templates, offset, size)) break;
    }
    this.sent += n;
    if (this.pps > 0) this.nextDue += (n * 1000) / this.pps;
    if (this.count > 0 && this.sent >= this.count) return ServiceAgain.onEvent;
    if (n < budget) return ServiceAgain.whenBuffers;
    if (this.pps > 0) return Math.max(0, this.nextDue - now);
    return ServiceAgain.now;
  }

}
