/**
 * An in-process virtio driver for unit tests: guest RAM is a memfd mapped twice, once as the
 * device's GuestMemory and once as the "driver's" view, so the device code reads exactly what a
 * driver in another process would have written. Queues are laid out as the spec says and filled
 * descriptor by descriptor, valid or hostile.
 */
import { DescFlags, GuestMemory, PackedDescFlags, sys, type MemoryRegion } from 'vfio-user-ts';
import { PackedRing } from '../../device/packed-ring.js';
import { Vring } from '../../device/vring.js';

export interface FakeRegion {
  readonly guestPhysAddr: number;
  readonly size: number;
}

export interface FakeBuffer {
  /** Where the buffer is; allocated when absent. */
  readonly gpa?: number;
  readonly length: number;
  readonly writable?: boolean;
  /** Contents for a device-readable buffer. */
  readonly data?: Uint8Array;
}

export class FakeGuest {
  readonly memory: GuestMemory;
  readonly regions: readonly MemoryRegion[];
  private readonly fd: number;
  private readonly driverMapping: ArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** Next free byte per region (bump allocation). */
  private readonly next: number[];

  constructor(layout: readonly FakeRegion[] = [{ guestPhysAddr: 0x100000, size: 4 << 20 }]) {
    const total = layout.reduce((sum, r) => sum + r.size, 0);
    this.fd = sys.memfdCreate('zcnic-fake-guest', total);
    let offset = 0;
    this.regions = layout.map((r) => {
      const region = { guestPhysAddr: r.guestPhysAddr, size: r.size, userAddr: 0x7f0000000000 + offset, mmapOffset: offset, fd: this.fd };
      offset += r.size;
      return region;
    });
    this.memory = new GuestMemory(this.regions, sys.mapShared, sys.unmap);
    this.driverMapping = sys.mapShared(this.fd, 0, total);
    this.bytes = new Uint8Array(this.driverMapping);
    this.view = new DataView(this.driverMapping);
    this.next = layout.map(() => 0);
  }

  /** Offset in the memfd of a guest-physical address (which must be in a region). */
  fileOffset(gpa: number): number {
    for (const r of this.regions) if (gpa >= r.guestPhysAddr && gpa < r.guestPhysAddr + r.size) return r.mmapOffset + gpa - r.guestPhysAddr;
    throw new Error(`gpa 0x${gpa.toString(16)} is not in the fake guest's memory`);
  }

  alloc(size: number, align = 16, region = 0): number {
    const r = this.regions[region]!;
    const at = Math.ceil(this.next[region]! / align) * align;
    if (at + size > r.size) throw new Error('fake guest out of memory');
    this.next[region] = at + size;
    return r.guestPhysAddr + at;
  }

  write(gpa: number, data: Uint8Array): void {
    this.bytes.set(data, this.fileOffset(gpa));
  }

  read(gpa: number, length: number): Uint8Array {
    const at = this.fileOffset(gpa);
    return this.bytes.slice(at, at + length);
  }

  u16(gpa: number): number {
    return this.view.getUint16(this.fileOffset(gpa), true);
  }
  setU16(gpa: number, value: number): void {
    this.view.setUint16(this.fileOffset(gpa), value, true);
  }
  u32(gpa: number): number {
    return this.view.getUint32(this.fileOffset(gpa), true);
  }
  setU32(gpa: number, value: number): void {
    this.view.setUint32(this.fileOffset(gpa), value, true);
  }

  close(): void {
    this.memory.close();
    sys.unmap(this.driverMapping);
    sys.close(this.fd);
  }
}

export class FakeQueue {
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  private nextDescriptor = 0;
  private availIdx = 0;

  constructor(readonly guest: FakeGuest, readonly size: number) {
    this.descAddr = guest.alloc(16 * size, 16);
    this.availAddr = guest.alloc(6 + 2 * size, 2);
    this.usedAddr = guest.alloc(6 + 8 * size, 4);
  }

  get addresses(): { size: number; descAddr: number; availAddr: number; usedAddr: number } {
    return { size: this.size, descAddr: this.descAddr, availAddr: this.availAddr, usedAddr: this.usedAddr };
  }

  /** The device's view of this queue. */
  vring(eventIdx = false, base = 0): Vring {
    const ring = Vring.create(this.guest.memory, this.addresses, eventIdx, base);
    if (typeof ring === 'string') throw new Error(ring);
    return ring;
  }

  /** Writes descriptor `index` of the table at `table` (default: the queue's own). */
  setDescriptor(index: number, addr: number, length: number, flags: number, next: number, table = this.descAddr): void {
    const at = table + 16 * index;
    const g = this.guest;
    g.setU32(at, addr % 4294967296);
    g.setU32(at + 4, Math.floor(addr / 4294967296));
    g.setU32(at + 8, length);
    g.setU16(at + 12, flags);
    g.setU16(at + 14, next);
  }

  /** Lays out a chain (allocating buffers as needed) and returns its head; not yet made available. */
  addChain(buffers: readonly FakeBuffer[], options: { indirect?: boolean } = {}): number {
    const addresses = buffers.map((b) => {
      const gpa = b.gpa ?? this.guest.alloc(Math.max(1, b.length), 1);
      if (b.data) this.guest.write(gpa, b.data);
      return gpa;
    });
    const flagsOf = (i: number): number => (buffers[i]!.writable ? DescFlags.write : 0) | (i < buffers.length - 1 ? DescFlags.next : 0);
    if (options.indirect) {
      const table = this.guest.alloc(16 * buffers.length, 16);
      buffers.forEach((b, i) => this.setDescriptor(i, addresses[i]!, b.length, flagsOf(i), i + 1, table));
      const head = this.takeDescriptors(1);
      this.setDescriptor(head, table, 16 * buffers.length, DescFlags.indirect, 0);
      return head;
    }
    const head = this.takeDescriptors(buffers.length);
    buffers.forEach((b, i) => this.setDescriptor((head + i) % this.size, addresses[i]!, b.length, flagsOf(i), (head + i + 1) % this.size));
    return head;
  }

  private takeDescriptors(count: number): number {
    const head = this.nextDescriptor;
    this.nextDescriptor = (this.nextDescriptor + count) % this.size;
    return head;
  }

  /** Puts `head` in the available ring and publishes it. */
  makeAvailable(head: number): void {
    this.guest.setU16(this.availAddr + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.guest.setU16(this.availAddr + 2, this.availIdx);
  }

  /**
   * What Linux's virtqueue_reset() does to a split ring it keeps (virtqueue_reset_split): the
   * same memory, avail and used flags, indexes and event fields zeroed, descriptors left as
   * they were.
   */
  resetRing(): void {
    this.availIdx = 0;
    for (const at of [this.availAddr, this.availAddr + 2, this.availAddr + 4 + 2 * this.size, this.usedAddr, this.usedAddr + 2, this.usedAddr + 4 + 8 * this.size]) this.guest.setU16(at, 0);
  }

  /** Sets avail.idx directly (hostile tests). */
  setAvailIdx(value: number): void {
    this.availIdx = value & 0xffff;
    this.guest.setU16(this.availAddr + 2, this.availIdx);
  }

  /** Rewrites avail ring slot `slot` (a driver changing an entry the device already took). */
  setAvailSlot(slot: number, head: number): void {
    this.guest.setU16(this.availAddr + 4 + 2 * (slot % this.size), head);
  }
  /** Sets used.idx directly (a ring a previous device left, or one near the 16-bit wrap). */
  setUsedIdx(value: number): void {
    this.guest.setU16(this.usedAddr + 2, value & 0xffff);
  }
  /** Rewrites the id of used element `slot` (a driver scribbling on the used ring). */
  setUsedId(slot: number, id: number): void {
    this.guest.setU32(this.usedAddr + 4 + 8 * (slot % this.size), id);
  }
  setAvailFlags(flags: number): void {
    this.guest.setU16(this.availAddr, flags);
  }
  setUsedEvent(value: number): void {
    this.guest.setU16(this.availAddr + 4 + 2 * this.size, value);
  }
  availEvent(): number {
    return this.guest.u16(this.usedAddr + 4 + 8 * this.size);
  }
  usedFlags(): number {
    return this.guest.u16(this.usedAddr);
  }
  usedIdx(): number {
    return this.guest.u16(this.usedAddr + 2);
  }
  usedElement(slot: number): { id: number; length: number } {
    const at = this.usedAddr + 4 + 8 * (slot % this.size);
    return { id: this.guest.u32(at), length: this.guest.u32(at + 4) };
  }
}

/** A packed ring as Linux's virtio_ring drives it (2.8): descriptors posted in place, the first one's flags last. */
export class FakePackedQueue {
  readonly descAddr: number;
  /** The driver area (the driver's event suppression) and the device area (the device's). */
  readonly driverEventAddr: number;
  readonly deviceEventAddr: number;
  /** The driver's next slot to post at and its wrap counter there. */
  private availSlot = 0;
  private availWrap = 1;
  /** The driver's next slot to look for a used element at, and the wrap counter it expects there. */
  private usedSlot = 0;
  private usedWrap = 1;
  /** Ring descriptors each posted id took (what the driver skips when it gets the id back). */
  private readonly descriptorsOf = new Map<number, number>();
  private nextId = 0;

  constructor(readonly guest: FakeGuest, readonly size: number) {
    this.descAddr = guest.alloc(16 * size, 16);
    this.driverEventAddr = guest.alloc(4, 4);
    this.deviceEventAddr = guest.alloc(4, 4);
  }

  get addresses(): { size: number; descAddr: number; availAddr: number; usedAddr: number } {
    return { size: this.size, descAddr: this.descAddr, availAddr: this.driverEventAddr, usedAddr: this.deviceEventAddr };
  }

  /** The device's view of this queue; `base` as SET_VRING_BASE gives it (default: a fresh ring). */
  ring(eventIdx = false, base = 0x8000): PackedRing {
    const ring = PackedRing.create(this.guest.memory, this.addresses, eventIdx, base, false);
    if (typeof ring === 'string') throw new Error(ring);
    return ring;
  }

  /** The AVAIL/USED bits of a descriptor the driver makes available on its current lap. */
  availBits(wrap = this.availWrap): number {
    return wrap === 1 ? PackedDescFlags.avail : PackedDescFlags.used;
  }

  /** Writes ring slot `slot` (or descriptor `slot` of `table`) as it is: hostile tests set any flags. */
  setDescriptor(slot: number, addr: number, length: number, id: number, flags: number, table = this.descAddr): void {
    const at = table + 16 * slot;
    const g = this.guest;
    g.setU32(at, addr % 4294967296);
    g.setU32(at + 4, Math.floor(addr / 4294967296));
    g.setU32(at + 8, length);
    g.setU16(at + 12, id);
    g.setU16(at + 14, flags);
  }

  descriptorFlags(slot: number): number {
    return this.guest.u16(this.descAddr + 16 * slot + 14);
  }

  private bufferAddress(b: FakeBuffer): number {
    const gpa = b.gpa ?? this.guest.alloc(Math.max(1, b.length), 1);
    if (b.data) this.guest.write(gpa, b.data);
    return gpa;
  }

  /**
   * Posts a chain at the driver's position and makes it available (the first descriptor's flags
   * written last); returns its buffer id. With `indirect`, one ring descriptor points at a table.
   */
  post(buffers: readonly FakeBuffer[], options: { indirect?: boolean; id?: number } = {}): number {
    const id = options.id ?? this.nextId++ % 0x8000;
    const addresses = buffers.map((b) => this.bufferAddress(b));
    const start = this.availSlot;
    const startFlags: number[] = [];
    if (options.indirect) {
      const table = this.guest.alloc(16 * buffers.length, 16);
      buffers.forEach((b, i) => this.setDescriptor(i, addresses[i]!, b.length, 0, b.writable ? DescFlags.write : 0, table));
      startFlags.push(DescFlags.indirect | this.availBits());
      this.setDescriptor(start, table, 16 * buffers.length, id, 0);
      this.advance();
    } else {
      buffers.forEach((b, i) => {
        const flags = (b.writable ? DescFlags.write : 0) | (i < buffers.length - 1 ? DescFlags.next : 0) | this.availBits();
        this.setDescriptor(this.availSlot, addresses[i]!, b.length, id, i === 0 ? 0 : flags);
        if (i === 0) startFlags.push(flags);
        this.advance();
      });
    }
    this.descriptorsOf.set(id, options.indirect ? 1 : buffers.length);
    this.guest.setU16(this.descAddr + 16 * start + 14, startFlags[0]!);
    return id;
  }

  private advance(): void {
    if (++this.availSlot === this.size) {
      this.availSlot = 0;
      this.availWrap ^= 1;
    }
  }

  /**
   * What Linux's virtqueue_reset() does to a packed ring it keeps (virtqueue_reset_packed): the
   * descriptors and both event suppression structures zeroed, posting starting over at slot 0
   * with wrap counter 1.
   */
  resetRing(): void {
    this.guest.write(this.descAddr, new Uint8Array(16 * this.size));
    this.guest.write(this.driverEventAddr, new Uint8Array(4));
    this.guest.write(this.deviceEventAddr, new Uint8Array(4));
    this.availSlot = 0;
    this.availWrap = 1;
    this.usedSlot = 0;
    this.usedWrap = 1;
    this.descriptorsOf.clear();
  }

  /** The next used element, as virtqueue_get_buf would find it, or null when none is there yet. */
  takeUsed(): { id: number; length: number; written: boolean } | null {
    const element = this.nextUsed();
    if (element === null) return null;
    const descriptors = this.descriptorsOf.get(element.id);
    if (descriptors === undefined) throw new Error(`used id ${element.id} was never posted`);
    this.descriptorsOf.delete(element.id);
    this.skipUsed(descriptors);
    return element;
  }

  /**
   * The next used element as a driver that negotiated IN_ORDER reads it (virtio 1.2, 2.8
   * "In-order use of descriptors"): it completes every chain posted up to and including the one
   * whose id it names, and the driver skips all their descriptors. `chains` says how many.
   * Null when none is there yet.
   */
  takeUsedInOrder(): { id: number; length: number; written: boolean; chains: number } | null {
    const element = this.nextUsed();
    if (element === null) return null;
    if (!this.descriptorsOf.has(element.id)) throw new Error(`used id ${element.id} was never posted`);
    let chains = 0;
    // The map keeps the order of posting: the chains in flight, oldest first.
    for (const [posted, descriptors] of this.descriptorsOf) {
      this.descriptorsOf.delete(posted);
      this.skipUsed(descriptors);
      chains++;
      if (posted === element.id) break;
    }
    return { ...element, chains };
  }

  /** The used element at the driver's position, if the device has written one there on this lap. */
  private nextUsed(): { id: number; length: number; written: boolean } | null {
    const at = this.descAddr + 16 * this.usedSlot;
    const flags = this.guest.u16(at + 14);
    const avail = (flags & PackedDescFlags.avail) !== 0 ? 1 : 0;
    const used = (flags & PackedDescFlags.used) !== 0 ? 1 : 0;
    if (avail !== used || used !== this.usedWrap) return null;
    return { id: this.guest.u16(at + 12), length: this.guest.u32(at + 8), written: (flags & DescFlags.write) !== 0 };
  }

  private skipUsed(descriptors: number): void {
    this.usedSlot += descriptors;
    if (this.usedSlot >= this.size) {
      this.usedSlot -= this.size;
      this.usedWrap ^= 1;
    }
  }

  /** The driver's position for its next used element (slot | wrap << 15), as it puts it in off_wrap. */
  get usedOffWrap(): number {
    return this.usedSlot | (this.usedWrap << 15);
  }

  setDriverEvent(flags: number, offWrap = 0): void {
    this.guest.setU16(this.driverEventAddr, offWrap);
    this.guest.setU16(this.driverEventAddr + 2, flags);
  }

  deviceEvent(): { offWrap: number; flags: number } {
    return { offWrap: this.guest.u16(this.deviceEventAddr), flags: this.guest.u16(this.deviceEventAddr + 2) };
  }
}
