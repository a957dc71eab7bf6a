/**
 * Where things live in the fuzzer's guest RAM (one region, one memfd per connection) and the
 * sizes the cases are built from; virtio's own numbers come from vfio-user-ts. The rings come
 * first (FrontendSession allocates them from the region's start); hostile buffers, the valid
 * frames that feed a receive case, and indirect tables each have an area of their own after them.
 */

/** Guest-physical address of the region (FrontendSession's default). */
export const GUEST_BASE = 0x100000;
/** Size of the region. */
export const MEMORY_BYTES = 0x100000;
export const GUEST_END = GUEST_BASE + MEMORY_BYTES;
/** The rings of both queues fit below this for queue sizes up to MAX_FUZZ_QUEUE_SIZE. */
export const RING_AREA_END = GUEST_BASE + 0x20000;
/** Buffers of the hostile ring. */
export const BUFFER_AREA = RING_AREA_END;
export const BUFFER_AREA_END = GUEST_BASE + 0xb0000;
/** Valid frames on the transmitq that a receive case reflects into the receiveq. */
export const FEED_AREA = BUFFER_AREA_END;
export const FEED_SLOT = 0x800;
export const FEED_SLOTS = 32;
/** Indirect tables: slot k at INDIRECT_AREA + k * INDIRECT_SLOT (256 descriptors each). */
export const INDIRECT_AREA = GUEST_BASE + 0xc0000;
export const INDIRECT_SLOT = 0x1000;
export const INDIRECT_SLOTS = 64;

export const MAX_FUZZ_QUEUE_SIZE = 1024;
export const QUEUE_SIZES = [1, 2, 16, 64, 256, 1024] as const;

export const RECEIVEQ = 0;
export const TRANSMITQ = 1;

/**
 * The device's limits the rules must know, from the device's own definitions: chains per
 * transmit burst (under VIRTIO_F_IN_ORDER a burst is published as one used element), the largest
 * frame and the largest GSO frame.
 */
export { CHAINS_PER_BURST as DEVICE_BURST } from '../device/datapath/scheduler.js';
export { MAX_FRAME_LENGTH as MAX_FRAME, MAX_GSO_FRAME_LENGTH as MAX_GSO_FRAME } from '../device/tx-frame.js';

export function indirectSlotAddress(slot: number): number {
  return INDIRECT_AREA + slot * INDIRECT_SLOT;
}

export function feedSlotAddress(slot: number): number {
  return FEED_AREA + slot * FEED_SLOT;
}

/** The virtio-net header length a device uses for these features (device/net-header.ts). */
export function headerLength(version1: boolean, mergeable: boolean): number {
  return version1 || mergeable ? 12 : 10;
}
