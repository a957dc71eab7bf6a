/** The virtio-net header (virtio 1.2 5.1.6) and the checksum work its flags ask for. */
import { FeatureBit, hasFeature, type FeatureWord } from 'vfio-user-ts';

export const NetHeaderFlags = { needsCsum: 1, dataValid: 2 } as const;
/**
 * gso_type values (virtio 1.2 5.1.6). UDP is legacy UFO, which the device never offers; ECN is a
 * bit on top of TCPV4 or TCPV6.
 */
export const GsoType = { none: 0, tcpV4: 1, udp: 3, tcpV6: 4, udpL4: 5 } as const;
export const GSO_ECN = 0x80;

/**
 * 12 bytes with VERSION_1 or MRG_RXBUF (num_buffers present), 10 for a legacy driver without
 * mergeable buffers.
 */
export function netHeaderLength(version1: boolean, mergeable: boolean): number {
  return version1 || mergeable ? 12 : 10;
}

/** The header length that the negotiated `features` give a driver. */
export function negotiatedHeaderLength(features: FeatureWord): number {
  return netHeaderLength(hasFeature(features, FeatureBit.version1), hasFeature(features, FeatureBit.netMrgRxbuf));
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
  let checksum = ~foldChecksum(onesComplementSum(frame, csumStart, length)) & 0xffff;
  // UDP sends a computed zero as 0xffff (RFC 768); for TCP both encodings are equal.
  if (checksum === 0) checksum = 0xffff;
  frame.setUint16(field, checksum, false);
  return true;
}

/**
 * The big-endian 16-bit words of bytes [start, end) added up, unfolded (an odd last byte is the
 * high byte of a word, RFC 1071). Exact in a double for any frame length.
 */
export function onesComplementSum(frame: DataView, start: number, end: number): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += frame.getUint16(i, false);
  if (i < end) sum += frame.getUint8(i) << 8;
  return sum;
}

/** A ones'-complement sum folded to 16 bits (not complemented). */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}
