/**
 * vhost-user wire constants and payload layouts (QEMU docs/interop/vhost-user.rst). Messages
 * are a 12-byte header (request, flags, size; little-endian u32s) and `size` payload bytes;
 * file descriptors travel as SCM_RIGHTS with the header.
 */

export const HEADER_SIZE = 12;
/** Largest payload we accept; the largest real one (a GET_CONFIG) is far below it. */
export const MAX_PAYLOAD = 4096;
export const VERSION = 0x1;

export const HeaderFlags = { versionMask: 0x3, reply: 0x4, needReply: 0x8 } as const;

/** Front-end requests (the numbers are the protocol's). */
export const Request = {
  getFeatures: 1,
  setFeatures: 2,
  setOwner: 3,
  resetOwner: 4,
  setMemTable: 5,
  setLogBase: 6,
  setLogFd: 7,
  setVringNum: 8,
  setVringAddr: 9,
  setVringBase: 10,
  getVringBase: 11,
  setVringKick: 12,
  setVringCall: 13,
  setVringErr: 14,
  getProtocolFeatures: 15,
  setProtocolFeatures: 16,
  getQueueNum: 17,
  setVringEnable: 18,
  sendRarp: 19,
  netSetMtu: 20,
  setBackendReqFd: 21,
  getInflightFd: 31,
  setInflightFd: 32,
  resetDevice: 34,
  setStatus: 39,
  getStatus: 40,
} as const;

export const requestNames: ReadonlyMap<number, string> = new Map(Object.entries(Request).map(([name, value]) => [value, name]));

export function requestName(request: number): string {
  return requestNames.get(request) ?? `request ${request}`;
}

/**
 * vhost-user's own bit in the device feature word (not virtio's): the backend offers it, and a
 * frontend that sets it may negotiate protocol features and enables vrings with SET_VRING_ENABLE.
 */
export const PROTOCOL_FEATURES_BIT = 30;

/** Protocol feature bits. */
export const ProtocolFeature = {
  mq: 0,
  logShmfd: 1,
  rarp: 2,
  replyAck: 3,
  netMtu: 4,
  backendReq: 5,
  inflightShmfd: 12,
  resetDevice: 13,
  status: 16,
} as const;

/** Bit 8 of the u64 of SET_VRING_KICK/CALL/ERR: no fd follows (the frontend polls). */
export const VRING_NOFD_MASK = 0x100;
export const VRING_INDEX_MASK = 0xff;

/** At most this many memory regions (CONFIGURE_MEM_SLOTS, which raises it, is not offered). */
export const MAX_MEM_REGIONS = 8;
/** A region in SET_MEM_TABLE: gpa, size, uva, mmap offset (u64 each). */
export const MEM_REGION_SIZE = 32;
/** SET_MEM_TABLE: u32 count, u32 padding, then the regions. */
export const MEM_TABLE_HEADER = 8;
/** SET_VRING_ADDR: u32 index, u32 flags, u64 desc, u64 used, u64 avail, u64 log. */
export const VRING_ADDR_SIZE = 40;

/**
 * The payload of GET_INFLIGHT_FD and SET_INFLIGHT_FD (and of GET_INFLIGHT_FD's reply): byte
 * offsets of u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, then 4 bytes of
 * padding to `size` (the C struct's natural size, what QEMU sends).
 */
export const InflightMessage = { mmapSize: 0, mmapOffset: 8, numQueues: 16, queueSize: 18, size: 24 } as const;

/** The fields of an inflight message (non-negative integers, mmapSize and mmapOffset u64 on the wire). */
export interface InflightMessageFields {
  readonly mmapSize: number;
  readonly mmapOffset: number;
  readonly queues: number;
  readonly queueSize: number;
}

/** An inflight message's payload, laid out as InflightMessage says. */
export function inflightMessage(fields: InflightMessageFields): Uint8Array {
  const bytes = new Uint8Array(InflightMessage.size);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(InflightMessage.mmapSize, BigInt(fields.mmapSize), true);
  view.setBigUint64(InflightMessage.mmapOffset, BigInt(fields.mmapOffset), true);
  view.setUint16(InflightMessage.numQueues, fields.queues, true);
  view.setUint16(InflightMessage.queueSize, fields.queueSize, true);
  return bytes;
}

/**
 * The split-ring inflight region of one queue (vhost-user.rst, "Inflight I/O tracking"):
 * u64 features, u16 version, u16 desc_num, u16 last_batch_head, u16 used_idx, then desc_num
 * descriptor states of 16 bytes (u8 inflight, 5 bytes padding, u16 next, u64 counter).
 * Queues follow each other, each rounded up to INFLIGHT_ALIGNMENT bytes.
 */
export const InflightSplit = {
  headerSize: 16,
  features: 0,
  version: 8,
  descNum: 10,
  lastBatchHead: 12,
  usedIdx: 14,
  descSize: 16,
  descInflight: 0,
  descNext: 6,
  descCounter: 8,
} as const;
export const INFLIGHT_ALIGNMENT = 64;
/** The `version` a backend writes into a fresh split inflight region (0 means not set up yet). */
export const INFLIGHT_SPLIT_VERSION = 1;

/** Bytes of one queue's split inflight region for `queueSize` descriptors. */
export function inflightQueueBytes(queueSize: number): number {
  const raw = InflightSplit.headerSize + InflightSplit.descSize * queueSize;
  return Math.ceil(raw / INFLIGHT_ALIGNMENT) * INFLIGHT_ALIGNMENT;
}
