/**
 * How a queue reports what a driver did wrong: the queue counts it (shared counters, every
 * event), the reporter tells the control plane (rate limited, with context) and, for errors that
 * break the ring, moves the device towards DEVICE_NEEDS_RESET. Implemented by the datapath worker.
 *
 * A report carries numbers, not text: a hostile driver can post a bad chain per descriptor, and
 * building a line for each would cost a string per chain that the rate limit then throws away.
 * The line is built only for the reports that are sent (describeQueueError).
 */
import { ChainError, chainErrorNames } from './descriptor-chain.js';

/**
 * The kinds of driver error a queue reports: the descriptor chain errors keep their codes
 * (ChainError), the others follow. Each names the counter that counts it.
 */
export const QueueError = {
  ...ChainError,
  availIndexJump: 11,
  txWriteOnlyBuffer: 12,
  txHeaderTooShort: 13,
  txFrameTooLarge: 14,
  txGsoNotNegotiated: 15,
  txChecksumOutsideFrame: 16,
  linearHeaderViolation: 17,
  rxReadableBuffer: 18,
  rxBufferTooSmall: 19,
  /** Not an error: the driver reset the queue (VIRTIO_F_RING_RESET) and the device followed. */
  driverQueueReset: 20,
  /**
   * A negotiated GSO type whose virtio-net header does not fit the frame (virtio 1.2 5.1.6.2):
   * each frame is dropped, as tun refuses it (virtio_net_hdr_to_skb), and the queue goes on.
   * Contiguous, in the order TransmitQueue checks them; counted at Counter.gsoHeaderErrors.
   */
  txGsoWithoutChecksum: 21,
  txGsoWrongNetworkProtocol: 22,
  txGsoMalformedHeaders: 23,
  txGsoWrongTransport: 24,
  txGsoBadChecksumOffsets: 25,
  txGsoBadHeaderLength: 26,
  txGsoBadSegmentSize: 27,
  /**
   * UDP_L4 (USO) only: more than UDP_GSO_MAX_SEGMENTS datagrams in one GSO frame, which Linux's
   * tun refuses (virtio_net_hdr_to_skb: payload > gso_size * UDP_MAX_SEGMENTS) and no Linux
   * sender makes (udp_send_skb refuses it with EINVAL). TCP has no such limit.
   */
  txGsoTooManySegments: 28,
} as const;
export type QueueErrorKind = (typeof QueueError)[keyof typeof QueueError];

/** Kind names by code (chainErrorNames first: the codes are shared). */
export const queueErrorNames: readonly string[] = [...chainErrorNames, ...Object.keys(QueueError).slice(chainErrorNames.length)];
export const QUEUE_ERROR_KINDS = queueErrorNames.length;
/** The GSO header kinds, txGsoWithoutChecksum first (Counter.gsoHeaderErrors + kind - this). */
export const FIRST_GSO_HEADER_ERROR = QueueError.txGsoWithoutChecksum;
export const gsoHeaderErrorNames: readonly string[] = queueErrorNames.slice(FIRST_GSO_HEADER_ERROR, QueueError.txGsoTooManySegments + 1);

export interface QueueErrorReporter {
  /**
   * `fatal` means the ring can no longer be trusted and the queue has stopped (the spec's
   * DEVICE_NEEDS_RESET, 2.1.2). `head` and `a`..`c` are the context describeQueueError prints.
   */
  queueError(queue: number, kind: QueueErrorKind, fatal: boolean, head: number, a: number, b: number, c: number): void;
}

/** The log line of a report (see QueueErrorReporter.queueError for the numbers). */
export function describeQueueError(kind: QueueErrorKind, head: number, a: number, b: number, c: number): string {
  switch (kind) {
    case QueueError.availIndexJump:
      return `avail.idx is more than the queue size (${a}) ahead of ${b}`;
    case QueueError.txWriteOnlyBuffer:
      return `head ${head}: ${a} device-writable bytes in a transmit chain; dropped`;
    case QueueError.txHeaderTooShort:
      return `head ${head}: ${a} bytes, the virtio-net header alone is ${b}; dropped`;
    case QueueError.txFrameTooLarge:
      return `head ${head}: a ${a}-byte frame, at most ${b}; dropped`;
    case QueueError.txGsoNotNegotiated:
      return `head ${head}: gso_type 0x${a.toString(16)}, which no negotiated feature allows (HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_USO; legacy UFO is never offered; virtio 1.2 5.1.6.2); dropped`;
    case QueueError.txChecksumOutsideFrame:
      return `head ${head}: NEEDS_CSUM with csum_start ${a} and csum_offset ${b} outside the ${c}-byte frame; dropped`;
    case QueueError.linearHeaderViolation:
      return `head ${head}: the first buffer holds ${a} bytes, not the ${b}-byte virtio-net header and the Ethernet header; completed with length 0, ${c === 1 ? 'and the queue takes no more chains until the device is reset (an error CQE, the send queue in error)' : 'and the queue goes on (a silent drop)'}`;
    case QueueError.rxReadableBuffer:
      return `head ${head}: ${a} device-readable bytes in a receive chain`;
    case QueueError.rxBufferTooSmall:
      return c === 1
        ? `head ${head}: ${a} bytes cannot hold the ${b}-byte header`
        : `head ${head}: ${a} bytes for a ${b}-byte frame without mergeable buffers; dropped`;
    case QueueError.txGsoWithoutChecksum:
      return `head ${head}: gso_type 0x${a.toString(16)} without NEEDS_CSUM (a GSO frame's checksum is partial, completed per segment); dropped`;
    case QueueError.txGsoWrongNetworkProtocol:
      return `head ${head}: gso_type 0x${a.toString(16)} on a frame of EtherType 0x${b.toString(16)}, IP version ${c}; dropped`;
    case QueueError.txGsoMalformedHeaders:
      return `head ${head}: gso_type 0x${a.toString(16)}: the IP and transport headers do not parse inside the ${b}-byte frame (IPv4 IHL below 5 or a fragment, TCP data offset below 5, or headers past the end); dropped`;
    case QueueError.txGsoWrongTransport:
      return `head ${head}: gso_type 0x${a.toString(16)} on IP protocol ${b}; dropped`;
    case QueueError.txGsoBadChecksumOffsets:
      return `head ${head}: GSO with csum_start ${a} and csum_offset ${b}, not the transport checksum (the transport header starts at ${c}); dropped`;
    case QueueError.txGsoBadHeaderLength:
      return `head ${head}: GSO with hdr_len ${a}, below the ${b} bytes of Ethernet, IP and transport headers or past the ${c}-byte frame; dropped`;
    case QueueError.txGsoBadSegmentSize:
      return `head ${head}: GSO with gso_size ${a}: zero, or ${b} bytes of headers and one segment exceed ${c}; dropped`;
    case QueueError.txGsoTooManySegments:
      return `head ${head}: UDP GSO with gso_size ${a}: ${b} payload bytes are more than ${c} datagrams; dropped`;
    case QueueError.driverQueueReset:
      return `the driver reset the queue (VIRTIO_F_RING_RESET; ${a === 0 ? 'nothing published yet, the kick suppression field' : `used.idx ${a}`} rewritten to 0): restarted from avail index 0, ${b} used element(s) not yet published dropped`;
    default:
      return `head ${head} descriptor ${a} addr 0x${b.toString(16)} len ${c}`;
  }
}

