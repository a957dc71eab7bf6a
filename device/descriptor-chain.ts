/**
 * The validated walk of one descriptor chain (virtio 1.2 2.7.5 and 2.7.5.3): the only code that
 * reads descriptors. Every rule a driver can break is checked here, once: head and next inside
 * the table, no loop (no chain longer than the queue), every buffer inside one region of guest
 * memory, device-readable buffers before device-writable ones, and the indirect rules (only when
 * negotiated, not combined with NEXT, a table length that is a whole number of descriptors,
 * the table inside guest memory, no indirect inside indirect).
 *
 * A walk fills preallocated arrays (one slot per buffer), so resolving a chain allocates nothing.
 */
import { DescFlags, type GuestMemory } from 'vfio-user-ts';
import type { Vring } from './vring.js';

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

  /** Context of the last failure, for the log line. */
  errorDescriptor = 0;
  errorAddress = 0;
  errorLength = 0;

  private readonly memory: GuestMemory;
  private readonly ring: Vring;
  private readonly indirectAllowed: boolean;

  constructor(memory: GuestMemory, ring: Vring, indirectAllowed: boolean) {
    this.memory = memory;
    this.ring = ring;
    this.indirectAllowed = indirectAllowed;
    // A chain may not be longer than the queue (2.7.5.3.1), indirect tables included.
    const capacity = ring.size;
    this.region = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.address = new Float64Array(capacity);
    this.length = new Uint32Array(capacity);
    this.writable = new Uint8Array(capacity);
  }

  /** Walks the chain starting at `head`; returns ChainError.none or why it is invalid. */
  resolve(head: number): ChainErrorCode {
    this.count = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.indirect = false;
    const ring = this.ring;
    const memory = this.memory;
    const capacity = this.region.length;
    if (head >= ring.size) return this.fail(ChainError.headOutOfRange, head, 0, 0);

    let table = memory.spaces[ring.descRegion]!.view;
    let tableOffset = ring.descOffset;
    let tableSize = ring.size;
    let index = head;
    let sawWritable = false;
    for (;;) {
      const at = tableOffset + index * DESCRIPTOR_SIZE;
      const addr = table.getUint32(at, true) + table.getUint32(at + 4, true) * TWO_TO_32;
      const len = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);

      if ((flags & DescFlags.indirect) !== 0) {
        if (!this.indirectAllowed) return this.fail(ChainError.indirectNotNegotiated, index, addr, len);
        if (this.indirect) return this.fail(ChainError.nestedIndirect, index, addr, len);
        if ((flags & DescFlags.next) !== 0) return this.fail(ChainError.indirectWithNext, index, addr, len);
        if (len === 0 || len % DESCRIPTOR_SIZE !== 0 || len / DESCRIPTOR_SIZE > capacity) {
          return this.fail(ChainError.indirectBadLength, index, addr, len);
        }
        const region = memory.regionOfGuestRange(addr, len);
        if (region < 0) return this.fail(ChainError.indirectOutsideMemory, index, addr, len);
        this.indirect = true;
        table = memory.spaces[region]!.view;
        tableOffset = memory.offsetIn(region, addr);
        tableSize = len / DESCRIPTOR_SIZE;
        index = 0;
        continue;
      }

      const n = this.count;
      if (n === capacity) return this.fail(ChainError.chainTooLong, index, addr, len);
      const region = memory.regionOfGuestRange(addr, len);
      if (region < 0) return this.fail(ChainError.bufferOutsideMemory, index, addr, len);
      const isWritable = (flags & DescFlags.write) !== 0;
      if (isWritable) {
        sawWritable = true;
        this.writableBytes += len;
      } else {
        if (sawWritable) return this.fail(ChainError.readableAfterWritable, index, addr, len);
        this.readableBytes += len;
      }
      this.region[n] = region;
      this.offset[n] = memory.offsetIn(region, addr);
      this.address[n] = addr;
      this.length[n] = len;
      this.writable[n] = isWritable ? 1 : 0;
      this.count = n + 1;

      if ((flags & DescFlags.next) === 0) return ChainError.none;
      if (next >= tableSize) return this.fail(ChainError.nextOutOfRange, index, addr, len);
      index = next;
    }
  }

  private fail(code: ChainErrorCode, descriptor: number, address: number, length: number): ChainErrorCode {
    this.errorDescriptor = descriptor;
    this.errorAddress = address;
    this.errorLength = length;
    return code;
  }
}
