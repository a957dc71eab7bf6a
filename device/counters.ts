/**
 * The device's counters: one Float64Array per datapath worker, over a SharedArrayBuffer so the
 * control plane reads them while the worker runs, without messages. Float64 counts exactly up
 * to 2^53. Indexes are constants so the hot path is a plain typed-array increment.
 */
import { chainErrorNames } from './descriptor-chain.js';
import { gsoHeaderErrorNames } from './queue-errors.js';

/** Buckets of the descriptors-per-chain histogram, by upper bound. */
export const descriptorBuckets = [1, 2, 3, 4, 8, 16, Infinity] as const;
const bucketLabels = ['1', '2', '3', '4', '5-8', '9-16', '17+'];

/** Chain errors get one counter each, at chainErrors + code - 1. */
const chainErrorKinds = chainErrorNames.slice(1);

export const Counter = {
  txFrames: 0,
  txBytes: 1,
  rxFrames: 2,
  rxBytes: 3,
  rxBuffers: 4,
  /** Frames a port had for receiveq when the driver had posted no (or too few) buffers. */
  rxNoBuffers: 5,
  /** descriptorBuckets.length counters. */
  descriptorsPerChain: 6,
  indirectChains: 13,
  /** The first buffer holds the virtio-net header and nothing else. */
  vnetHeaderAlone: 14,
  /** The Ethernet header does not start in the buffer of the virtio-net header (skb_headlen == 0 and the like). */
  ethernetHeaderNotWithVnetHeader: 15,
  /** The frame (after the virtio-net header) spans more than one buffer. */
  frameSplitAcrossBuffers: 16,
  availIndexJump: 17,
  /** chainErrorKinds.length counters. */
  chainErrors: 18,
  txWriteOnlyBuffer: 18 + chainErrorKinds.length,
  txHeaderTooShort: 19 + chainErrorKinds.length,
  txFrameTooLarge: 20 + chainErrorKinds.length,
  rxReadableBuffer: 21 + chainErrorKinds.length,
  rxBufferTooSmall: 22 + chainErrorKinds.length,
  /** A gauge, not a count: the worker's V8 heap in use, sampled every second. */
  heapUsedBytes: 23 + chainErrorKinds.length,
  /** Test-frame verification on the transmitq (when on): see device/frame-verifier.ts. */
  testFramesVerified: 24 + chainErrorKinds.length,
  testFramesCorrupt: 25 + chainErrorKinds.length,
  testFramesDuplicate: 26 + chainErrorKinds.length,
  testFramesOutOfOrder: 27 + chainErrorKinds.length,
  /** Sequence numbers below a flow's highest that have not arrived (yet). */
  testFrameGaps: 28 + chainErrorKinds.length,
  /** Frames that are not test frames at all (ARP, IPv6, ...). */
  otherFrames: 29 + chainErrorKinds.length,
  /** Chains refused by the strict-layout emulation (headers not linear with the virtio-net header). */
  linearHeaderViolations: 30 + chainErrorKinds.length,
  /** The zero-copy proof (device/zero-copy-map.ts): frames checked, and found in the user buffer. */
  zeroCopyChecked: 31 + chainErrorKinds.length,
  zeroCopyProven: 32 + chainErrorKinds.length,
  /** Garbage collections in the worker: per-frame garbage would make these frequent under load. */
  collections: 33 + chainErrorKinds.length,
  /** Transmitq frames the port could not pass on (a tap whose queue is full or down). */
  portTxDropped: 34 + chainErrorKinds.length,
  /**
   * The zero-copy proof for paged frames (MSG_ZEROCOPY): frames with a payload buffer (not
   * the first) lying wholly in the user buffer's pages.
   */
  zeroCopyPayloadProven: 35 + chainErrorKinds.length,
  /**
   * Transmitq chains completed while no device was attached (--state: the ring's used.idx moved
   * past what the last device published; QEMU drops them itself while its backend is gone).
   */
  txCompletedElsewhere: 36 + chainErrorKinds.length,
  /**
   * Times a datapath worker found guest memory gone under its mapping (the frontend truncated
   * the region's file after SET_MEM_TABLE) and stopped its queues.
   */
  guestMemoryTruncated: 37 + chainErrorKinds.length,
  /** Transmit chains dropped for a gso_type no negotiated feature allows (all but GSO_NONE without --tso). */
  txGsoNotNegotiated: 38 + chainErrorKinds.length,
  /** Transmit chains dropped for NEEDS_CSUM offsets that put the checksum outside the frame. */
  txChecksumOutsideFrame: 39 + chainErrorKinds.length,
  /** Queue resets the driver made on its own (VIRTIO_F_RING_RESET) and the device followed. */
  driverQueueResets: 40 + chainErrorKinds.length,
  /** Used elements recorded and not yet published when such a reset came: dropped with it. */
  usedDroppedByQueueReset: 41 + chainErrorKinds.length,
  /**
   * The zero-copy proof on the receiveq: frames placed while a frames map is set, and those
   * whose first byte landed at a frame start of the user buffer (AF_XDP zero-copy receive: the
   * driver posts umem frames as receive buffers).
   */
  rxZeroCopyChecked: 42 + chainErrorKinds.length,
  rxZeroCopyProven: 43 + chainErrorKinds.length,
  /**
   * Transmit chains whose first buffer (the virtio-net header) lies at the same guest address
   * as the previous chain's: one header for every frame, as virtio_net's AF_XDP zero-copy
   * transmit maps once, where an skb carries a header of its own.
   */
  vnetHeaderSharedWithPrevious: 44 + chainErrorKinds.length,
  /** GSO frames taken (HOST_TSO4, HOST_TSO6, HOST_USO), by gso_type. */
  gsoTcp4Frames: 45 + chainErrorKinds.length,
  gsoTcp6Frames: 46 + chainErrorKinds.length,
  gsoUdpL4Frames: 47 + chainErrorKinds.length,
  /** Wire frames the device cut GSO frames into. */
  gsoSegments: 48 + chainErrorKinds.length,
  /** A maximum, not a count: the longest GSO frame taken (bytes after the virtio-net header). */
  gsoLargestFrame: 49 + chainErrorKinds.length,
  /** GSO frames placed on the receiveq (GUEST_TSO4, GUEST_TSO6, GUEST_USO4/6), by gso_type. */
  rxGsoTcp4Frames: 50 + chainErrorKinds.length,
  rxGsoTcp6Frames: 51 + chainErrorKinds.length,
  rxGsoUdpL4Frames: 52 + chainErrorKinds.length,
  /** A maximum, not a count: the longest GSO frame placed on the receiveq. */
  rxGsoLargestFrame: 53 + chainErrorKinds.length,
  /**
   * GSO frames a port produced of a type the driver did not negotiate (or turned off), dropped
   * before the receiveq: the device never hands a driver a GSO type it cannot take.
   */
  rxGsoNotNegotiated: 54 + chainErrorKinds.length,
  /** gsoHeaderErrorNames.length counters, at gsoHeaderErrors + kind - FIRST_GSO_HEADER_ERROR. */
  gsoHeaderErrors: 55 + chainErrorKinds.length,
} as const;

export const COUNTER_COUNT = Counter.gsoHeaderErrors + gsoHeaderErrorNames.length;

export function createCounters(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(COUNTER_COUNT * Float64Array.BYTES_PER_ELEMENT));
}

/** The counters as the stats JSON shows them (the sum over all workers). */
export interface DeviceCounters {
  transmitq: { frames: number; bytes: number };
  receiveq: { frames: number; bytes: number; buffers: number; noBuffers: number };
  errors: Record<string, number>;
  /** Transmitted frames checked against the zero-copy map, and those found in the user buffer. */
  /** payloadProven: frames with a payload buffer inside the user buffer (paged skbs, MSG_ZEROCOPY). */
  /** rxChecked, rxProven: received frames checked against a frames map, and placed at a frame start of it. */
  zeroCopy: { checked: number; proven: number; payloadProven: number; rxChecked: number; rxProven: number };
  /** GSO frames taken by type, the wire frames cut from them, and the longest GSO frame (a maximum). */
  gso: { frames: { tcp4: number; tcp6: number; udpL4: number }; segments: number; largestFrame: number };
  /**
   * GSO frames placed on the receiveq by type, the longest (a maximum), and those of a type the
   * driver did not negotiate, dropped before it.
   */
  rxGso: { frames: { tcp4: number; tcp6: number; udpL4: number }; largestFrame: number; notNegotiated: number };
  /** Driver queue resets followed (VIRTIO_F_RING_RESET), and used elements they dropped. */
  queueResets: { followed: number; usedDropped: number };
  /** Frames the port dropped on the way out (port tap: the tap's queue full or the tap down). */
  portTxDropped: number;
  /** Transmitq chains completed while no device was attached (see Counter.txCompletedElsewhere). */
  txCompletedElsewhere: number;
  /** Test frames the device checked on the transmitq (all zero while verification is off). */
  verification: { verified: number; corrupt: number; duplicates: number; outOfOrder: number; gaps: number; otherFrames: number };
  chainShapes: {
    descriptorsPerChain: Record<string, number>;
    indirect: number;
    vnetHeaderAlone: number;
    ethernetHeaderNotWithVnetHeader: number;
    frameSplitAcrossBuffers: number;
    linearHeaderViolations: number;
    vnetHeaderShared: number;
  };
}

/** The counters that hold a maximum, not a count. */
export const MAXIMUM_COUNTERS: readonly number[] = [Counter.gsoLargestFrame, Counter.rxGsoLargestFrame];

/** Sums the workers' counters; a maximum (MAXIMUM_COUNTERS) is the largest of theirs. */
export function sumCounters(blocks: readonly Float64Array[]): Float64Array {
  const total = new Float64Array(COUNTER_COUNT);
  for (const block of blocks) for (let i = 0; i < COUNTER_COUNT; i++) total[i]! += block[i]!;
  for (const counter of MAXIMUM_COUNTERS) total[counter] = Math.max(0, ...blocks.map((block) => block[counter]!));
  return total;
}

export function describeCounters(c: Float64Array): DeviceCounters {
  const errors: Record<string, number> = { availIndexJump: c[Counter.availIndexJump]! };
  chainErrorKinds.forEach((name, i) => (errors[name] = c[Counter.chainErrors + i]!));
  errors.txWriteOnlyBuffer = c[Counter.txWriteOnlyBuffer]!;
  errors.txHeaderTooShort = c[Counter.txHeaderTooShort]!;
  errors.txFrameTooLarge = c[Counter.txFrameTooLarge]!;
  errors.txGsoNotNegotiated = c[Counter.txGsoNotNegotiated]!;
  errors.txChecksumOutsideFrame = c[Counter.txChecksumOutsideFrame]!;
  gsoHeaderErrorNames.forEach((name, i) => (errors[name] = c[Counter.gsoHeaderErrors + i]!));
  errors.rxReadableBuffer = c[Counter.rxReadableBuffer]!;
  errors.rxBufferTooSmall = c[Counter.rxBufferTooSmall]!;
  errors.guestMemoryTruncated = c[Counter.guestMemoryTruncated]!;
  const descriptorsPerChain: Record<string, number> = {};
  bucketLabels.forEach((label, i) => (descriptorsPerChain[label] = c[Counter.descriptorsPerChain + i]!));
  return {
    transmitq: { frames: c[Counter.txFrames]!, bytes: c[Counter.txBytes]! },
    receiveq: { frames: c[Counter.rxFrames]!, bytes: c[Counter.rxBytes]!, buffers: c[Counter.rxBuffers]!, noBuffers: c[Counter.rxNoBuffers]! },
    errors,
    zeroCopy: {
      checked: c[Counter.zeroCopyChecked]!,
      proven: c[Counter.zeroCopyProven]!,
      payloadProven: c[Counter.zeroCopyPayloadProven]!,
      rxChecked: c[Counter.rxZeroCopyChecked]!,
      rxProven: c[Counter.rxZeroCopyProven]!,
    },
    gso: {
      frames: { tcp4: c[Counter.gsoTcp4Frames]!, tcp6: c[Counter.gsoTcp6Frames]!, udpL4: c[Counter.gsoUdpL4Frames]! },
      segments: c[Counter.gsoSegments]!,
      largestFrame: c[Counter.gsoLargestFrame]!,
    },
    rxGso: {
      frames: { tcp4: c[Counter.rxGsoTcp4Frames]!, tcp6: c[Counter.rxGsoTcp6Frames]!, udpL4: c[Counter.rxGsoUdpL4Frames]! },
      largestFrame: c[Counter.rxGsoLargestFrame]!,
      notNegotiated: c[Counter.rxGsoNotNegotiated]!,
    },
    queueResets: { followed: c[Counter.driverQueueResets]!, usedDropped: c[Counter.usedDroppedByQueueReset]! },
    portTxDropped: c[Counter.portTxDropped]!,
    txCompletedElsewhere: c[Counter.txCompletedElsewhere]!,
    verification: {
      verified: c[Counter.testFramesVerified]!,
      corrupt: c[Counter.testFramesCorrupt]!,
      duplicates: c[Counter.testFramesDuplicate]!,
      outOfOrder: c[Counter.testFramesOutOfOrder]!,
      gaps: c[Counter.testFrameGaps]!,
      otherFrames: c[Counter.otherFrames]!,
    },
    chainShapes: {
      descriptorsPerChain,
      indirect: c[Counter.indirectChains]!,
      vnetHeaderAlone: c[Counter.vnetHeaderAlone]!,
      ethernetHeaderNotWithVnetHeader: c[Counter.ethernetHeaderNotWithVnetHeader]!,
      frameSplitAcrossBuffers: c[Counter.frameSplitAcrossBuffers]!,
      linearHeaderViolations: c[Counter.linearHeaderViolations]!,
      vnetHeaderShared: c[Counter.vnetHeaderSharedWithPrevious]!,
    },
  };
}

/** The histogram bucket index for a chain of `n` buffers. */
export function descriptorBucket(n: number): number {
  if (n <= 4) return n - 1;
  if (n <= 8) return 4;
  if (n <= 16) return 5;
  return 6;
}
