/** Numbers from the virtio 1.2 specification that more than one module needs. */

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
  netMac: 5,
  netMrgRxbuf: 15,
  netStatus: 16,
  netCtrlVq: 17,
  netMq: 22,
  ringIndirectDesc: 28,
  ringEventIdx: 29,
  /** vhost-user's own bit in the device feature word (not virtio's). */
  vhostUserProtocolFeatures: 30,
  version1: 32,
  /**
   * The driver may reset one queue (virtio 1.2 2.6.1). Offered only on request (--ring-reset):
   * the device infers a reset from the ring (Vring.driverReset), frames in flight at that
   * moment are dropped, and a ring resize (a new ring elsewhere in memory) is never seen.
   */
  ringReset: 40,
} as const;

/** `2 ** bit` as a number, so feature words stay plain numbers (all our bits are < 53). */
export function featureMask(...bits: number[]): number {
  let mask = 0;
  for (const bit of bits) mask += 2 ** bit;
  return mask;
}

export function hasFeature(features: number, bit: number): boolean {
  return Math.floor(features / 2 ** bit) % 2 === 1;
}

/** The largest split-ring size (2.7: Queue Size is a power of 2, at most 32768). */
export const MAX_QUEUE_SIZE = 32768;
