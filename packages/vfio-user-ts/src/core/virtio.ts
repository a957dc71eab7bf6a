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
  failed: 0x80,
} as const;

/** Descriptor flags (2.7.5). */
export const DescFlags = { next: 1, write: 2, indirect: 4 } as const;

/** Ring flags: used.flags (2.7.10) and avail.flags (2.7.7). */
export const RingFlags = { usedNoNotify: 1, availNoInterrupt: 1 } as const;

/** Feature bits, as bit numbers (virtio 1.2 5.1.3 and 6). */
export const FeatureBit = {
  netCsum: 0,
  netGuestCsum: 1,
  netMtu: 3,
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
  /**
   * The driver may reset one queue (virtio 1.2 2.6.1). A device offers it only on request: a
   * vhost-user frontend forwards no queue reset, so the device infers it from the ring (see
   * device/vring.ts driverReset), frames in flight at that moment are dropped, and a ring
   * resize (a new ring elsewhere in memory) is never seen.
   */
  ringReset: 40,
  /**
   * The device takes UDP GSO frames (gso_type UDP_L4, USO). Above bit 52, where a feature word
   * held in a double stops being exact: the device does not offer it until feature words are
   * 64-bit integers, so a driver never negotiates it and the device refuses UDP_L4 frames
   * (txGsoNotNegotiated).
   */
  netHostUso: 56,
} as const;

/** The specification's name of each feature bit, without its VIRTIO_F_, VIRTIO_NET_F_ or VIRTIO_RING_F_ prefix. */
const FEATURE_NAMES: { readonly [K in keyof typeof FeatureBit]: string } = {
  netCsum: 'CSUM',
  netGuestCsum: 'GUEST_CSUM',
  netMtu: 'MTU',
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
  ringReset: 'RING_RESET',
  netHostUso: 'HOST_USO',
};

/**
 * The names of the FeatureBit features set in `features`, lowest bit first, for people and
 * checks reading stats. Bits FeatureBit does not name are not listed: a transport's own bit
 * (vhost-user's 30) is not a virtio feature, and the device offers no other.
 */
export function featureNames(features: number): string[] {
  const keys = Object.keys(FeatureBit) as Array<keyof typeof FeatureBit>;
  return keys
    .filter((key) => hasFeature(features, FeatureBit[key]))
    .sort((a, b) => FeatureBit[a] - FeatureBit[b])
    .map((key) => FEATURE_NAMES[key]);
}

/**
 * Feature words stay plain numbers: every bit the device offers is below 53, where doubles are
 * exact (FeatureBit.netHostUso, named but not offered, is the exception that waits for 64-bit words).
 */
const FEATURE_WORD_BITS = 53;

/** `2 ** bit` summed, as a number (the `|` operator stops at 32 bits). */
export function featureMask(...bits: number[]): number {
  let mask = 0;
  for (const bit of bits) mask += 2 ** bit;
  return mask;
}

export function hasFeature(features: number, bit: number): boolean {
  return Math.floor(features / 2 ** bit) % 2 === 1;
}

/** The bits set in both feature words (the `&` operator stops at 32 bits). */
export function commonFeatures(a: number, b: number): number {
  let common = 0;
  for (let bit = 0; bit < FEATURE_WORD_BITS; bit++) if (hasFeature(a, bit) && hasFeature(b, bit)) common += 2 ** bit;
  return common;
}

/** True when every bit of `subset` is set in `set`. */
export function featuresWithin(subset: number, set: number): boolean {
  for (let bit = 0; bit < FEATURE_WORD_BITS; bit++) if (hasFeature(subset, bit) && !hasFeature(set, bit)) return false;
  return true;
}

/** The largest split-ring size (2.7: Queue Size is a power of 2, at most 32768). */
export const MAX_QUEUE_SIZE = 32768;

/** Whether `size` is a valid split-ring size: a power of two in 1..MAX_QUEUE_SIZE. */
export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) === 0;
}
