/**
 * The validated walk of one descriptor chain, split (virtio 1.2 2.7.5 and 2.7.5.3) or packed
 * (2.8, its scatter-gather and indirect sections): the only code that reads descriptors. Every rule a driver can break is
 * checked here, once, and both layouts record their buffers through the same checks: head and
 * next inside the table, no loop (no chain longer than the queue: a split chain that comes back
 * on itself, a packed one whose NEXT flags go round the ring), every buffer inside one region of
 * guest memory, device-readable buffers before device-writable ones, and the indirect rules
 * (only when negotiated, not combined with NEXT, a table length that is a whole number of
 * descriptors, the table inside guest memory, no indirect inside indirect).
 *
 * A walk fills preallocated arrays (one slot per buffer), so resolving a chain allocates nothing.
 */
import { DescFlags, type GuestMemory } from 'vfio-user-ts';
import type { DescriptorTable } from './virtqueue.js';

/** Why a chain was refused. 0 means it was fine. */
export const ChainError = {
  none: 0,
  headOutOfRange: 1,
  nextOutOfRange: 2,
  chainTooLong: 3,
  bufferOutsideMemory: 4,
  indirectNotNegotiated: 5,
  indirectWithNext: 6,
  indirectBadLength: 7,
  indirectOutsideMemory: 8,
  nestedIndirect: 9,
  readableAfterWritable: 10,
} as const;
export type ChainErrorCode = (typeof ChainError)[keyof typeof ChainError];

export const chainErrorNames: readonly string[] = Object.keys(ChainError);

const DESCRIPTOR_SIZE = 16;
/** Field offsets in a descriptor: both layouts have addr at 0 and len at 8 (2.7.5, 2.8.13). */
const SPLIT_FLAGS = 12;
const SPLIT_NEXT = 14;
const PACKED_ID = 12;
const PACKED_FLAGS = 14;
const TWO_TO_32 = 4294967296;

export class DescriptorChain {
  /** Buffers in the last chain resolved. */
  count = 0;
  /** Per buffer: region index, offset in that region, guest-physical address, length, writable. */
  readonly region: Int32Array;
  readonly offset: Float64Array;
  readonly address: Float64Array;
  readonly length: Uint32Array;
  readonly writable: Uint8Array;
  readableBytes = 0;
  writableBytes = 0;
  /** Whether the chain went through an indirect table. */
  indirect = false;
  /**
   * The buffer id the used element names: the head index (split), the id of the chain's last
   * descriptor (packed). While a packed walk fails, its first ring slot (for the report).
   */
  head = 0;
  /** Ring descriptors the chain took (packed: how far the driver's next chain is); 1 for an indirect one. */
  ringDescriptors = 0;

  /** Context of the last failure, for the log line. */
  errorDescriptor = 0;
  errorAddress = 0;
  errorLength = 0;

  private readonly memory: GuestMemory;
  private readonly ring: DescriptorTable;
  private readonly indirectAllowed: boolean;
  /** Whether a writable buffer was recorded in this walk (readable ones may not follow). */
  private sawWritable = false;

  constructor(memory: GuestMemory, ring: DescriptorTable, indirectAllowed: boolean) {
    this.memory = memory;
    this.ring = ring;
    this.indirectAllowed = indirectAllowed;
    // A chain may not be longer than the queue (2.7.5.3.1, and the packed ring's scatter-gather rules), indirect tables included.
    const capacity = ring.size;
    this.region = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.address = new Float64Array(capacity);
    this.length = new Uint32Array(capacity);
    this.writable = new Uint8Array(capacity);
  }

  /**
   * Walks the chain starting at `start`: a head index of the descriptor table (split), a slot of
   * the descriptor ring (packed). Returns ChainError.none or why it is invalid.
   */
  resolve(start: number): ChainErrorCode {
    this.count = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.indirect = false;
    this.sawWritable = false;
    this.head = start;
    this.ringDescriptors = 0;
    if (start >= this.ring.size) return this.fail(ChainError.headOutOfRange, start, 0, 0);
    return this.ring.layout === 'split' ? this.walkSplit(start) : this.walkPacked(start);
  }

  /** A split chain: descriptors linked by `next`, from the table or, once, an indirect table. */
  private walkSplit(head: number): ChainErrorCode {
    const ring = this.ring;
    const memory = this.memory;
    let table = memory.spaces[ring.descRegion]!.view;
    let tableOffset = ring.descOffset;
    let tableSize = ring.size;
    let index = head;
    for (;;) {
      const at = tableOffset + index * DESCRIPTOR_SIZE;
      const addr = table.getUint32(at, true) + table.getUint32(at + 4, true) * TWO_TO_32;
      const len = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + SPLIT_FLAGS, true);
      const next = table.getUint16(at + SPLIT_NEXT, true);

      if ((flags & DescFlags.indirect) !== 0) {
        const error = this.enterIndirect(index, flags, addr, len);
        if (error !== ChainError.none) return error;
        const region = memory.regionOfGuestRange(addr, len);
        table = memory.spaces[region]!.view;
        tableOffset = memory.offsetIn(region, addr);
        tableSize = len / DESCRIPTOR_SIZE;
        index = 0;
        continue;
      }
      const error = this.record(index, flags, addr, len);
      if (error !== ChainError.none) return error;
      if ((flags & DescFlags.next) === 0) return ChainError.none;
      if (next >= tableSize) return this.fail(ChainError.nextOutOfRange, index, addr, len);
      index = next;
    }
  }

  /**
   * A packed chain: consecutive ring descriptors while NEXT is set, wrapping at the ring's end,
   * the buffer id in the last one; or one descriptor pointing at an indirect table whose
   * descriptors follow each other, as many as fit its length, WRITE their only flag (the packed indirect rules).
   * The caller checked that the first one is available; the driver makes the rest available
   * with it (it writes the first's flags last).
   */
  private walkPacked(slot: number): ChainErrorCode {
    const ring = this.ring;
    const memory = this.memory;
    const view = memory.spaces[ring.descRegion]!.view;
    const base = ring.descOffset;
    const size = ring.size;
    let index = slot;
    for (;;) {
      const at = base + index * DESCRIPTOR_SIZE;
      const addr = view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_TO_32;
      const len = view.getUint32(at + 8, true);
      const flags = view.getUint16(at + PACKED_FLAGS, true);
      this.ringDescriptors++;
      if ((flags & DescFlags.indirect) !== 0) {
        const error = this.enterIndirect(index, flags, addr, len);
        if (error !== ChainError.none) return error;
        const tableError = this.walkPackedIndirect(addr, len);
        if (tableError !== ChainError.none) return tableError;
        this.head = view.getUint16(at + PACKED_ID, true);
        return ChainError.none;
      }
      // A chain round the whole ring fails here, at the first buffer past the queue size.
      const error = this.record(index, flags, addr, len);
      if (error !== ChainError.none) return error;
      if ((flags & DescFlags.next) === 0) {
        this.head = view.getUint16(at + PACKED_ID, true);
        return ChainError.none;
      }
      index = index + 1 === size ? 0 : index + 1;
    }
  }

  /** The descriptors of a packed indirect table (checked by enterIndirect), in order. */
  private walkPackedIndirect(addr: number, len: number): ChainErrorCode {
    const memory = this.memory;
    const region = memory.regionOfGuestRange(addr, len);
    const table = memory.spaces[region]!.view;
    const tableOffset = memory.offsetIn(region, addr);
    const entries = len / DESCRIPTOR_SIZE;
    for (let index = 0; index < entries; index++) {
      const at = tableOffset + index * DESCRIPTOR_SIZE;
      const bufferAddr = table.getUint32(at, true) + table.getUint32(at + 4, true) * TWO_TO_32;
      const bufferLen = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + PACKED_FLAGS, true);
      if ((flags & DescFlags.indirect) !== 0) return this.fail(ChainError.nestedIndirect, index, bufferAddr, bufferLen);
      // NEXT means nothing in a packed table (its length says where it ends): only WRITE counts.
      const error = this.record(index, flags & DescFlags.write, bufferAddr, bufferLen);
      if (error !== ChainError.none) return error;
    }
    return ChainError.none;
  }

  /** The rules of an indirect descriptor, the same for both layouts; marks the chain indirect. */
  private enterIndirect(index: number, flags: number, addr: number, len: number): ChainErrorCode {
    if (!this.indirectAllowed) return this.fail(ChainError.indirectNotNegotiated, index, addr, len);
    if (this.indirect) return this.fail(ChainError.nestedIndirect, index, addr, len);
    if ((flags & DescFlags.next) !== 0) return this.fail(ChainError.indirectWithNext, index, addr, len);
    if (len === 0 || len % DESCRIPTOR_SIZE !== 0 || len / DESCRIPTOR_SIZE > this.region.length) {
      return this.fail(ChainError.indirectBadLength, index, addr, len);
    }
    if (this.memory.regionOfGuestRange(addr, len) < 0) return this.fail(ChainError.indirectOutsideMemory, index, addr, len);
    this.indirect = true;
    return ChainError.none;
  }

  /** One buffer of the chain: inside guest memory, within the queue size, readable ones first. */
  private record(index: number, flags: number, addr: number, len: number): ChainErrorCode {
    const n = this.count;
    if (n === this.region.length) return this.fail(ChainError.chainTooLong, index, addr, len);
    const memory = this.memory;
    const region = memory.regionOfGuestRange(addr, len);
    if (region < 0) return this.fail(ChainError.bufferOutsideMemory, index, addr, len);
    const isWritable = (flags & DescFlags.write) !== 0;
    if (isWritable) {
      this.sawWritable = true;
      this.writableBytes += len;
    } else {
      if (this.sawWritable) return this.fail(ChainError.readableAfterWritable, index, addr, len);
      this.readableBytes += len;
    }
    this.region[n] = region;
    this.offset[n] = memory.offsetIn(region, addr);
    this.address[n] = addr;
    this.length[n] = len;
    this.writable[n] = isWritable ? 1 : 0;
    this.count = n + 1;
    return ChainError.none;
  }

  private fail(code: ChainErrorCode, descriptor: number, address: number, length: number): ChainErrorCode {
    this.errorDescriptor = descriptor;
    this.errorAddress = address;
    this.errorLength = length;
    return code;
  }
}
