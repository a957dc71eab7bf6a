/**
 * A frame the driver put on the transmitq, as ports see it: the virtio-net header's fields and
 * the Ethernet frame behind it, still in guest memory (split across buffers however the driver
 * laid it out). Ports that need the bytes in one piece call `linearize()`, which copies once into
 * scratch and completes a partial checksum there (the buffers are device-readable only, so the
 * device must not write them). One instance per queue, reused for every frame.
 */
import { byteSpace, type ByteSpace, type GuestMemory } from 'vfio-user-ts';
import type { DescriptorChain } from './descriptor-chain.js';
import { copyBytes } from './copy-bytes.js';
import { ETHERNET_HEADER_LENGTH } from './ethernet.js';
import { IPV6_HEADER_LENGTH } from './ip.js';
import { completeChecksum, GsoType, NetHeader, NetHeaderFlags } from './net-header.js';

/** The largest frame we accept without GSO: 64 KiB (a frame is at most MTU-sized in practice). */
export const MAX_FRAME_LENGTH = 65536;
/**
 * The largest GSO frame we accept: an Ethernet header and the largest IPv6 packet without a
 * jumbogram (IPv4's 65535-byte total length is smaller). Linux sends at most 64 KiB
 * (GSO_LEGACY_MAX_SIZE) of IP packet.
 */
export const MAX_GSO_FRAME_LENGTH = ETHERNET_HEADER_LENGTH + IPV6_HEADER_LENGTH + 65535;

/** A frame in one piece, as it goes on the wire: what ports, the pcap and the verifier take. */
export interface WireFrame {
  readonly length: number;
  /** The bytes after linearize(). */
  readonly linear: Uint8Array;
  readonly linearSpace: ByteSpace;
  /** Makes `linear` hold the frame; false when it cannot (too large). */
  linearize(): boolean;
}

export class TxFrame implements WireFrame {
  /** Ethernet frame length (after the virtio-net header). */
  length = 0;
  /** Header fields. */
  flags = 0;
  gsoType: number = GsoType.none;
  hdrLen = 0;
  gsoSize = 0;
  csumStart = 0;
  csumOffset = 0;
  /** Buffer index and offset in it where the Ethernet frame starts. */
  firstBuffer = 0;
  firstOffset = 0;
  /** Whether `linear` holds this frame already (several consumers may ask). */
  linearized = false;
  /** The bytes after linearize(). */
  readonly linear = new Uint8Array(MAX_GSO_FRAME_LENGTH);
  readonly linearSpace: ByteSpace = byteSpace(this.linear.buffer);
  readonly chain: DescriptorChain;
  private readonly memory: GuestMemory;
  private readonly header: ByteSpace = byteSpace(new ArrayBuffer(16));

  constructor(memory: GuestMemory, chain: DescriptorChain) {
    this.memory = memory;
    this.chain = chain;
  }

  /**
   * Reads the header of the chain just resolved and finds where the frame starts. Returns false
   * when the readable bytes are fewer than the header.
   */
  load(headerLength: number): boolean {
    const chain = this.chain;
    if (chain.readableBytes < headerLength) return false;
    if (chain.length[0]! >= headerLength) this.loadFrom(this.memory.spaces[chain.region[0]!]!.view, chain.offset[0]!, 0, headerLength);
    else {
      this.gatherHeader(headerLength);
      this.loadFrom(this.header.view, 0, this.firstBuffer, this.firstOffset);
    }
    this.length = chain.readableBytes - headerLength;
    this.linearized = false;
    return true;
  }

  /**
   * The header's fields from `view` at `at` (read in place when the first buffer holds the
   * whole header, the usual case, else from the gathered copy); the frame starts at `offset`
   * of buffer `buffer`, past any empty buffers so firstBuffer really holds the first frame byte.
   */
  private loadFrom(view: DataView, at: number, buffer: number, offset: number): void {
    const chain = this.chain;
    while (buffer < chain.count && offset === chain.length[buffer]!) {
      buffer++;
      offset = 0;
    }
    this.firstBuffer = buffer;
    this.firstOffset = offset;
    this.flags = view.getUint8(at + NetHeader.flags);
    this.gsoType = view.getUint8(at + NetHeader.gsoType);
    this.hdrLen = view.getUint16(at + NetHeader.hdrLen, true);
    this.gsoSize = view.getUint16(at + NetHeader.gsoSize, true);
    this.csumStart = view.getUint16(at + NetHeader.csumStart, true);
    this.csumOffset = view.getUint16(at + NetHeader.csumOffset, true);
  }

  /**
   * Copies a header split over several buffers (a driver may send 1-byte buffers) into
   * `header`; firstBuffer and firstOffset say where its last byte ended.
   */
  private gatherHeader(headerLength: number): void {
    const chain = this.chain;
    let buffer = 0;
    let offset = 0;
    for (let copied = 0; copied < headerLength; ) {
      const take = Math.min(headerLength - copied, chain.length[buffer]! - offset);
      copyBytes(this.header, copied, this.memory.spaces[chain.region[buffer]!]!, chain.offset[buffer]! + offset, take);
      copied += take;
      offset += take;
      if (offset === chain.length[buffer]!) {
        buffer++;
        offset = 0;
      }
    }
    this.firstBuffer = buffer;
    this.firstOffset = offset;
  }

  /**
   * Guest-physical address of the first frame byte when the whole frame lies in one buffer,
   * else -1 (a frame in pieces is not one user-buffer frame).
   */
  contiguousAddress(): number {
    const chain = this.chain;
    const b = this.firstBuffer;
    if (b >= chain.count || chain.length[b]! - this.firstOffset < this.length) return -1;
    return chain.address[b]! + this.firstOffset;
  }

  /** Copies the frame's first `length` bytes (default all) to `dst` at `dstOffset`, which must have room. */
  copyTo(dst: ByteSpace, dstOffset: number, length = this.length): void {
    const chain = this.chain;
    const spaces = this.memory.spaces;
    let buffer = this.firstBuffer;
    let offset = this.firstOffset;
    let remaining = length;
    while (remaining > 0) {
      const take = Math.min(remaining, chain.length[buffer]! - offset);
      copyBytes(dst, dstOffset, spaces[chain.region[buffer]!]!, chain.offset[buffer]! + offset, take);
      dstOffset += take;
      remaining -= take;
      buffer++;
      offset = 0;
    }
  }

  /**
   * Lists the frame's bytes where they lie in guest memory as writev pieces (buffer, offset,
   * length) from index `at` of the arrays, without copying them. Returns the index after the
   * last piece, or -1 when the arrays have too few entries left.
   */
  gather(buffers: Uint8Array[], offsets: Float64Array, lengths: Float64Array, at: number): number {
    const chain = this.chain;
    const spaces = this.memory.spaces;
    let buffer = this.firstBuffer;
    let offset = this.firstOffset;
    let remaining = this.length;
    let piece = at;
    while (remaining > 0) {
      if (piece === buffers.length) return -1;
      const take = Math.min(remaining, chain.length[buffer]! - offset);
      buffers[piece] = spaces[chain.region[buffer]!]!.bytes;
      offsets[piece] = chain.offset[buffer]! + offset;
      lengths[piece] = take;
      piece++;
      remaining -= take;
      buffer++;
      offset = 0;
    }
    return piece;
  }

  /**
   * Copies the frame into `linear` (length bytes), completing the checksum the driver left
   * partial. Returns false when the frame is larger than the scratch. The transmit queue hands
   * on no frame whose checksum offsets lie outside it (txChecksumOutsideFrame), so the checksum
   * is always completed here, but for a GSO frame: its checksum belongs to each segment, and the
   * segmenter completes it there.
   */
  linearize(): boolean {
    if (this.linearized) return true;
    if (this.length > MAX_GSO_FRAME_LENGTH) return false;
    this.copyTo(this.linearSpace, 0);
    if ((this.flags & NetHeaderFlags.needsCsum) !== 0 && this.gsoType === GsoType.none) {
      completeChecksum(this.linearSpace.view, this.length, this.csumStart, this.csumOffset);
    }
    this.linearized = true;
    return true;
  }
}
