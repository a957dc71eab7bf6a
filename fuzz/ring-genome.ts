/**
 * A ring case as data: what the fuzzer writes into one virtqueue (the "hostile" side, transmitq
 * or receiveq) before kicking it. Concrete numbers, JSON-safe, so a case can be printed,
 * replayed and mutated field by field. Addresses are guest-physical and split in two u32 words
 * so that values up to 2^64 - 1 survive exactly.
 */
import { DescFlags, PackedDescFlags } from 'vfio-user-ts';
import {
  BUFFER_AREA,
  BUFFER_AREA_END,
  headerLength,
  INDIRECT_SLOTS,
  indirectSlotAddress,
} from './layout.js';

export interface Desc {
  addrLo: number;
  addrHi: number;
  len: number;
  /** A packed descriptor's flags carry its AVAIL and USED bits too. */
  flags: number;
  /** Split: the next descriptor's index. Packed: the buffer id (the u16 before the flags there). */
  next: number;
}

/** A packed ring's base at its start: slot 0, the driver's wrap counter (bit 15) 1. */
export const PACKED_FRESH_BASE = 0x8000;
const PACKED_WRAP_BIT = 0x8000;

/** Slot and driver wrap counter of the `k`-th descriptor posted from `base` (SET_VRING_BASE's low half) in a ring of `size`. */
export function packedPosition(base: number, size: number, k: number): { slot: number; wrap: number } {
  const first = (base & ~PACKED_WRAP_BIT & 0xffff) % size;
  const laps = Math.floor((first + k) / size);
  return { slot: (first + k) % size, wrap: ((base & PACKED_WRAP_BIT) !== 0 ? 1 : 0) ^ (laps & 1) };
}

/** The AVAIL and USED bits of a descriptor the driver makes available on a lap with wrap counter `wrap` (2.8.1). */
export function packedAvailBits(wrap: number): number {
  return wrap === 1 ? PackedDescFlags.avail : PackedDescFlags.used;
}

const WRAP_BITS = PackedDescFlags.avail | PackedDescFlags.used;
const ZERO_DESC: Desc = { addrLo: 0, addrHi: 0, len: 0, flags: 0, next: 0 };

export interface RingGenome {
  /** The name of the generator (or "mutated:<parent>"). */
  name: string;
  side: 'tx' | 'rx';
  /**
   * Both queues' layout, RING_PACKED negotiated when 'packed' (absent: split, as in cases printed
   * before it existed). In a packed genome `table` holds ring slots, `heads` the slots of the
   * chains' first descriptors, whose flags the driver writes last (that makes them available),
   * from the last chain to the first (writeCase), and `availIdx` is null.
   */
  layout?: 'packed';
  /**
   * Packed: the hostile queue's SET_VRING_BASE (slot in bits 0-14, taken modulo the size, the
   * driver's wrap counter in bit 15); absent: PACKED_FRESH_BASE. The other queue starts fresh.
   */
  base?: number;
  /**
   * Packed: the hostile queue's driver event suppression (off_wrap, flags) as the driver wrote
   * it; absent: zeros (ENABLE). Only the device's notifications depend on it, which the rules do
   * not check: it is there for the device to survive any value.
   */
  driverEvent?: [number, number];
  /** Queue size of both queues (power of two). */
  size: number;
  /** Negotiated features. */
  indirect: boolean;
  mergeable: boolean;
  version1: boolean;
  /** HOST_TSO4, HOST_TSO6 and HOST_ECN negotiated (when the backend offers them); absent in cases printed before it existed. */
  tso?: boolean;
  /**
   * VIRTIO_F_IN_ORDER negotiated (when the backend offers it): the transmitq then publishes each
   * burst as one used element (ring-model.ts). Absent in cases printed before it existed.
   */
  inOrder?: boolean;
  /** Entries of the hostile ring's descriptor table, as [index, descriptor]; the rest are zero. */
  table: [number, Desc][];
  /** Indirect tables: tables[k] is written at indirectSlotAddress(k). */
  tables: Desc[][];
  /** Heads on the available ring, in order from slot 0. */
  heads: number[];
  /** avail.idx as published; null means heads.length. */
  availIdx: number | null;
  /** Receive cases: the lengths of valid frames sent on the transmitq (reflected into the receiveq). */
  feed: number[];
  /**
   * Bytes written into buffers before the rings, as [gpa, bytes] (virtio-net headers); the rest
   * of guest memory is zero. Absent in cases printed before it existed.
   */
  bytes?: [number, number[]][];
  /**
   * A truncation case: only the first `before` heads (and feed frames) are published at first;
   * once the device completed them, the frontend truncates its memfd to `kept` bytes (QEMU and
   * DPDK do not seal theirs) and publishes the rest, whose buffers lie beyond the new end.
   */
  truncate?: { before: number; kept: number };
}

export function desc(addr: number, len: number, flags: number, next = 0): Desc {
  return { addrLo: addr % 4294967296 >>> 0, addrHi: Math.floor(addr / 4294967296) >>> 0, len: len >>> 0, flags: flags & 0xffff, next: next & 0xffff };
}

/** A descriptor with both address words given (for addresses at or above 2^53). */
export function descWords(addrHi: number, addrLo: number, len: number, flags: number, next = 0): Desc {
  return { addrLo: addrLo >>> 0, addrHi: addrHi >>> 0, len: len >>> 0, flags: flags & 0xffff, next: next & 0xffff };
}

export interface BufferSpec {
  len: number;
  writable?: boolean;
  /** Where the buffer is; allocated in the buffer area when absent. */
  addr?: number;
}

/**
 * Builds a genome the way a driver would lay out chains: consecutive descriptors, buffers bump
 * allocated in the buffer area, indirect tables in their slots.
 */
export class RingBuilder {
  private readonly genome: RingGenome;
  private nextDescriptor = 0;
  private nextBuffer = BUFFER_AREA;
  /** Chains made with chain() and indirectChain(): each takes an available ring slot when published. */
  chainsMade = 0;

  constructor(name: string, side: 'tx' | 'rx', size: number, features: { indirect?: boolean; mergeable?: boolean; version1?: boolean; tso?: boolean } = {}) {
    this.genome = {
      name,
      side,
      size,
      indirect: features.indirect ?? true,
      mergeable: features.mergeable ?? true,
      version1: features.version1 ?? true,
      tso: features.tso ?? false,
      table: [],
      tables: [],
      heads: [],
      availIdx: null,
      feed: [],
      bytes: [],
    };
  }

  get size(): number {
    return this.genome.size;
  }

  /** The virtio-net header length of this case's features. */
  get header(): number {
    return headerLength(this.genome.version1, this.genome.mergeable);
  }

  /** Reserves a buffer of `len` bytes (at least 1 byte of room); returns its address. */
  buffer(len: number): number {
    const at = Math.ceil(this.nextBuffer / 16) * 16;
    if (at + Math.max(1, len) > BUFFER_AREA_END) throw new RangeError(`fuzz case buffers exceed the buffer area (${len} bytes)`);
    this.nextBuffer = at + Math.max(1, len);
    return at;
  }

  /** Where the buffer allocator stands: buffers reserved from now on start at or after it. */
  get bufferEnd(): number {
    return this.nextBuffer;
  }

  /** Moves the buffer allocator on to `addr` (e.g. past the page where guest memory will end). */
  skipBuffersTo(addr: number): void {
    if (addr > this.nextBuffer) this.nextBuffer = addr;
  }

  /** Makes this a truncation case (see RingGenome.truncate). */
  truncateAfter(before: number, kept: number): void {
    this.genome.truncate = { before, kept };
  }

  /** The next free descriptor index of the main table (taken). */
  takeDescriptors(count: number): number {
    const first = this.nextDescriptor;
    if (first + count > this.genome.size) throw new RangeError('fuzz case ran out of descriptors');
    this.nextDescriptor += count;
    return first;
  }

  get freeDescriptors(): number {
    return this.genome.size - this.nextDescriptor;
  }

  /** Writes descriptor `index` of the main table. */
  setDescriptor(index: number, d: Desc): void {
    const at = this.genome.table.findIndex(([i]) => i === index);
    if (at >= 0) this.genome.table[at] = [index, d];
    else this.genome.table.push([index, d]);
  }

  private descriptorsOf(buffers: readonly BufferSpec[], base: number): Desc[] {
    return buffers.map((b, i) => {
      const last = i === buffers.length - 1;
      const flags = (last ? 0 : DescFlags.next) | (b.writable ? DescFlags.write : 0);
      return desc(b.addr ?? this.buffer(b.len), b.len, flags, last ? 0 : base + i + 1);
    });
  }

  /** A chain of consecutive main-table descriptors; returns its head (not yet published). */
  chain(buffers: readonly BufferSpec[]): number {
    const head = this.takeDescriptors(buffers.length);
    this.chainsMade++;
    this.descriptorsOf(buffers, head).forEach((d, i) => this.setDescriptor(head + i, d));
    return head;
  }

  /** Adds an indirect table; returns its slot. */
  table(descs: Desc[]): number {
    const slot = this.genome.tables.length;
    if (slot >= INDIRECT_SLOTS) throw new RangeError('fuzz case ran out of indirect table slots');
    this.genome.tables.push(descs);
    return slot;
  }

  /** One main-table descriptor pointing at an indirect table of `buffers`; returns the head. */
  indirectChain(buffers: readonly BufferSpec[]): number {
    const slot = this.table(this.descriptorsOf(buffers, 0));
    const head = this.takeDescriptors(1);
    this.chainsMade++;
    this.setDescriptor(head, desc(indirectSlotAddress(slot), 16 * buffers.length, DescFlags.indirect));
    return head;
  }

  /** A valid transmit chain: header and a `frame`-byte frame, laid out as `shape` says. */
  txFrame(frame: number, shape: 'one' | 'split' | 'indirect' = 'one'): number {
    const header = this.header;
    if (shape === 'split') return this.chain([{ len: header }, { len: frame }]);
    if (shape === 'indirect' && this.genome.indirect) return this.indirectChain([{ len: header }, { len: frame }]);
    return this.chain([{ len: header + frame }]);
  }

  /**
   * A transmit chain whose virtio-net header starts with `fields` (flags, gso_type, hdr_len,
   * gso_size, csum_start, csum_offset as little-endian bytes; the rest zero) and whose frame
   * starts with `frameHead` (the rest zero), header and frame in one buffer or split after the
   * header.
   */
  txFrameWithHeader(frame: number, fields: readonly number[], split: boolean, frameHead: readonly number[] = []): number {
    const header = this.header;
    const addr = this.buffer(split ? header : header + frame);
    const frameAddr = split ? this.buffer(frame) : addr + header;
    this.genome.bytes!.push([addr, fields.slice(0, header).map((b) => b & 0xff)]);
    if (frameHead.length > 0) this.genome.bytes!.push([frameAddr, frameHead.slice(0, frame).map((b) => b & 0xff)]);
    return split ? this.chain([{ len: header, addr }, { len: frame, addr: frameAddr }]) : this.chain([{ len: header + frame, addr }]);
  }

  /** A valid receive chain of device-writable buffers. */
  rxBuffers(lengths: readonly number[]): number {
    return this.chain(lengths.map((len) => ({ len, writable: true })));
  }

  publish(...heads: number[]): void {
    this.genome.heads.push(...heads);
  }

  setAvailIdx(value: number): void {
    this.genome.availIdx = value & 0xffff;
  }

  /** Receive cases: valid frames of these lengths go out on the transmitq to be reflected. */
  feed(...lengths: number[]): void {
    this.genome.feed.push(...lengths);
  }

  build(): RingGenome {
    return structuredClone(this.genome);
  }
}

/**
 * The packed ring a driver writes for the chains of a split genome: each published head's chain
 * (its descriptors by their next links, as the split walk follows them) in consecutive slots
 * from `base`, flagged available on the lap of each slot, every descriptor carrying the head as
 * its buffer id (as Linux writes it), NEXT and WRITE kept. Indirect tables, buffers, features and
 * the rest stay: what a descriptor rule or a frame check makes of them does not depend on the
 * layout. Chains the packed ring cannot express (a split genome with its own avail.idx, chains
 * that together need more slots than the ring has) are refused.
 */
export function packedGenome(g: RingGenome, name: string, base: number): RingGenome {
  if (g.layout === 'packed') throw new RangeError(`${g.name} is packed already`);
  if (g.availIdx !== null) throw new RangeError(`${g.name}: a split avail.idx of its own has no packed equivalent`);
  const byIndex = new Map(g.table);
  const table: [number, Desc][] = [];
  const heads: number[] = [];
  let k = 0;
  for (const head of g.heads) {
    const chain: Desc[] = [];
    let d = byIndex.get(head) ?? ZERO_DESC;
    for (;;) {
      chain.push(d);
      if ((d.flags & DescFlags.next) === 0 || (d.flags & DescFlags.indirect) !== 0 || chain.length === g.size) break;
      d = byIndex.get(d.next) ?? ZERO_DESC;
    }
    if (k + chain.length > g.size) throw new RangeError(`${g.name}: its chains need more than the ${g.size} slots of a packed ring`);
    heads.push(packedPosition(base, g.size, k).slot);
    for (const c of chain) {
      const { slot, wrap } = packedPosition(base, g.size, k++);
      table.push([slot, { ...c, flags: (c.flags & ~WRAP_BITS) | packedAvailBits(wrap), next: head }]);
    }
  }
  return { ...structuredClone(g), name, layout: 'packed', base: base & 0xffff, table, heads };
}
