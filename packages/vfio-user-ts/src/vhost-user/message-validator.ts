/**
 * Decodes and validates one vhost-user message before anything acts on it: the payload size
 * must be exactly what the request carries, file descriptors must come only with the requests
 * that carry them and in the right number, indexes and sizes must be in range. Every check of
 * frontend-controlled message data lives here, so it can be reviewed and fuzzed in one place.
 */
import type { MemoryRegion } from '../core/memory-table.js';
import { isValidQueueSize, MAX_QUEUE_SIZE, type FeatureWord } from '../core/virtio.js';
import {
  InflightMessage,
  inflightQueueBytes,
  MEM_REGION_SIZE,
  MEM_TABLE_HEADER,
  Request,
  requestName,
  VRING_ADDR_SIZE,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
} from './protocol.js';

export interface RawMessage {
  readonly request: number;
  readonly flags: number;
  readonly payload: Uint8Array;
  readonly fds: readonly number[];
}

export type VhostUserMessage =
  /** Requests without payload. */
  | { readonly kind: 'empty'; readonly request: number }
  /** SET_FEATURES and SET_PROTOCOL_FEATURES: a feature word, all 64 bits. */
  | { readonly kind: 'features'; readonly request: number; readonly value: FeatureWord }
  /** Other requests whose payload is one u64 (status, MTU, RARP MAC), below 2^53. */
  | { readonly kind: 'u64'; readonly request: number; readonly value: number }
  | { readonly kind: 'memTable'; readonly regions: readonly MemoryRegion[] }
  /** SET_VRING_NUM / SET_VRING_BASE / GET_VRING_BASE / SET_VRING_ENABLE. */
  | { readonly kind: 'vringState'; readonly request: number; readonly index: number; readonly num: number }
  | { readonly kind: 'vringAddr'; readonly index: number; readonly flags: number; readonly desc: number; readonly used: number; readonly avail: number }
  /** SET_VRING_KICK / CALL / ERR: fd is -1 when the frontend said it sends none. */
  | { readonly kind: 'vringFd'; readonly request: number; readonly index: number; readonly fd: number }
  /** SET_BACKEND_REQ_FD, SET_LOG_FD: one fd. */
  | { readonly kind: 'fd'; readonly request: number; readonly fd: number }
  /** SET_LOG_BASE: recognised so it can be refused cleanly. */
  | { readonly kind: 'logBase'; readonly fd: number }
  /** GET_INFLIGHT_FD: the frontend's queue count and size (mmap size and offset are ignored). */
  | { readonly kind: 'getInflight'; readonly queues: number; readonly queueSize: number }
  /** SET_INFLIGHT_FD: a region laid out for `queues` queues of `queueSize` (size checked here). */
  | { readonly kind: 'setInflight'; readonly mmapSize: number; readonly mmapOffset: number; readonly queues: number; readonly queueSize: number; readonly fd: number };

export interface ValidationLimits {
  /** Number of virtqueues (2 per queue pair). */
  readonly queueCount: number;
  readonly maxRegions: number;
  /**
   * RING_PACKED was negotiated: a vring base is then two 16-bit halves (avail and used, each an
   * index in bits 0-14 and its wrap counter in bit 15), not a split ring's 16-bit avail index.
   */
  readonly packedRing?: boolean;
}

export type Validated = { readonly ok: true; readonly message: VhostUserMessage } | { readonly ok: false; readonly error: string };

const TWO_TO_32 = 4294967296;
/** The high word above which a u64 no longer fits a double exactly. */
const SAFE_HIGH_WORD = 0x200000;

const emptyRequests: ReadonlySet<number> = new Set([
  Request.getFeatures,
  Request.setOwner,
  Request.resetOwner,
  Request.getProtocolFeatures,
  Request.getQueueNum,
  Request.getStatus,
  Request.resetDevice,
]);
const featureRequests: ReadonlySet<number> = new Set([Request.setFeatures, Request.setProtocolFeatures]);
const u64Requests: ReadonlySet<number> = new Set([Request.setStatus, Request.netSetMtu, Request.sendRarp]);
const vringStateRequests: ReadonlySet<number> = new Set([Request.setVringNum, Request.setVringBase, Request.getVringBase, Request.setVringEnable]);
const vringFdRequests: ReadonlySet<number> = new Set([Request.setVringKick, Request.setVringCall, Request.setVringErr]);

/** Reads a little-endian u64 as a number; -1 when it does not fit exactly. */
function u64(view: DataView, at: number): number {
  const high = view.getUint32(at + 4, true);
  if (high >= SAFE_HIGH_WORD) return -1;
  return view.getUint32(at, true) + high * TWO_TO_32;
}

export function validateMessage(raw: RawMessage, limits: ValidationLimits): Validated {
  const { request, payload, fds } = raw;
  const name = requestName(request);
  const size = payload.length;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const fail = (why: string): Validated => ({ ok: false, error: `${name}: ${why}` });
  const expectSize = (wanted: number): string | null => (size === wanted ? null : `payload is ${size} bytes, expected ${wanted}`);
  const expectFds = (wanted: number): string | null => (fds.length === wanted ? null : `came with ${fds.length} file descriptors, expected ${wanted}`);
  const checkIndex = (index: number): string | null =>
    index < limits.queueCount ? null : `vring index ${index} is out of range (the device has ${limits.queueCount} queues)`;

  if (emptyRequests.has(request)) {
    const problem = expectSize(0) ?? expectFds(0);
    return problem ? fail(problem) : { ok: true, message: { kind: 'empty', request } };
  }
  if (featureRequests.has(request)) {
    const problem = expectSize(8) ?? expectFds(0);
    if (problem) return fail(problem);
    return { ok: true, message: { kind: 'features', request, value: view.getBigUint64(0, true) } };
  }
  if (u64Requests.has(request)) {
    const problem = expectSize(8) ?? expectFds(0);
    if (problem) return fail(problem);
    const value = u64(view, 0);
    if (value < 0) return fail('value has bits at or above 2^53 set');
    if (request === Request.netSetMtu && (value < 68 || value > 65535)) return fail(`MTU ${value} is outside 68..65535`);
    return { ok: true, message: { kind: 'u64', request, value } };
  }
  if (vringStateRequests.has(request)) {
    const problem = expectSize(8) ?? expectFds(0);
    if (problem) return fail(problem);
    const index = view.getUint32(0, true);
    const num = view.getUint32(4, true);
    const badIndex = checkIndex(index);
    if (badIndex) return fail(badIndex);
    if (request === Request.setVringNum && !isValidQueueSize(num)) {
      return fail(`queue size ${num} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
    }
    if (request === Request.setVringBase && limits.packedRing !== true && num > 0xffff) return fail(`base ${num} is beyond a split ring's 16-bit index`);
    if (request === Request.setVringEnable && num > 1) return fail(`enable must be 0 or 1, not ${num}`);
    return { ok: true, message: { kind: 'vringState', request, index, num } };
  }
  if (vringFdRequests.has(request)) {
    const problem = expectSize(8);
    if (problem) return fail(problem);
    const value = view.getUint32(0, true);
    const high = view.getUint32(4, true);
    const index = value & VRING_INDEX_MASK;
    if ((value & ~(VRING_INDEX_MASK | VRING_NOFD_MASK)) !== 0 || high !== 0) return fail(`unknown bits set in 0x${high.toString(16)}${value.toString(16).padStart(8, '0')}`);
    const badIndex = checkIndex(index);
    if (badIndex) return fail(badIndex);
    const noFd = (value & VRING_NOFD_MASK) !== 0;
    const fdProblem = expectFds(noFd ? 0 : 1);
    if (fdProblem) return fail(fdProblem);
    return { ok: true, message: { kind: 'vringFd', request, index, fd: noFd ? -1 : fds[0]! } };
  }
  switch (request) {
    case Request.setMemTable: {
      if (size < MEM_TABLE_HEADER) return fail(`payload is ${size} bytes, shorter than the region count`);
      const count = view.getUint32(0, true);
      if (count === 0) return fail('memory table has no regions');
      if (count > limits.maxRegions) return fail(`memory table has ${count} regions, at most ${limits.maxRegions} allowed`);
      const problem = expectSize(MEM_TABLE_HEADER + count * MEM_REGION_SIZE) ?? expectFds(count);
      if (problem) return fail(problem);
      const regions: MemoryRegion[] = [];
      for (let i = 0; i < count; i++) {
        const at = MEM_TABLE_HEADER + i * MEM_REGION_SIZE;
        const [guestPhysAddr, regionSize, userAddr, mmapOffset] = [u64(view, at), u64(view, at + 8), u64(view, at + 16), u64(view, at + 24)];
        if (guestPhysAddr < 0 || regionSize < 0 || userAddr < 0 || mmapOffset < 0) return fail(`region ${i} has a field at or above 2^53`);
        regions.push({ guestPhysAddr, size: regionSize, userAddr, mmapOffset, fd: fds[i]! });
      }
      return { ok: true, message: { kind: 'memTable', regions } };
    }
    case Request.setVringAddr: {
      const problem = expectSize(VRING_ADDR_SIZE) ?? expectFds(0);
      if (problem) return fail(problem);
      const index = view.getUint32(0, true);
      const badIndex = checkIndex(index);
      if (badIndex) return fail(badIndex);
      const [desc, used, avail] = [u64(view, 8), u64(view, 16), u64(view, 24)];
      if (desc < 0 || used < 0 || avail < 0) return fail('a ring address is at or above 2^53');
      return { ok: true, message: { kind: 'vringAddr', index, flags: view.getUint32(4, true), desc, used, avail } };
    }
    case Request.setBackendReqFd:
    case Request.setLogFd: {
      const problem = expectSize(0) ?? expectFds(1);
      return problem ? fail(problem) : { ok: true, message: { kind: 'fd', request, fd: fds[0]! } };
    }
    case Request.setLogBase: {
      const problem = expectSize(16) ?? expectFds(1);
      return problem ? fail(problem) : { ok: true, message: { kind: 'logBase', fd: fds[0]! } };
    }
    case Request.getInflightFd:
    case Request.setInflightFd: {
      const getting = request === Request.getInflightFd;
      const problem = expectSize(InflightMessage.size) ?? expectFds(getting ? 0 : 1);
      if (problem) return fail(problem);
      const mmapSize = u64(view, InflightMessage.mmapSize);
      const mmapOffset = u64(view, InflightMessage.mmapOffset);
      const queues = view.getUint16(InflightMessage.numQueues, true);
      const queueSize = view.getUint16(InflightMessage.queueSize, true);
      if (queues === 0 || queues > limits.queueCount) return fail(`${queues} queues, the device has 1..${limits.queueCount}`);
      if (!isValidQueueSize(queueSize)) return fail(`queue size ${queueSize} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
      if (getting) return { ok: true, message: { kind: 'getInflight', queues, queueSize } };
      if (mmapSize < 0 || mmapOffset < 0 || !Number.isSafeInteger(mmapSize + mmapOffset)) return fail('mmap size or offset is at or above 2^53');
      const needed = queues * inflightQueueBytes(queueSize);
      if (mmapSize < needed) return fail(`region of ${mmapSize} bytes is smaller than ${needed}, what ${queues} queues of ${queueSize} need`);
      if (mmapOffset % 4096 !== 0) return fail(`mmap offset 0x${mmapOffset.toString(16)} is not page aligned`);
      return { ok: true, message: { kind: 'setInflight', mmapSize, mmapOffset, queues, queueSize, fd: fds[0]! } };
    }
    default:
      return fail('unknown or unsupported request');
  }
}
