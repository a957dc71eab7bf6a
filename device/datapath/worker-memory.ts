/**
 * The guest memory a datapath worker maps for itself, and the watch on it. The frontend keeps
 * the files behind the mappings and can truncate one after SET_MEM_TABLE; the addon's SIGBUS
 * guard then puts zero pages where the file ended, so the access completes, and counts the
 * fault. This module reads that count (one read per burst while nothing happened) and says,
 * once per memory table, that the memory in use lost pages; what the worker does about it is
 * the Datapath's.
 */
import { GuestMemory, sys, type MemoryRegion } from 'vfio-user-ts';

export class WorkerMemory {
  private memory: GuestMemory | null = null;
  /**
   * The guard's process-wide fault count when this worker last looked: a change means some
   * mapping (maybe one of another worker's) lost pages to a truncated file.
   */
  private faultsSeen = sys.guestFaults.total;
  /** The region of the memory in use that lost pages, -1 while none has (until the next table). */
  private truncatedRegion = -1;

  /** The memory in use, null before the first table and after an empty one. */
  get current(): GuestMemory | null {
    return this.memory;
  }

  /** Whether the memory in use lost pages (from the first time it was seen until the next table). */
  get truncated(): boolean {
    return this.truncatedRegion >= 0;
  }

  /**
   * Maps a new memory table (an empty one just unmaps): null, or why it cannot. The caller has
   * stopped every queue that pointed into the old mappings.
   */
  map(regions: readonly MemoryRegion[]): string | null {
    this.close();
    this.truncatedRegion = -1;
    if (regions.length === 0) return null;
    try {
      // Guarded: the frontend keeps the files and can truncate them under us.
      this.memory = new GuestMemory(regions, sys.mapGuest, sys.unmap, sys.mappingGuard);
    } catch (error) {
      return `cannot map guest memory: ${(error as Error).message}`;
    }
    return null;
  }

  /** True the first time, per memory table, that the memory in use shows pages lost; then false. */
  newlyTruncated(): boolean {
    const total = sys.guestFaults.total;
    if (total === this.faultsSeen) return false;
    this.faultsSeen = total;
    const memory = this.memory;
    if (this.truncatedRegion >= 0 || !memory) return false;
    this.truncatedRegion = memory.truncatedRegion(sys.guestFaults);
    return this.truncatedRegion >= 0;
  }

  /** What was lost, for the control plane; only after newlyTruncated() said so. */
  truncationDetail(): string {
    const memory = this.memory!;
    const region = this.truncatedRegion;
    const { guestPhysAddr, size } = memory.regions[region]!;
    const at = memory.firstFaultOffset(region, sys.guestFaults);
    return `guest memory region ${region} (gpa 0x${guestPhysAddr.toString(16)}, 0x${size.toString(16)} bytes) shrank under the device: its page at offset 0x${at.toString(16)} is beyond the end of its file (the frontend truncated it after SET_MEM_TABLE); the device read zeros there instead of dying of SIGBUS`;
  }

  close(): void {
    this.memory?.close();
    this.memory = null;
  }
}
