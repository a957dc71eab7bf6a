/**
 * One split virtqueue's rings (virtio 1.2 2.7): the available ring the driver fills, the used
 * ring the device fills, and the notification suppression of both sides (flags or EVENT_IDX).
 * It hands out head indexes; it does not read descriptors (DescriptorChain does).
 *
 * Guest memory is shared with another CPU, so the two indexes that publish work across the
 * boundary (avail.idx read, used.idx written) go through Atomics: Atomics.load keeps the JIT from
 * caching it across a loop, and Atomics.store is a full barrier, so the used elements written
 * before it are visible before the index that publishes them.
 */
import type { GuestMemory } from 'vfio-user-ts';
import { RingFlags } from './virtio.js';

export interface VringAddresses {
  /** Queue size: a power of two, 1..32768. */
  readonly size: number;
  /** Guest-physical addresses of the three parts. */
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
}

/** How far the event index is parked ahead when the device polls and wants no kicks at all. */
const PARKED_EVENT_DISTANCE = 0x8000;

export class Vring {
  readonly size: number;
  /** Region and offset of the descriptor table, for DescriptorChain. */
  readonly descRegion: number;
  readonly descOffset: number;
  /** avail: [flags, idx, ring[size], used_event] */
  private readonly avail: Uint16Array;
  /** used as u16: [flags, idx, ..., avail_event at 2 + 4 * size] */
  private readonly used16: Uint16Array;
  /** used as u32: element i is at 1 + 2i (id) and 2 + 2i (len). */
  private readonly used32: Uint32Array;
  private readonly mask: number;
  private readonly eventIdx: boolean;

  /** Next avail ring slot to read (free-running u16). */
  lastAvailIdx: number;
  /** used.idx as last published. */
  private usedIdx: number;
  /** Used elements written but not yet published. */
  private pendingUsed = 0;

  private constructor(memory: GuestMemory, addresses: VringAddresses, descRegion: number, avail: Uint16Array, used16: Uint16Array, used32: Uint32Array, eventIdx: boolean, base: number) {
    this.size = addresses.size;
    this.mask = addresses.size - 1;
    this.descRegion = descRegion;
    this.descOffset = memory.offsetIn(descRegion, addresses.descAddr);
    this.avail = avail;
    this.used16 = used16;
    this.used32 = used32;
    this.eventIdx = eventIdx;
    this.lastAvailIdx = base;
    this.usedIdx = used16[1]!;
  }

  /**
   * Maps the rings of a queue; a string says why it cannot be (outside guest memory, misaligned,
   * bad size). `base` is the first avail index to read (SET_VRING_BASE).
   */
  static create(memory: GuestMemory, addresses: VringAddresses, eventIdx: boolean, base: number): Vring | string {
    const { size, descAddr, availAddr, usedAddr } = addresses;
    if (size < 1 || size > 32768 || (size & (size - 1)) !== 0) return `queue size ${size} is not a power of two in 1..32768`;
    if (descAddr % 16 !== 0 || availAddr % 2 !== 0 || usedAddr % 4 !== 0) return 'ring addresses are not aligned as the spec requires (16/2/4)';
    const descRegion = memory.regionOfGuestRange(descAddr, 16 * size);
    if (descRegion < 0) return `descriptor table 0x${descAddr.toString(16)}+${16 * size} is outside guest memory`;
    const avail = memory.typedView(Uint16Array, availAddr, 3 + size);
    if (!avail) return `available ring 0x${availAddr.toString(16)} is outside guest memory`;
    const usedBytes = 6 + 8 * size;
    const used16 = memory.typedView(Uint16Array, usedAddr, usedBytes / 2);
    const used32 = memory.typedView(Uint32Array, usedAddr, 1 + 2 * size);
    if (!used16 || !used32) return `used ring 0x${usedAddr.toString(16)} is outside guest memory`;
    return new Vring(memory, addresses, descRegion, avail, used16, used32, eventIdx, base & 0xffff);
  }

  /**
   * How many heads the driver has made available since the last take, reading avail.idx once.
   * -1 when the driver claims more than the ring holds (a corrupt or hostile index).
   */
  availableCount(): number {
    const count = (Atomics.load(this.avail, 1) - this.lastAvailIdx) & 0xffff;
    return count > this.size ? -1 : count;
  }

  /** The next available head (unchecked: DescriptorChain validates it). */
  takeHead(): number {
    const head = this.avail[2 + (this.lastAvailIdx & this.mask)]!;
    this.lastAvailIdx = (this.lastAvailIdx + 1) & 0xffff;
    return head;
  }

  /** Gives back the last `count` heads taken (a frame that did not fit after all). */
  untake(count: number): void {
    this.lastAvailIdx = (this.lastAvailIdx - count) & 0xffff;
  }

  /** Records a used element; visible to the driver at the next publish. */
  pushUsed(head: number, length: number): void {
    const slot = (this.usedIdx + this.pendingUsed) & this.mask;
    this.used32[1 + 2 * slot] = head;
    this.used32[2 + 2 * slot] = length;
    this.pendingUsed++;
  }

  /** Forgets the last `count` used elements recorded and not yet published. */
  unpushUsed(count: number): void {
    this.pendingUsed -= count;
  }

  /**
   * Publishes the used elements recorded since the last publish. Returns true when the driver
   * asked to be interrupted for them (EVENT_IDX: used_event crossed; else no NO_INTERRUPT flag).
   */
  publishUsed(): boolean {
    if (this.pendingUsed === 0) return false;
    const old = this.usedIdx;
    const next = (old + this.pendingUsed) & 0xffff;
    this.pendingUsed = 0;
    this.usedIdx = next;
    Atomics.store(this.used16, 1, next);
    if (this.eventIdx) {
      const usedEvent = Atomics.load(this.avail, 2 + this.size);
      // vring_need_event: notify if used_event lies in [old, next).
      return ((next - usedEvent - 1) & 0xffff) < ((next - old) & 0xffff);
    }
    return (Atomics.load(this.avail, 0) & RingFlags.availNoInterrupt) === 0;
  }

  /**
   * Asks the driver to kick when it adds buffers after what we have taken. The caller must check
   * availableCount() once more afterwards: buffers added before this store are not kicked for.
   */
  enableKicks(): void {
    if (this.eventIdx) Atomics.store(this.used16, 2 + 4 * this.size, this.lastAvailIdx);
    else Atomics.store(this.used16, 0, 0);
  }

  /** Asks the driver not to kick (the device is busy or polling). */
  disableKicks(): void {
    if (this.eventIdx) this.used16[2 + 4 * this.size] = (this.lastAvailIdx + PARKED_EVENT_DISTANCE) & 0xffff;
    else this.used16[0] = RingFlags.usedNoNotify;
  }
}
