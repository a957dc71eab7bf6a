// What each side of a bench session runs and does per frame. Pure, so the pairing that the table
// describes is the pairing that runs, and both are unit-tested (test/bench/plan.test.ts).

import type { ForwardMode } from '../harness/dpdk/testpmd.js';
import type { DeviceStats } from '../harness/device-control.js';
import type { ZcnicPort } from '../harness/device-process.js';

/** transmitq: frontend sends, backend consumes. receiveq: backend produces, frontend receives. */
export type Direction = 'transmitq' | 'receiveq';
export type Peer = 'dpdk' | 'zcnic';

/**
 * What zcnic's sink does with each transmitq frame. `copy`: the sink runs with verification on,
 * so the device copies every frame out of guest memory into its scratch buffer (TxFrame.linearize)
 * and reads its headers (a test frame is checked byte by byte; testpmd's txonly frames are not
 * test frames and are counted as `verification.otherFrames`), the same work as DPDK's vhost PMD,
 * which copies every frame into an mbuf. `count`: only counts, the payload is never read.
 */
export type SinkWork = 'copy' | 'count';

/**
 * A heap-check load: the zcnic port and the frame size. `reflect` loops frames: the frontend
 * forwards (`io`) whatever it receives back to the device, seeded by `start tx_first`.
 */
export type HeapLoad = 'sink' | 'gen' | 'reflect';

export interface CaseSpec {
  direction: Direction;
  frameSize: number;
  /** zcnic's port in reflect mode, frontend in io mode: only for the heap check. */
  reflect?: boolean;
}

export interface SessionPlan {
  frontend: { mode: ForwardMode; txPktLen?: number; /** `start tx_first N` bursts instead of `start`. */ txFirstBursts?: number };
  /** Only for peer dpdk: testpmd's net_vhost side. */
  dpdk?: { mode: ForwardMode; txPktLen?: number };
  /** Only for peer zcnic. */
  zcnic?: { port: ZcnicPort; verify: boolean; genSize?: number };
}

/** Bursts of 32 frames that `start tx_first` puts in flight for a reflect loop. */
export const REFLECT_BURSTS = 8;

export function sessionPlan(spec: CaseSpec, peer: Peer, sinkWork: SinkWork): SessionPlan {
  const tx = spec.direction === 'transmitq';
  if (spec.reflect) {
    if (peer !== 'zcnic') throw new Error('a reflect session needs the zcnic device');
    return {
      frontend: { mode: 'io', txPktLen: spec.frameSize, txFirstBursts: REFLECT_BURSTS },
      zcnic: { port: 'reflect', verify: false },
    };
  }
  const frontend = tx ? { mode: 'txonly' as const, txPktLen: spec.frameSize } : { mode: 'rxonly' as const };
  if (peer === 'dpdk') {
    return { frontend, dpdk: tx ? { mode: 'rxonly' } : { mode: 'txonly', txPktLen: spec.frameSize } };
  }
  return {
    frontend,
    zcnic: tx ? { port: 'sink', verify: sinkWork === 'copy' } : { port: 'gen', verify: false, genSize: spec.frameSize },
  };
}

/** What the backend does per frame, in a few words, for the table. */
export function perFrameWork(direction: Direction, peer: Peer, sinkWork: SinkWork): string {
  if (direction === 'transmitq') {
    if (peer === 'dpdk') return 'rxonly: copies the frame into an mbuf, frees it';
    return sinkWork === 'copy'
      ? 'sink + verify: copies the frame into scratch, reads its headers'
      : 'sink: counts only, never reads the frame';
  }
  return peer === 'dpdk'
    ? 'txonly: writes headers into an mbuf, copies the frame into the buffer'
    : 'gen: patches seq + checksum in a template, copies the frame into the buffer';
}

/**
 * transmitq frames the device copied and inspected (verification off: 0). Every frame ends in
 * exactly one of these verification counters (out-of-order frames are also counted verified).
 */
export function framesInspected(s: { verification: Pick<DeviceStats['verification'], 'verified' | 'corrupt' | 'duplicates' | 'otherFrames'> }): number {
  const v = s.verification;
  return v.verified + v.corrupt + v.duplicates + v.otherFrames;
}

/**
 * Proof that a copying sink copied: null when every transmitq frame was inspected, else why not.
 */
export function copyShortfall(
  s: Parameters<typeof framesInspected>[0] & { verify: boolean; transmitq: { frames: number } },
): string | null {
  if (!s.verify) return 'the device ran with verification off: the sink did not copy the frames';
  const inspected = framesInspected(s);
  if (inspected !== s.transmitq.frames) {
    return `the sink inspected ${inspected} of ${s.transmitq.frames} transmitq frames: not every frame was copied`;
  }
  return null;
}

/** `sink:64,gen:1500` -> loads; throws on anything else. */
export function parseHeapLoads(text: string): { load: HeapLoad; frameSize: number }[] {
  return text.split(',').map((item) => {
    const m = /^\s*(sink|gen|reflect):(\d+)\s*$/.exec(item);
    if (!m) throw new RangeError(`heap load must be sink|gen|reflect:SIZE, got "${item}"`);
    const frameSize = Number(m[2]);
    if (frameSize < 60 || frameSize > 9000) throw new RangeError(`heap load frame size must be 60..9000, got ${frameSize}`);
    return { load: m[1] as HeapLoad, frameSize };
  });
}

export function heapCaseSpec(load: HeapLoad, frameSize: number): CaseSpec {
  switch (load) {
    case 'sink':
      return { direction: 'transmitq', frameSize };
    case 'gen':
      return { direction: 'receiveq', frameSize };
    case 'reflect':
      return { direction: 'transmitq', frameSize, reflect: true };
  }
}
