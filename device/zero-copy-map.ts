/**
 * The zero-copy proofs: which guest-physical pages hold a user buffer and at which offset of
 * that buffer, so that the device can tell a frame read from the user's memory itself (nothing
 * copied it) from a copy in kernel memory, which is never found there. Two kinds of buffer:
 *
 * - frames (an AF_XDP umem, a packet socket's send buffer): a transmitted frame lying in one of
 *   the pages, at the start of one of the buffer's frames, is proven (`zeroCopy.proven`).
 * - a stream (a MSG_ZEROCOPY sender, guest/tools/zerocopy.c, walking its buffer as a ring: the
 *   stream's byte S is sent from buffer offset S mod the buffer size): a frame of the flow that
 *   carries payload is checked, and proven (`zeroCopy.payloadProven`) when every payload byte is
 *   read from the address of its own buffer offset. Byte S is the TCP sequence number relative
 *   to the flow's ISN (from its SYN), or for UDP the payload bytes of the flow's datagrams
 *   before it, in the order the device sees them. Frames without payload (SYN, pure ACK, FIN)
 *   and other flows are not checked.
 */
import { ETHERNET_HEADER_LENGTH, ETHERTYPE_IPV4, ETHERTYPE_OFFSET } from './ethernet.js';
import { IP_PROTOCOL_TCP, IP_PROTOCOL_UDP, TCP_MIN_HEADER_LENGTH, UDP_HEADER_LENGTH } from './ip.js';
import type { TxFrame } from './tx-frame.js';

/** [offset in the user buffer, guest-physical address] of each page of the buffer. */
export type BufferPages = ReadonlyArray<readonly [number, number]>;

export interface FramesMapSpec {
  /** Size of one frame (chunk) of the user buffer; frames start at multiples of it. */
  readonly frameSize: number;
  /** Offset in a frame where the packet starts (XDP headroom; 0 for xdpsock's TX frames). */
  readonly headroom: number;
  readonly pages: BufferPages;
}

export type StreamProtocol = 'tcp' | 'udp';
export const streamProtocols: readonly StreamProtocol[] = ['tcp', 'udp'];

export interface StreamMapSpec {
  /** The flow checked: the first one of this protocol the device sees after the map is set. */
  readonly stream: StreamProtocol;
  /** Every page of the buffer, offsets 0, 4096, ... each once. */
  readonly pages: BufferPages;
}

export type ZeroCopyMapSpec = FramesMapSpec | StreamMapSpec;

const PAGE_SIZE = 4096;
const PAGE_SHIFT = 12;

export class ZeroCopyMap {
  readonly kind = 'frames';
  /** Page addresses, sorted, with the buffer offset of each. */
  private readonly pageAddr: Float64Array;
  private readonly pageOffset: Float64Array;
  private readonly frameSize: number;
  private readonly headroom: number;

  constructor(spec: FramesMapSpec) {
    const sorted = [...spec.pages].sort((a, b) => a[1] - b[1]);
    this.pageAddr = Float64Array.from(sorted, (p) => p[1]);
    this.pageOffset = Float64Array.from(sorted, (p) => p[0]);
    this.frameSize = spec.frameSize;
    this.headroom = spec.headroom;
  }

  /** The index of the user buffer's page holding `gpa`, or -1. */
  pageOf(gpa: number): number {
    const addr = this.pageAddr;
    let lo = 0;
    let hi = addr.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const page = addr[mid]!;
      if (gpa < page) hi = mid - 1;
      else if (gpa >= page + PAGE_SIZE) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** Whether the `length` bytes at `gpa` are exactly a frame of the user buffer (one page). */
  holds(gpa: number, length: number): boolean {
    const index = this.pageOf(gpa);
    if (index < 0) return false;
    const inPage = gpa - this.pageAddr[index]!;
    const inFrame = (this.pageOffset[index]! + inPage) % this.frameSize;
    return inFrame === this.headroom && inFrame + length <= this.frameSize && inPage + length <= PAGE_SIZE;
  }
}

/** What the stream proof says about one transmitted frame. */
export const PayloadVerdict = {
  /** Not a payload-carrying frame of the flow: not counted. */
  notInStream: 0,
  /** Every payload byte read from the address the sender used for it. */
  proven: 1,
  /** Some payload byte read from elsewhere (a copy, or the buffer at the wrong offset). */
  notProven: 2,
} as const;
export type PayloadVerdictCode = (typeof PayloadVerdict)[keyof typeof PayloadVerdict];

const TCP_FLAG_SYN = 0x02;
const TCP_FLAG_ACK = 0x10;

export class StreamPayloadProof {
  readonly kind = 'stream';
  private readonly protocol: number;
  /** Guest-physical address of each page, by buffer offset / 4096. */
  private readonly pageAddr: Float64Array;
  private readonly bufferSize: number;
  /** The flow, once seen (TCP: its SYN; UDP: its first datagram). */
  private flowKnown = false;
  private sourceAddr = 0;
  private destinationAddr = 0;
  private sourcePort = 0;
  private destinationPort = 0;
  private isn = 0;
  /** UDP: the stream offset of the flow's next datagram. */
  private nextDatagramOffset = 0;

  constructor(spec: StreamMapSpec) {
    this.protocol = spec.stream === 'tcp' ? IP_PROTOCOL_TCP : IP_PROTOCOL_UDP;
    this.pageAddr = new Float64Array(spec.pages.length);
    for (const [offset, gpa] of spec.pages) this.pageAddr[offset >>> PAGE_SHIFT] = gpa;
    this.bufferSize = spec.pages.length * PAGE_SIZE;
  }

  /** Checks a frame (linearized: its headers are read from `frame.linear`). */
  check(frame: TxFrame): PayloadVerdictCode {
    const b = frame.linear;
    const ip = ETHERNET_HEADER_LENGTH;
    if (frame.length < ip + 20 || ((b[ETHERTYPE_OFFSET]! << 8) | b[ETHERTYPE_OFFSET + 1]!) !== ETHERTYPE_IPV4 || b[ip]! >> 4 !== 4) return PayloadVerdict.notInStream;
    // IP fragments (MF or an offset) never carry the flow here: datagrams stay under the MTU.
    if (b[ip + 9] !== this.protocol || (((b[ip + 6]! & 0x3f) << 8) | b[ip + 7]!) !== 0) return PayloadVerdict.notInStream;
    const ipEnd = ip + ((b[ip + 2]! << 8) | b[ip + 3]!);
    const l4 = ip + (b[ip]! & 0x0f) * 4;
    const tcp = this.protocol === IP_PROTOCOL_TCP;
    const l4Header = tcp ? (b[l4 + 12]! >> 4) * 4 : UDP_HEADER_LENGTH;
    if (ipEnd > frame.length || l4 + (tcp ? TCP_MIN_HEADER_LENGTH : UDP_HEADER_LENGTH) > ipEnd || l4 + l4Header > ipEnd) return PayloadVerdict.notInStream;
    const sourceAddr = readUint32(b, ip + 12);
    const destinationAddr = readUint32(b, ip + 16);
    const sourcePort = (b[l4]! << 8) | b[l4 + 1]!;
    const destinationPort = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    const payloadOffset = l4 + l4Header;
    const payloadLength = ipEnd - payloadOffset;
    if (!this.flowKnown) {
      // TCP: the flow starts with the client's SYN (its sequence number is the ISN); UDP: the
      // first datagram of the protocol is the flow's datagram 0.
      if (tcp && (b[l4 + 13]! & (TCP_FLAG_SYN | TCP_FLAG_ACK)) !== TCP_FLAG_SYN) return PayloadVerdict.notInStream;
      this.flowKnown = true;
      this.sourceAddr = sourceAddr;
      this.destinationAddr = destinationAddr;
      this.sourcePort = sourcePort;
      this.destinationPort = destinationPort;
      if (tcp) this.isn = readUint32(b, l4 + 4);
    } else if (sourceAddr !== this.sourceAddr || destinationAddr !== this.destinationAddr || sourcePort !== this.sourcePort || destinationPort !== this.destinationPort) {
      return PayloadVerdict.notInStream;
    }
    if (payloadLength <= 0) return PayloadVerdict.notInStream;
    let streamOffset: number;
    if (tcp) {
      // The SYN takes sequence number ISN; the stream's first byte is ISN + 1 (mod 2^32: the
      // suite's streams are far below 4 GiB).
      streamOffset = (readUint32(b, l4 + 4) - this.isn - 1) >>> 0;
    } else {
      streamOffset = this.nextDatagramOffset;
      this.nextDatagramOffset += payloadLength;
    }
    return this.payloadFromBuffer(frame, payloadOffset, payloadLength, streamOffset) ? PayloadVerdict.proven : PayloadVerdict.notProven;
  }

  /** Whether the frame's bytes [payloadOffset, +length) are read from stream offset `streamOffset` of the buffer. */
  private payloadFromBuffer(frame: TxFrame, payloadOffset: number, length: number, streamOffset: number): boolean {
    const chain = frame.chain;
    let buffer = frame.firstBuffer;
    let inBuffer = frame.firstOffset;
    // Find the buffer holding the payload's first byte.
    let skip = payloadOffset;
    while (skip >= chain.length[buffer]! - inBuffer) {
      skip -= chain.length[buffer]! - inBuffer;
      buffer++;
      inBuffer = 0;
    }
    inBuffer += skip;
    let at = streamOffset;
    while (length > 0) {
      const take = Math.min(length, chain.length[buffer]! - inBuffer);
      if (!this.bufferHolds(at, chain.address[buffer]! + inBuffer, take)) return false;
      length -= take;
      at += take;
      buffer++;
      inBuffer = 0;
    }
    return true;
  }

  /** Whether the `length` bytes at `gpa` are the buffer's bytes from stream offset `streamOffset` on. */
  bufferHolds(streamOffset: number, gpa: number, length: number): boolean {
    const size = this.bufferSize;
    let offset = streamOffset % size;
    while (length > 0) {
      const inPage = offset & (PAGE_SIZE - 1);
      if (this.pageAddr[offset >>> PAGE_SHIFT]! + inPage !== gpa) return false;
      const take = Math.min(length, PAGE_SIZE - inPage);
      gpa += take;
      length -= take;
      offset += take;
      if (offset === size) offset = 0;
    }
    return true;
  }
}

function readUint32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

export type ZeroCopyProof = ZeroCopyMap | StreamPayloadProof;

export function createZeroCopyProof(spec: ZeroCopyMapSpec): ZeroCopyProof {
  return 'stream' in spec ? new StreamPayloadProof(spec) : new ZeroCopyMap(spec);
}

/** Checks a map from the control API; a string says what is wrong with it. */
export function checkZeroCopyMap(value: unknown): ZeroCopyMapSpec | string {
  const usage = 'the map is an object {frameSize, headroom, pages: [[offset, gpa], ...]} or {stream: "tcp"|"udp", pages}';
  if (typeof value !== 'object' || value === null) return usage;
  const { frameSize, headroom = 0, stream, pages } = value as Record<string, unknown>;
  if (!Array.isArray(pages) || pages.length === 0) return 'pages must be a non-empty array of [offset, gpa]';
  for (const p of pages) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) return 'each page is [offset, gpa] with non-negative integers';
    if ((p[1] as number) % PAGE_SIZE !== 0) return `page address 0x${(p[1] as number).toString(16)} is not page-aligned`;
  }
  const checkedPages = pages as Array<[number, number]>;
  if (stream !== undefined) {
    if (!streamProtocols.includes(stream as StreamProtocol)) return `stream must be one of ${streamProtocols.join(', ')}`;
    if (frameSize !== undefined) return 'a stream map has no frameSize';
    // The ring walk needs every page of the buffer, each once.
    const seen = new Uint8Array(checkedPages.length);
    for (const [offset] of checkedPages) {
      const page = offset / PAGE_SIZE;
      if (!Number.isInteger(page) || page >= checkedPages.length || seen[page]) return `a stream map has the offsets 0, 4096, ... ${(checkedPages.length - 1) * PAGE_SIZE} each once; 0x${offset.toString(16)} is not one of them or repeats`;
      seen[page] = 1;
    }
    return { stream: stream as StreamProtocol, pages: checkedPages };
  }
  if (typeof frameSize !== 'number' || !Number.isSafeInteger(frameSize) || frameSize <= 0) return 'frameSize must be a positive integer';
  if (typeof headroom !== 'number' || !Number.isSafeInteger(headroom) || headroom < 0 || headroom >= frameSize) return 'headroom must be an integer in 0..frameSize-1';
  return { frameSize, headroom, pages: checkedPages };
}
