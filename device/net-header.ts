/** The virtio-net header (virtio 1.2 5.1.6) and the checksum work its flags ask for. */

export const NetHeaderFlags = { needsCsum: 1, dataValid: 2 } as const;
export const GSO_NONE = 0;

/**
 * 12 bytes with VERSION_1 or MRG_RXBUF (num_buffers present), 10 for a legacy driver without
 * mergeable buffers.
 */
export function netHeaderLength(version1: boolean, mergeable: boolean): number {
  return version1 || mergeable ? 12 : 10;
}

/** Byte offsets inside the header. */
export const NetHeader = { flags: 0, gsoType: 1, hdrLen: 2, gsoSize: 4, csumStart: 6, csumOffset: 8, numBuffers: 10 } as const;

/** Whether a partial checksum's offsets lie inside a `length`-byte frame: the sum starts inside and the 2-byte field ends inside. */
export function checksumFits(length: number, csumStart: number, csumOffset: number): boolean {
  return csumStart < length && csumStart + csumOffset + 2 <= length;
}

/**
 * Completes a partial checksum in place (VIRTIO_NET_HDR_F_NEEDS_CSUM): the driver left the
 * pseudo-header sum at csumStart + csumOffset; the device sums from csumStart to the end and
 * stores the folded complement there. Returns false when the offsets lie outside the frame.
 */
export function completeChecksum(frame: DataView, length: number, csumStart: number, csumOffset: number): boolean {
  if (!checksumFits(length, csumStart, csumOffset)) return false;
  const field = csumStart + csumOffset;
  let sum = 0;
  let i = csumStart;
  for (; i + 1 < length; i += 2) sum += frame.getUint16(i, false);
  if (i < length) sum += frame.getUint8(i) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  let checksum = ~sum & 0xffff;
  // UDP sends a computed zero as 0xffff (RFC 768); for TCP both encodings are equal.
  if (checksum === 0) checksum = 0xffff;
  frame.setUint16(field, checksum, false);
  return true;
}
