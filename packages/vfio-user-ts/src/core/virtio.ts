/**
 * Numbers from the virtio 1.2 specification, defined once for every transport (vhost-user now,
 * vfio-user later), the device, the test frontend and the tests. vhost-user's own bit in the
 * feature word is not virtio's and lives in vhost-user/protocol.ts.
 */

/** Device status bits (2.1). */
export const DeviceStatus = {
  acknowledge: 1,
  driver: 2,
  driverOk: 4,
  featuresOk: 8,
  needsReset: 0x40,
} as const;

/** Descriptor flags (2.7.5). */
export const DescFlags = { next: 1, write: 2, indirect: 4 } as const;

/** Ring flags: used.flags (2.7.10) and avail.flags (2.7.7). */
export const RingFlags = { usedNoNotify: 1, availNoInterrupt: 1 } as const;

/**
 * The packed ring's own descriptor flag bits (2.8): a descriptor is available when AVAIL
 * equals the driver's wrap counter and USED does not; used when both equal the device's.
 * NEXT, WRITE and INDIRECT keep their DescFlags values.
 */
export const PackedDescFlags = { avail: 1 << 7, used: 1 << 15 } as const;

/** The packed ring's event suppression flags (2.8.10): desc_event_flags of either structure. */
export const PackedEventFlags = { enable: 0, disable: 1, desc: 2 } as const;

/**
 * Feature bits, as bit numbers (virtio 1.2 5.1.3 and 6). A feature word is a `bigint` holding all
 * 64 bits exactly (FeatureWord); test and build words only with hasFeature and featureMask.
 */
export const FeatureBit = {
  netCsum: 0,
  netGuestCsum: 1,
  netMtu: 3,
  /** The driver takes TCP/IPv4 GSO frames on receive (gso_type TCPV4). */
  netGuestTso4: 7,
  /** The driver takes TCP/IPv6 GSO frames on receive (gso_type TCPV6). */
  netGuestTso6: 8,
  /** The driver takes TSO frames with the ECN bit on receive. */
  netGuestEcn: 9,
  /** The device takes TCP/IPv4 GSO frames (gso_type TCPV4) and segments them. */
  netHostTso4: 11,
  /** The device takes TCP/IPv6 GSO frames (gso_type TCPV6). */
  netHostTso6: 12,
  /** The device takes TSO frames with the ECN bit in gso_type (CWR on the first segment only). */
  netHostEcn: 13,
  netMac: 5,
  netMrgRxbuf: 15,
  netStatus: 16,
  netMq: 22,
  ringIndirectDesc: 28,
  ringEventIdx: 29,
  version1: 32,
  /**
   * The device accesses memory through the platform's DMA translation (QEMU's iommu_platform=on).
   * With no vIOMMU the addresses stay guest-physical; QEMU 7.2 and 10 insist that a vhost-user
   * backend offer it (and BACKEND_REQ with REPLY_ACK) before they offer it to the guest, then
   * leave it out of SET_FEATURES when there is no IOMMU to translate.
   */
  accessPlatform: 33,
  /** The packed virtqueue layout (2.8) instead of the split one (2.7). */
  ringPacked: 34,
  /**
   * The device uses buffers in the order they were made available (virtio 1.2, "In-order use
   * of descriptors" in 2.7 and 2.8), which lets it mark a batch used with one used element, the
   * last buffer's: the driver takes every buffer before it as used whole (read or written to
   * its end). A promise of the device; the driver then also uses descriptors in ring order.
   */
  inOrder: 35,
  /**
   * The driver may reset one queue (virtio 1.2 2.6.1). A device offers it only on request: a
   * vhost-user frontend forwards no queue reset, so the device infers it from the ring (see
   * device/vring.ts driverReset), frames in flight at that moment are dropped, and a ring
   * resize (a new ring elsewhere in memory) is never seen.
   */
  ringReset: 40,
  /** The driver takes UDP GSO frames of IPv4 on receive (gso_type UDP_L4). */
  netGuestUso4: 54,
  /** The driver takes UDP GSO frames of IPv6 on receive (gso_type UDP_L4). */
  netGuestUso6: 55,
  /** The device takes UDP GSO frames (gso_type UDP_L4, USO) and segments them. */
  netHostUso: 56,
} as const;

/** The specification's name of each feature bit, without its VIRTIO_F_, VIRTIO_NET_F_ or VIRTIO_RING_F_ prefix. */
const FEATURE_NAMES: { readonly [K in keyof typeof FeatureBit]: string } = {
  netCsum: 'CSUM',
  netGuestCsum: 'GUEST_CSUM',
  netMtu: 'MTU',
  netGuestTso4: 'GUEST_TSO4',
  netGuestTso6: 'GUEST_TSO6',
  netGuestEcn: 'GUEST_ECN',
  netHostTso4: 'HOST_TSO4',
  netHostTso6: 'HOST_TSO6',
  netHostEcn: 'HOST_ECN',
  netMac: 'MAC',
  netMrgRxbuf: 'MRG_RXBUF',
  netStatus: 'STATUS',
  netMq: 'MQ',
  ringIndirectDesc: 'INDIRECT_DESC',
  ringEventIdx: 'EVENT_IDX',
  version1: 'VERSION_1',
  accessPlatform: 'ACCESS_PLATFORM',
  ringPacked: 'RING_PACKED',
  inOrder: 'IN_ORDER',
  ringReset: 'RING_RESET',
  netGuestUso4: 'GUEST_USO4',
  netGuestUso6: 'GUEST_USO6',
  netHostUso: 'HOST_USO',
};

/**
 * A 64-bit feature word (virtio's device and driver features, vhost-user's protocol features):
 * a bigint in 0..2^64-1, exact for every bit. We chose bigint over a pair of u32 words because
 * words are built and tested only where queues start and messages are handled, never per frame
 * (the datapath turns the few bits it needs into booleans when a queue starts), and `&`, `|`,
 * `===` and `toString(16)` then work on the whole word as they would in C.
 */
export type FeatureWord = bigint;

/** The feature word with no bit set. */
export const NO_FEATURES: FeatureWord = 0n;

/** Every bit a u64 holds. */
const U64_MASK = (1n << 64n) - 1n;

/**
 * The names of the FeatureBit features set in `features`, lowest bit first, for people and
 * checks reading stats. Bits FeatureBit does not name are not listed: a transport's own bit
 * (vhost-user's 30) is not a virtio feature.
 */
export function featureNames(features: FeatureWord): string[] {
  const keys = Object.keys(FeatureBit) as Array<keyof typeof FeatureBit>;
  return keys
    .filter((key) => hasFeature(features, FeatureBit[key]))
    .sort((a, b) => FeatureBit[a] - FeatureBit[b])
    .map((key) => FEATURE_NAMES[key]);
}

/** The word with `bits` (bit numbers 0..63) set. */
export function featureMask(...bits: number[]): FeatureWord {
  let mask = 0n;
  for (const bit of bits) {
    if (!Number.isInteger(bit) || bit < 0 || bit > 63) throw new RangeError(`feature bit ${bit} is not in 0..63`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** Whether bit `bit` (0..63) is set in `features`. */
export function hasFeature(features: FeatureWord, bit: number): boolean {
  return ((features >> BigInt(bit)) & 1n) === 1n;
}

/** The bits set in both feature words. */
export function commonFeatures(a: FeatureWord, b: FeatureWord): FeatureWord {
  return a & b;
}

/** True when every bit of `subset` is set in `set`. */
export function featuresWithin(subset: FeatureWord, set: FeatureWord): boolean {
  return (subset & ~set) === 0n;
}

/** A feature word as a u64 on the wire: 8 bytes, little-endian. */
export function featureWordBytes(features: FeatureWord): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, features & U64_MASK, true);
  return bytes;
}

/** A feature word written `0x...` for log lines. */
export function featureWordHex(features: FeatureWord): string {
  return `0x${features.toString(16)}`;
}

/** The largest queue size (2.7: a split ring's is a power of 2, at most 32768; 2.8: a packed ring's at most 32768). */
export const MAX_QUEUE_SIZE = 32768;

/**
 * Whether `size` is a valid queue size: a power of two in 1..MAX_QUEUE_SIZE. The packed layout
 * would allow any size up to 32768, but SET_VRING_NUM comes before the ring's layout is known
 * to the validator, and no frontend we serve (QEMU, DPDK) asks for another.
 */
export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) === 0;
}
