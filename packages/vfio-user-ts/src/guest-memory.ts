/**
 * Guest RAM as this process sees it: the regions of a `MemoryTable`, each mapped once, with
 * bounds-checked translation from guest-physical addresses to (region, offset). Everything that
 * turns a guest-controlled address into memory access goes through here.
 */
import { MemoryTable, type MemoryRegion } from './memory-table.js';

/** Maps `length` bytes of `fd` starting at the page-aligned `offset`. */
export type MapFunction = (fd: number, offset: number, length: number) => ArrayBuffer;
export type UnmapFunction = (buffer: ArrayBuffer) => void;

const PAGE_SIZE = 4096;

export class GuestMemory extends MemoryTable {
  /** Per region: its bytes, index 0 = the region's first guest-physical byte. */
  readonly bytes: readonly Uint8Array[];
  /** Per region: a DataView over the same bytes, for unaligned little-endian words. */
  readonly views: readonly DataView[];
  private readonly mappings: ArrayBuffer[];
  private readonly unmap: UnmapFunction | null;

  constructor(regions: readonly MemoryRegion[], map: MapFunction, unmap: UnmapFunction | null) {
    super(regions);
    const bytes: Uint8Array[] = [];
    const views: DataView[] = [];
    this.mappings = [];
    this.unmap = unmap;
    try {
      for (const r of regions) {
        // mmap wants a page-aligned file offset; the region may start inside a page.
        const lead = r.mmapOffset % PAGE_SIZE;
        const buffer = map(r.fd, r.mmapOffset - lead, r.size + lead);
        this.mappings.push(buffer);
        bytes.push(new Uint8Array(buffer, lead, r.size));
        views.push(new DataView(buffer, lead, r.size));
      }
    } catch (error) {
      this.close();
      throw error;
    }
    this.bytes = bytes;
    this.views = views;
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

  /** Unmaps every region now; views made earlier become empty. Idempotent. */
  close(): void {
    if (this.unmap) for (const buffer of this.mappings) if (buffer.byteLength > 0) this.unmap(buffer);
    this.mappings.length = 0;
  }
}
