/**
 * The zcnic test frame (docs/test-frame.md): IPv4/UDP carrying magic, flow and sequence number,
 * then a byte pattern derived from the sequence number, so a receiver can verify every byte.
 */
import { ETHERNET_HEADER_LENGTH, ETHERTYPE_IPV4, ETHERTYPE_OFFSET } from './ethernet.js';

export const TEST_FRAME_MIN_LENGTH = 60;
export const TEST_FRAME_HEADER_LENGTH = 58;
const MAGIC = 0x5a434e43; // "ZCNC" read big-endian
const UDP_DST_PORT = 9000;
const UDP_SRC_PORT_BASE = 10000;
/** 198.18.0.1 (the device side) and 198.18.0.2 (the guest), RFC 2544's benchmarking range. */
export const DEVICE_IP = 0xc6120001;
export const GUEST_IP = 0xc6120002;

export interface TestFrameAddresses {
  readonly dstMac: Uint8Array;
  readonly srcMac: Uint8Array;
  readonly srcIp: number;
  readonly dstIp: number;
}

export function parseMac(text: string): Uint8Array {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`not a MAC address: ${text}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

/** Writes a whole test frame of `length` bytes at `offset`. */
export function writeTestFrame(view: DataView, offset: number, length: number, addresses: TestFrameAddresses, flow: number, seq: number): void {
  if (length < TEST_FRAME_MIN_LENGTH) throw new Error(`a test frame is at least ${TEST_FRAME_MIN_LENGTH} bytes, not ${length}`);
  for (let i = 0; i < 6; i++) {
    view.setUint8(offset + i, addresses.dstMac[i]!);
    view.setUint8(offset + 6 + i, addresses.srcMac[i]!);
  }
  view.setUint16(offset + ETHERTYPE_OFFSET, ETHERTYPE_IPV4, false);
  const ip = offset + ETHERNET_HEADER_LENGTH;
  view.setUint8(ip, 0x45);
  view.setUint8(ip + 1, 0);
  view.setUint16(ip + 2, length - 14, false);
  view.setUint16(ip + 6, 0x4000, false);
  view.setUint8(ip + 8, 64);
  view.setUint8(ip + 9, 17);
  view.setUint32(ip + 12, addresses.srcIp, false);
  view.setUint32(ip + 16, addresses.dstIp, false);
  const udp = offset + 34;
  view.setUint16(udp, UDP_SRC_PORT_BASE + flow, false);
  view.setUint16(udp + 2, UDP_DST_PORT, false);
  view.setUint16(udp + 4, length - 34, false);
  view.setUint16(udp + 6, 0, false);
  view.setUint32(offset + 42, MAGIC, false);
  view.setUint32(offset + 46, flow, true);
  for (let i = TEST_FRAME_HEADER_LENGTH; i < length; i++) view.setUint8(offset + i, (seq + i) & 0xff);
  setTestFrameSeq(view, offset, seq);
}

/**
 * Rewrites the fields that depend on the sequence number except the pattern: IPv4
 * identification and checksum, and seq. The pattern depends only on seq & 0xff, so a sender
 * keeps 256 prebuilt frames and patches one per send.
 */
export function setTestFrameSeq(view: DataView, offset: number, seq: number): void {
  patchTestFrameSeq(view, offset, seq, ipv4SumWithoutIdAndChecksum(view, offset + 14));
}

/**
 * setTestFrameSeq for a sender that patches the same frames over and over: `headerSum` is
 * ipv4SumWithoutIdAndChecksum of the frame (the same for every seq), so the checksum is the
 * fold of that sum plus the new identification (RFC 1624's incremental update), not a new sum.
 */
export function patchTestFrameSeq(view: DataView, offset: number, seq: number, headerSum: number): void {
  const ip = offset + 14;
  const id = seq & 0xffff;
  let sum = headerSum + id;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  view.setUint16(ip + 4, id, false);
  view.setUint16(ip + 10, ~sum & 0xffff, false);
  // seq is a non-negative integer below 2^53: >>> 0 is its low word, without a float division.
  const low = seq >>> 0;
  view.setUint32(offset + 50, low, true);
  view.setUint32(offset + 54, (seq - low) / 4294967296, true);
}

/** The one's-complement sum of an IPv4 header's words other than identification and checksum. */
export function ipv4SumWithoutIdAndChecksum(view: DataView, ip: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) if (i !== 4 && i !== 10) sum += view.getUint16(ip + i, false);
  return sum;
}

function ipv4HeaderChecksum(view: DataView, ip: number): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += view.getUint16(ip + i, false);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** What a received frame turned out to be. */
export const TestFrameVerdict = { verified: 0, notATestFrame: 1, corrupt: 2 } as const;

/**
 * Checks a frame against the format. On `verified`, `result.flow` and `result.seq` are set.
 * A frame without the magic is `notATestFrame` (other traffic, e.g. ARP or IPv6 noise).
 */
export function verifyTestFrame(view: DataView, offset: number, length: number, result: { flow: number; seq: number }): number {
  if (length < TEST_FRAME_MIN_LENGTH || view.getUint16(offset + ETHERTYPE_OFFSET, false) !== ETHERTYPE_IPV4 || view.getUint32(offset + 42, false) !== MAGIC) {
    return TestFrameVerdict.notATestFrame;
  }
  const ip = offset + 14;
  if (view.getUint16(ip + 2, false) !== length - 14 || view.getUint16(offset + 38, false) !== length - 34 || ipv4HeaderChecksum(view, ip) !== 0) {
    return TestFrameVerdict.corrupt;
  }
  const seq = view.getUint32(offset + 50, true) + view.getUint32(offset + 54, true) * 4294967296;
  for (let i = TEST_FRAME_HEADER_LENGTH; i < length; i++) {
    if (view.getUint8(offset + i) !== ((seq + i) & 0xff)) return TestFrameVerdict.corrupt;
  }
  result.flow = view.getUint32(offset + 46, true);
  result.seq = seq;
  return TestFrameVerdict.verified;
}
