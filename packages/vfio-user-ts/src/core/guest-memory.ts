/**
 * Guest RAM as this process sees it: the regions of a `MemoryTable`, each mapped once, with
 * bounds-checked translation from guest-physical addresses to (region, offset). Everything that
 * turns a guest-controlled address into memory access goes through here.
 */
import { MemoryTable, type MemoryRegion } from './memory-table.js';

/**
 * Bytes seen four ways: a DataView for fields at any offset, and 64-bit and 32-bit words and a
 * byte array for the bulk copies of device/copy-bytes.ts.
 */
export interface ByteSpace {
  readonly view: DataView;
  /**
   * The space as 8-byte elements, moved as raw bits (never computed with); empty when the space
   * does not start 8-byte aligned in its buffer (copies then move 32-bit words).
   */
  readonly doubles: Float64Array;
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
}

const NO_DOUBLES = new Float64Array(0);

/** A ByteSpace over `length` bytes of `buffer` from `byteOffset` (a multiple of 4). */
export function byteSpace(buffer: ArrayBufferLike, byteOffset = 0, length = buffer.byteLength - byteOffset): ByteSpace {
  if (byteOffset % 4 !== 0) throw new Error(`a byte space must start 4-byte aligned, not at ${byteOffset}`);
  return {
    view: new DataView(buffer, byteOffset, length),
    doubles: byteOffset % 8 === 0 ? new Float64Array(buffer, byteOffset, Math.floor(length / 8)) : NO_DOUBLES,
    words: new Int32Array(buffer, byteOffset, Math.floor(length / 4)),
    bytes: new Uint8Array(buffer, byteOffset, length),
  };
}

/** Maps `length` bytes of `fd` starting at the page-aligned `offset`. */
export type MapFunction = (fd: number, offset: number, length: number) => ArrayBuffer;
export type UnmapFunction = (buffer: ArrayBuffer) => void;
/** The SIGBUS guard's slot of a mapping (sys.mappingGuard), -1 when it has none. */
export type GuardFunction = (buffer: ArrayBuffer) => number;
/** Reads the guard's per-slot fault counts (sys.guestFaults). */
export interface FaultCounts {
  inSlot(slot: number): number;
  firstPage(slot: number): number;
}

const PAGE_SIZE = 4096;

export class GuestMemory extends MemoryTable {
  /** Per region: its bytes, index 0 = the region's first guest-physical byte. */
  readonly bytes: readonly Uint8Array[];
  /** Per region: the same bytes as a ByteSpace (offset 0 = the region's first byte). */
  readonly spaces: readonly ByteSpace[];
  private readonly mappings: ArrayBuffer[];
  private readonly unmap: UnmapFunction | null;
  /** Per region: its mapping's SIGBUS guard slot (-1: unguarded), and where the region starts in it. */
  private readonly guards: number[] = [];
  private readonly leads: number[] = [];

  /**
   * Maps every region with `map`. With `guard` (for sys.mapGuest), the regions' guard slots are
   * kept so that truncatedRegion() can tell which region's file shrank under it.
   */
  constructor(regions: readonly MemoryRegion[], map: MapFunction, unmap: UnmapFunction | null, guard: GuardFunction | null = null) {
    super(regions);
    const bytes: Uint8Array[] = [];
    const spaces: ByteSpace[] = [];
    this.mappings = [];
    this.unmap = unmap;
    try {
      for (const r of regions) {
        if (r.mmapOffset % 4 !== 0) throw new Error(`region at 0x${r.guestPhysAddr.toString(16)}: mmap offset ${r.mmapOffset} is not 4-byte aligned`);
        // mmap wants a page-aligned file offset; the region may start inside a page.
        const lead = r.mmapOffset % PAGE_SIZE;
        const buffer = map(r.fd, r.mmapOffset - lead, r.size + lead);
        this.mappings.push(buffer);
        this.guards.push(guard ? guard(buffer) : -1);
        this.leads.push(lead);
        bytes.push(new Uint8Array(buffer, lead, r.size));
        spaces.push(byteSpace(buffer, lead, r.size));
      }
    } catch (error) {
      this.close();
      throw error;
    }
    this.bytes = bytes;
    this.spaces = spaces;
  }

  /** Offset of `gpa` inside region `region` (which must hold it). */
  offsetIn(region: number, gpa: number): number {
    return gpa - this.gpaStart[region]!;
  }

  /** The bytes [gpa, gpa + length) as one view, or null when they are not inside one region. */
  slice(gpa: number, length: number): Uint8Array | null {
    const region = this.regionOfGuestRange(gpa, length);
    if (region < 0) return null;
    const start = gpa - this.gpaStart[region]!;
    return this.bytes[region]!.subarray(start, start + length);
  }

  /**
   * A typed view of `count` elements at `gpa` (for the rings), or null when the range is not
   * inside one region or not aligned to the element size.
   */
  typedView<T extends Uint16Array | Uint32Array>(
    kind: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number },
    gpa: number,
    count: number,
  ): T | null {
    const region = this.regionOfGuestRange(gpa, count * kind.BYTES_PER_ELEMENT);
    if (region < 0) return null;
    const bytes = this.bytes[region]!;
    const byteOffset = bytes.byteOffset + gpa - this.gpaStart[region]!;
    if (byteOffset % kind.BYTES_PER_ELEMENT !== 0) return null;
    return new kind(bytes.buffer, byteOffset, count);
  }

  /**
   * The first region the SIGBUS guard absorbed a fault in (its file was truncated after it was
   * mapped: those pages now read as zeros and writes to them are lost), or -1.
   */
  truncatedRegion(faults: FaultCounts): number {
    const guards = this.guards;
    for (let i = 0; i < guards.length; i++) if (guards[i]! >= 0 && faults.inSlot(guards[i]!) > 0) return i;
    return -1;
  }

  /**
   * Offset in region `region` of the page of the guard's first fault there (the first page the
   * device touched beyond the file's end; the end itself may be lower), or -1.
   */
  firstFaultOffset(region: number, faults: FaultCounts): number {
    const slot = this.guards[region] ?? -1;
    const page = slot >= 0 ? faults.firstPage(slot) : -1;
    return page < 0 ? -1 : Math.max(0, page * PAGE_SIZE - this.leads[region]!);
  }

  /** Unmaps every region now; views made earlier become empty. Idempotent. */
  close(): void {
    if (this.unmap) for (const buffer of this.mappings) if (buffer.byteLength > 0) this.unmap(buffer);
    this.mappings.length = 0;
    // The slots are free for other mappings now.
    this.guards.length = 0;
  }
}
