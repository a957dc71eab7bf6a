/** What the control plane and a datapath worker say to each other (structured-clone messages). */
import type { FeatureWord, MemoryRegion } from 'vfio-user-ts';
import type { PortOptions } from '../ports/port.js';
import type { LinearHeaderRefusal } from '../transmit-queue.js';
import type { RingLayout, VringAddresses } from '../virtqueue.js';
import type { ZeroCopyMapSpec } from '../zero-copy-map.js';

export type DatapathMode = 'kick' | 'poll';

/** Given to the worker at creation. */
export interface DatapathWorkerData {
  readonly counters: SharedArrayBuffer;
  /** The queue pairs this worker serves (pair k = receiveq 2k, transmitq 2k+1). */
  readonly pairs: readonly number[];
  readonly mode: DatapathMode;
  readonly port: PortOptions;
  readonly pcapPath: string | null;
  /** Verify test frames on the transmitq. */
  readonly verify: boolean;
  /** Commit the transmitq's counts to this file with every burst (state-file.ts); one queue pair. */
  readonly statePath?: string | null;
}

export interface QueueStart {
  readonly queue: number;
  readonly addresses: VringAddresses;
  /** First avail index to read (SET_VRING_BASE). */
  readonly base: number;
  readonly kickFd: number;
  /** -1 when the frontend gave no call fd (it polls). */
  readonly callFd: number;
  /** The negotiated features, all 64 bits (a bigint clones like any primitive). */
  readonly features: FeatureWord;
  /** The frontend's inflight region for this queue (see VirtqueueSetup.inflight), or null. */
  readonly inflight?: { readonly fd: number; readonly mapOffset: number; readonly mapSize: number; readonly queueOffset: number } | null;
}

/** Seed 000's two device-side questions: does a strict NIC refuse the layout, was it zero copy. */
export interface TxPolicy {
  readonly requireLinearHeader: boolean;
  /**
   * What a refusal does (transmit-queue.ts); absent: DEFAULT_LINEAR_HEADER_REFUSAL. Leaving
   * `stall` (strict off, which every test's begin asks for, or complete-empty) ends a stall.
   */
  readonly linearHeaderRefusal?: LinearHeaderRefusal;
  readonly zeroCopyMap: ZeroCopyMapSpec | null;
}

export type ToDatapath =
  | { readonly type: 'memory'; readonly regions: readonly MemoryRegion[] }
  | { readonly type: 'start'; readonly start: QueueStart }
  | { readonly type: 'stop'; readonly queue: number }
  | { readonly type: 'port'; readonly port: PortOptions }
  /** Turns verification on or off; either way its per-flow state starts afresh. */
  | { readonly type: 'verify'; readonly on: boolean }
  /** What the transmit side enforces and proves (see TxPolicy). */
  | { readonly type: 'txPolicy'; readonly policy: TxPolicy }
  | { readonly type: 'shutdown' };

export type FromDatapath =
  | { readonly type: 'ready' }
  /** Reply to 'memory' once mapped, or why it could not be. */
  | { readonly type: 'memoryMapped'; readonly error: string | null }
  /** Reply to 'start': the layout of the rings now running, or why they cannot be used. */
  | { readonly type: 'started'; readonly queue: number; readonly result: { readonly layout: RingLayout } | { readonly error: string } }
  /** Reply to 'stop': where the driver should resume (GET_VRING_BASE). */
  | { readonly type: 'stopped'; readonly queue: number; readonly base: number }
  | { readonly type: 'portSet' }
  | { readonly type: 'verifySet' }
  | { readonly type: 'txPolicySet' }
  | { readonly type: 'queueError'; readonly queue: number; readonly kind: string; readonly detail: string; readonly fatal: boolean }
  | { readonly type: 'shutDown' };

/**
 * The `kind` of the queueError a worker sends when guest memory lost pages under its mappings
 * (the frontend truncated a region's file): the control plane disconnects that frontend.
 */
export const GUEST_MEMORY_TRUNCATED = 'guestMemoryTruncated';
