/**
 * The guest's memory layout as the frontend describes it (vhost-user SET_MEM_TABLE, later a
 * vfio-user DMA map): which guest-physical ranges exist, where each lives in the frontend's
 * address space and in which file. No mappings here, so the control plane can validate ring
 * addresses without touching guest memory; `GuestMemory` adds the mappings.
 */

/** One region of guest RAM. All numbers are exact integers below 2^53. */
export interface MemoryRegion {
  /** Guest-physical address of the first byte. */
  readonly guestPhysAddr: number;
  /** Length in bytes (> 0). */
  readonly size: number;
  /** Address of the first byte in the frontend's own address space (vhost-user rings use these). */
  readonly userAddr: number;
  /** Offset of the first byte inside the file `fd` refers to. */
  readonly mmapOffset: number;
  /** The file descriptor the region is mapped from (owned by whoever received it). */
  readonly fd: number;
}

/**
 * Why a region list is unusable; `null` when it is fine. With `fileSize` (sys.fileSize), each
 * region must also lie inside its file: mmap maps beyond the end of a file without complaint,
 * and the first access there is a SIGBUS that takes the whole process down.
 */
export function checkRegions(regions: readonly MemoryRegion[], maxRegions: number, fileSize?: (fd: number) => number): string | null {
  if (regions.length === 0) return 'memory table has no regions';
  if (regions.length > maxRegions) return `memory table has ${regions.length} regions, at most ${maxRegions} allowed`;
  for (let i = 0; i < regions.length; i++) {
    const r = regions[i]!;
    if (r.size <= 0) return `region ${i} has size 0`;
    for (const [name, value] of [['guest address', r.guestPhysAddr], ['user address', r.userAddr], ['mmap offset', r.mmapOffset]] as const) {
      if (!Number.isSafeInteger(value) || !Number.isSafeInteger(value + r.size)) {
        return `region ${i}: ${name} 0x${value.toString(16)} + size 0x${r.size.toString(16)} is beyond 2^53`;
      }
    }
    for (let j = 0; j < i; j++) {
      const o = regions[j]!;
      if (r.guestPhysAddr < o.guestPhysAddr + o.size && o.guestPhysAddr < r.guestPhysAddr + r.size) {
        return `region ${i} [0x${r.guestPhysAddr.toString(16)}+0x${r.size.toString(16)}) overlaps region ${j} in guest-physical space`;
      }
      if (r.userAddr < o.userAddr + o.size && o.userAddr < r.userAddr + r.size) {
        return `region ${i} overlaps region ${j} in the frontend's address space`;
      }
    }
  }
  if (fileSize) {
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i]!;
      let bytes: number;
      try {
        bytes = fileSize(r.fd);
      } catch (error) {
        return `region ${i}: cannot tell the size of its file (${(error as Error).message})`;
      }
      if (r.mmapOffset + r.size > bytes) {
        return `region ${i}: mmap offset 0x${r.mmapOffset.toString(16)} + size 0x${r.size.toString(16)} is beyond the end of its file (${bytes} bytes)`;
      }
    }
  }
  return null;
}

export class MemoryTable {
  readonly regions: readonly MemoryRegion[];
  // Flat copies for the lookups: the hot path reads these, not the objects.
  protected readonly gpaStart: Float64Array;
  protected readonly gpaEnd: Float64Array;
  private readonly uvaStart: Float64Array;
  private readonly uvaEnd: Float64Array;

  constructor(regions: readonly MemoryRegion[]) {
    this.regions = regions;
    const n = regions.length;
    this.gpaStart = new Float64Array(n);
    this.gpaEnd = new Float64Array(n);
    this.uvaStart = new Float64Array(n);
    this.uvaEnd = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const r = regions[i]!;
      this.gpaStart[i] = r.guestPhysAddr;
      this.gpaEnd[i] = r.guestPhysAddr + r.size;
      this.uvaStart[i] = r.userAddr;
      this.uvaEnd[i] = r.userAddr + r.size;
    }
  }

  /**
   * Index of the region that holds all of [gpa, gpa + length), or -1. A range that crosses from
   * one region into another is refused even when the two are adjacent: a descriptor's buffer
   * must be one contiguous mapping (QEMU never hands out one that is not).
   */
  regionOfGuestRange(gpa: number, length: number): number {
    const end = gpa + length;
    const starts = this.gpaStart;
    const ends = this.gpaEnd;
    for (let i = 0; i < starts.length; i++) {
      if (gpa >= starts[i]! && end <= ends[i]!) return i;
    }
    return -1;
  }

  /** Guest-physical address of a frontend address whose whole range lies in one region, or -1. */
  guestAddrOfUserRange(uva: number, length: number): number {
    const end = uva + length;
    for (let i = 0; i < this.uvaStart.length; i++) {
      if (uva >= this.uvaStart[i]! && end <= this.uvaEnd[i]!) return uva - this.uvaStart[i]! + this.gpaStart[i]!;
    }
    return -1;
  }
}
