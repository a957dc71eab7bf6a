/**
 * Where frames go after the transmitq and come from before the receiveq. One port instance per
 * queue pair, living in the datapath worker that serves the pair.
 */
import type { ByteSpace, FeatureWord } from 'vfio-user-ts';
import type { TxFrame, WireFrame } from '../tx-frame.js';

/** The queue pair's receive side as a port sees it. */
export interface FrameReceiver {
  /**
   * Offers one frame to the receiveq. False: the driver has not posted buffers for it (nothing
   * consumed; the port is serviced again after the driver's next receiveq kick). `flags`
   * (NEEDS_CSUM with `csumStart` and `csumOffset`, or DATA_VALID; default none) go into the
   * virtio-net header: only for a driver that negotiated GUEST_CSUM. `gsoType`, `gsoSize` and
   * `hdrLen` (default none) make it a GSO frame (a tap's GSO and GRO output) for a driver that
   * negotiated GUEST_TSO4/TSO6: the receiveq drops and counts one of a type the driver did not.
   */
  receive(src: ByteSpace, srcOffset: number, length: number, flags?: number, csumStart?: number, csumOffset?: number, gsoType?: number, gsoSize?: number, hdrLen?: number): boolean;
}

/** When a port wants to be serviced again. */
export const ServiceAgain = {
  /** Nothing to send until something else happens (a transmitq frame, a control command). */
  onEvent: -1,
  /** Blocked until the driver posts receive buffers (its next receiveq kick). */
  whenBuffers: -2,
  /** As soon as possible (more work is ready now). */
  now: 0,
} as const;

export interface Port {
  /**
   * A frame from the transmitq, as it goes on the wire (a GSO frame's segments one by one);
   * `frame` is only valid during the call.
   */
  transmit(frame: WireFrame): void;
  /**
   * A port that can hand the offloads on (partial checksums, GSO frames) takes transmitq frames
   * here, as the driver sent them: header fields and all, a GSO frame whole; `frame` is only
   * valid during the call. The pcap and the verifier want wire frames: while either is on, the
   * device completes and segments, and frames come through transmit().
   */
  transmitWithHeader?(frame: TxFrame): void;
  /** The features the driver negotiated, when its queues start (or the port comes after). */
  setNegotiated?(features: FeatureWord): void;
  /**
   * Lets the port fill the receiveq. Returns a ServiceAgain value, or the
   * milliseconds after which it wants to be serviced (rate pacing).
   */
  service(now: number): number;
}

export type PortName = 'sink' | 'reflect' | 'gen' | 'tap' | 'wire';
export const portNames: readonly PortName[] = ['sink', 'reflect', 'gen', 'tap', 'wire'];

/** The tap interface of port `tap` unless told otherwise. */
export const DEFAULT_TAP = 'zc0';
/** What we accept as a tap name: a Linux interface name (IFNAMSIZ - 1 bytes), no '/' or blanks. */
export const TAP_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export interface GeneratorOptions {
  /** Frame length in bytes (60..65535). */
  readonly size: number;
  /** Frames to send; 0 = until stopped. */
  readonly count: number;
  /** Frames per second; 0 = as fast as the driver takes them. */
  readonly pps: number;
}

export interface PortOptions {
  readonly port: PortName;
  readonly gen: GeneratorOptions;
  /** The NIC's MAC (destination of generated frames). */
  readonly mac: string;
  /** Port `tap`: the host tap interface (default zc0). */
  readonly tap?: string;
  /**
   * Port `wire`: this device's end of the wire of each queue pair (index: the pair), fds it
   * inherited (zcnic device --wire-fds). Fixed for the device's life: without them port wire
   * cannot be chosen.
   */
  readonly wireFds?: readonly number[];
}
