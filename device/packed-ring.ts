/**
 * One packed virtqueue (virtio 1.2 2.8): a single ring of descriptors that the driver makes
 * available and the device hands back used in place, told apart by the AVAIL and USED flag bits
 * against each side's wrap counter (which flips every time its position goes round the ring),
 * and two event suppression structures: the driver's (driver area: when it wants used-buffer
 * notifications) and the device's (device area: when the device wants kicks).
 *
 * Completion is in order (see virtqueue.ts), so the used element of a chain goes in the slot
 * where that chain started, with the wrap counter of that slot: the driver, whatever IN_ORDER
 * says, finds its next used element at its last used slot plus the descriptors of the buffer it
 * last got back. A burst's elements are written at publish, the first one's flags last
 * (the spec's batching of used descriptors: the driver sees none of the batch before all of it);
 * with IN_ORDER a transmitq's burst is one element (completeInBatches).
 */
import type { GuestMemory } from 'vfio-user-ts';
import { isValidQueueSize, MAX_QUEUE_SIZE, PackedDescFlags, PackedEventFlags, DescFlags } from 'vfio-user-ts';
import type { ChainErrorCode, DescriptorChain } from './descriptor-chain.js';
import type { InflightRecovery } from './inflight-tracker.js';
import type { RingLayout, Virtqueue, VringAddresses } from './virtqueue.js';

/** An event suppression structure (2.8.10): u16 desc_event_off_wrap, u16 desc_event_flags. */
const EVENT_OFF_WRAP = 0;
const EVENT_FLAGS = 1;
/** GET/SET_VRING_BASE of a packed ring: bits 0-14 the index, bit 15 its wrap counter, per half. */
const WRAP_BIT = 0x8000;
const INDEX_MASK = 0x7fff;
/** The u16 and u32 elements of one 16-byte descriptor. */
const DESCRIPTOR_U16 = 8;
const DESCRIPTOR_U32 = 4;
const ID_U16 = 6;
const FLAGS_U16 = 7;
const LEN_U32 = 2;

/** Whether a chain goes on after the descriptor with `flags` (an indirect one ends it: NEXT with it is the walk's error). */
function chainContinues(flags: number): boolean {
  return (flags & DescFlags.next) !== 0 && (flags & DescFlags.indirect) === 0;
}

/** Whether the descriptor with `flags` is available to a device whose driver wrap counter is `wrap` (1 or 0). */
function isAvailable(flags: number, wrap: number): boolean {
  const avail = (flags & PackedDescFlags.avail) !== 0 ? 1 : 0;
  const used = (flags & PackedDescFlags.used) !== 0 ? 1 : 0;
  return avail === wrap && used !== wrap;
}

export class PackedRing implements Virtqueue {
  readonly layout: RingLayout = 'packed';
  readonly size: number;
  readonly descRegion: number;
  readonly descOffset: number;
  /** VIRTIO_F_RING_RESET was negotiated: see driverReset(). */
  followsDriverResets = false;
  readonly recovery: InflightRecovery | null = null;
  private readonly desc16: Uint16Array;
  private readonly desc32: Uint32Array;
  /** The driver's event suppression (read), the device's (written). */
  private readonly driverEvent: Uint16Array;
  private readonly deviceEvent: Uint16Array;
  private readonly eventIdx: boolean;

  /** The next slot to take and the driver's wrap counter there (1 or 0). */
  private availSlot: number;
  private availWrap: number;
  /** The next slot to write a used element in and the device's wrap counter there. */
  private usedSlot: number;
  private usedWrap: number;
  /** Completions published (the split ring's used.idx, for the state file and reports). */
  private published = 0;
  /**
   * Chains taken since the last publish, in order: where each started (slot, wrap), how many
   * ring descriptors it took, and, once pushed, its used element (id, length). `taken` entries,
   * the first `pushed` of them with used elements.
   */
  private readonly takenSlot: Uint16Array;
  private readonly takenWrap: Uint8Array;
  private readonly takenDescriptors: Uint16Array;
  private readonly usedId: Uint16Array;
  private readonly usedLength: Uint32Array;
  private taken = 0;
  private pushed = 0;
  /** Ring descriptors the `taken` chains hold (what availableCount may not count again). */
  private takenSlots = 0;
  /** A publish writes one used element for all its chains (completeInBatches). */
  private batched = false;
  /** Whether a notification was sent since the queue started (see Vring.signalled). */
  private signalled = false;
  /** The base the ring started from: a restart, not a fresh ring, when it is not slot 0 of the first lap. */
  private readonly restarted: boolean;
  /** The device has written its event suppression since the start (or the last reset followed). */
  private suppressionWritten = false;
  /** A driver's reset seen in the device area just before the device wrote over it. */
  private resetSeen = false;

  private constructor(memory: GuestMemory, addresses: VringAddresses, descRegion: number, driverEvent: Uint16Array, deviceEvent: Uint16Array, eventIdx: boolean, base: number) {
    const size = addresses.size;
    this.size = size;
    this.descRegion = descRegion;
    this.descOffset = memory.offsetIn(descRegion, addresses.descAddr);
    this.desc16 = memory.typedView(Uint16Array, addresses.descAddr, DESCRIPTOR_U16 * size)!;
    this.desc32 = memory.typedView(Uint32Array, addresses.descAddr, DESCRIPTOR_U32 * size)!;
    this.driverEvent = driverEvent;
    this.deviceEvent = deviceEvent;
    this.eventIdx = eventIdx;
    // Every chain the previous device took it completed (in order, before it stopped), so the
    // used position resumes where the avail one does.
    this.availSlot = base & INDEX_MASK;
    this.availWrap = (base & WRAP_BIT) !== 0 ? 1 : 0;
    this.usedSlot = this.availSlot;
    this.usedWrap = this.availWrap;
    this.restarted = this.availSlot !== 0 || this.availWrap !== 1;
    this.takenSlot = new Uint16Array(size);
    this.takenWrap = new Uint8Array(size);
    this.takenDescriptors = new Uint16Array(size);
    this.usedId = new Uint16Array(size);
    this.usedLength = new Uint32Array(size);
  }

  /**
   * Maps a packed ring; a string says why it cannot be. `base` is what SET_VRING_BASE gave for a
   * packed ring: the next slot in bits 0-14 and the driver's wrap counter there in bit 15 (a
   * fresh ring: slot 0, wrap counter 1). An inflight region is refused: its packed layout is not
   * implemented (QEMU's and DPDK's net frontends keep none).
   */
  static create(memory: GuestMemory, addresses: VringAddresses, eventIdx: boolean, base: number, withInflight: boolean): PackedRing | string {
    const { size, descAddr, availAddr, usedAddr } = addresses;
    if (withInflight) return 'an inflight region for a packed ring is not supported (only the split layout is implemented)';
    if (!isValidQueueSize(size)) return `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`;
    if ((base & INDEX_MASK) >= size) return `base slot ${base & INDEX_MASK} is outside the ${size}-descriptor ring`;
    if (descAddr % 16 !== 0 || availAddr % 4 !== 0 || usedAddr % 4 !== 0) return 'ring addresses are not aligned as the spec requires (16/4/4)';
    const descRegion = memory.regionOfGuestRange(descAddr, 16 * size);
    if (descRegion < 0) return `descriptor ring 0x${descAddr.toString(16)}+${16 * size} is outside guest memory`;
    const driverEvent = memory.typedView(Uint16Array, availAddr, 2);
    if (!driverEvent) return `driver area 0x${availAddr.toString(16)} is outside guest memory`;
    const deviceEvent = memory.typedView(Uint16Array, usedAddr, 2);
    if (!deviceEvent) return `device area 0x${usedAddr.toString(16)} is outside guest memory`;
    return new PackedRing(memory, addresses, descRegion, driverEvent, deviceEvent, eventIdx, base);
  }

  /** GET_VRING_BASE of a packed ring: the avail position and wrap in the low half, the used ones in the high. */
  get resumeBase(): number {
    const avail = this.availSlot | (this.availWrap === 1 ? WRAP_BIT : 0);
    const used = this.usedSlot | (this.usedWrap === 1 ? WRAP_BIT : 0);
    return (avail | (used << 16)) >>> 0;
  }

  get nextUsedIdx(): number {
    return (this.published + this.pushed) & 0xffff;
  }

  get publishedUsedIdx(): number {
    return this.published & 0xffff;
  }

  /**
   * Chains available from the next slot on: each first descriptor's flags are read (the driver
   * writes them last), the rest of its chain is skipped by NEXT. The count stops at a slot not
   * yet available, and where the slots the device holds (taken, not yet used) begin: a chain
   * that runs into them counts when the device holds none (it is longer than the ring; its walk
   * fails, chainTooLong), else waits for the next publish. Never -1: no index to jump.
   */
  availableCount(): number {
    const desc16 = this.desc16;
    const size = this.size;
    const room = size - this.takenSlots;
    let slot = this.availSlot;
    let wrap = this.availWrap;
    let scanned = 0;
    let chains = 0;
    while (scanned < room) {
      if (!isAvailable(Atomics.load(desc16, slot * DESCRIPTOR_U16 + FLAGS_U16), wrap)) break;
      let flags: number;
      do {
        flags = desc16[slot * DESCRIPTOR_U16 + FLAGS_U16]!;
        scanned++;
        if (++slot === size) {
          slot = 0;
          wrap ^= 1;
        }
      } while (chainContinues(flags) && scanned < room);
      if (chainContinues(flags)) {
        if (this.takenSlots === 0) chains++;
        break;
      }
      chains++;
    }
    return chains;
  }

  /**
   * The log has room: a queue takes only chains availableCount() counted, each chain holds at
   * least one ring descriptor, and the count stops at the descriptors already held, so chains
   * taken and unpublished never outnumber the slots.
   */
  take(chain: DescriptorChain): ChainErrorCode {
    const n = this.taken;
    this.takenSlot[n] = this.availSlot;
    this.takenWrap[n] = this.availWrap;
    const error = chain.resolve(this.availSlot);
    const descriptors = chain.ringDescriptors > 0 ? chain.ringDescriptors : 1;
    this.takenDescriptors[n] = descriptors;
    this.taken = n + 1;
    this.takenSlots += descriptors;
    this.advanceAvail(descriptors);
    return error;
  }

  private advanceAvail(descriptors: number): void {
    let slot = this.availSlot + descriptors;
    while (slot >= this.size) {
      slot -= this.size;
      this.availWrap ^= 1;
    }
    this.availSlot = slot;
  }

  untake(count: number): void {
    if (count === 0) return;
    const first = this.taken - count;
    this.availSlot = this.takenSlot[first]!;
    this.availWrap = this.takenWrap[first]!;
    for (let i = first; i < this.taken; i++) this.takenSlots -= this.takenDescriptors[i]!;
    this.taken = first;
  }

  pushUsed(head: number, length: number): void {
    const n = this.pushed;
    this.usedId[n] = head;
    this.usedLength[n] = length;
    this.pushed = n + 1;
  }

  unpushUsed(count: number): void {
    this.pushed -= count;
  }

  /**
   * Batched completion (Virtqueue.completeInBatches): a publish writes the last chain's used
   * element in the first chain's slot, and the driver skips the descriptors of all of them
   * (virtio 1.2, 2.8 "In-order use of descriptors").
   */
  completeInBatches(): void {
    this.batched = true;
  }

  /**
   * Writes the used elements pushed since the last publish into the slots their chains started
   * at, the first one's flags last (batched: only the last element, in the first chain's slot),
   * and says whether the driver wants a notification for them (its event suppression: ENABLE,
   * DISABLE, or DESC with the used slot it waits for).
   */
  publishUsed(): boolean {
    const count = this.pushed;
    if (count === 0) return false;
    const oldSlot = this.usedSlot;
    const oldWrap = this.usedWrap;
    if (this.batched) this.writeUsed(0, count - 1, false);
    else for (let i = count - 1; i >= 0; i--) this.writeUsed(i, i, i !== 0);
    this.published += count;
    this.retire(count);
    if (!this.signalled) {
      this.signalled = true;
      return true;
    }
    return this.driverWantsNotification(oldSlot, oldWrap);
  }

  /**
   * Writes used element `element` into the first slot of taken chain `chain` (the same one
   * unless batched); `plain` stores the flags without a barrier.
   */
  private writeUsed(chain: number, element: number, plain: boolean): void {
    const slot = this.takenSlot[chain]!;
    const length = this.usedLength[element]!;
    const desc16 = this.desc16;
    desc16[slot * DESCRIPTOR_U16 + ID_U16] = this.usedId[element]!;
    this.desc32[slot * DESCRIPTOR_U32 + LEN_U32] = length;
    // Both AVAIL and USED equal the wrap counter of the lap the slot is used in; WRITE says the
    // device wrote `length` bytes (2.8.13: length means nothing without it).
    const flags = (this.takenWrap[chain] === 1 ? PackedDescFlags.avail | PackedDescFlags.used : 0) | (length > 0 ? DescFlags.write : 0);
    const at = slot * DESCRIPTOR_U16 + FLAGS_U16;
    if (plain) desc16[at] = flags;
    else Atomics.store(desc16, at, flags);
  }

  /** Drops the first `count` taken chains (published) from the log and moves the used position past them. */
  private retire(count: number): void {
    let slot = this.usedSlot;
    for (let i = 0; i < count; i++) {
      const descriptors = this.takenDescriptors[i]!;
      this.takenSlots -= descriptors;
      slot += descriptors;
      if (slot >= this.size) {
        slot -= this.size;
        this.usedWrap ^= 1;
      }
    }
    this.usedSlot = slot;
    const left = this.taken - count;
    // What stays taken (a chain that broke a rule, never completed) moves to the front.
    this.takenSlot.copyWithin(0, count, this.taken);
    this.takenWrap.copyWithin(0, count, this.taken);
    this.takenDescriptors.copyWithin(0, count, this.taken);
    this.taken = left;
    this.pushed = 0;
  }

  /**
   * The driver's event suppression against the used slots just written, [old, new): with DESC
   * (EVENT_IDX), whether its off_wrap slot lies among them, positions compared on the lap of the
   * new used position.
   */
  private driverWantsNotification(oldSlot: number, oldWrap: number): boolean {
    const flags = Atomics.load(this.driverEvent, EVENT_FLAGS);
    if (flags === PackedEventFlags.enable) return true;
    if (flags !== PackedEventFlags.desc || !this.eventIdx) return false;
    const offWrap = this.driverEvent[EVENT_OFF_WRAP]!;
    const wrap = this.usedWrap;
    const size = this.size;
    const event = (offWrap & INDEX_MASK) - (((offWrap & WRAP_BIT) !== 0 ? 1 : 0) === wrap ? 0 : size);
    const old = oldSlot - (oldWrap === wrap ? 0 : size);
    return old <= event && event < this.usedSlot;
  }

  /** A ring that did not start fresh may hold completions a predecessor published and never signalled. */
  notifyOnStart(): boolean {
    if (!this.restarted) return false;
    this.signalled = true;
    return true;
  }

  /**
   * ENABLE; with EVENT_IDX, DESC at the next slot to take (a kick for anything after it). The
   * device area never holds all zeros after a device write (off_wrap, which the driver reads only
   * with DESC, is then WRAP_BIT), so that a driver's reset, which zeroes it, shows (driverReset).
   */
  enableKicks(): void {
    this.noticeReset();
    const deviceEvent = this.deviceEvent;
    if (this.eventIdx) {
      deviceEvent[EVENT_OFF_WRAP] = this.availSlot | (this.availWrap === 1 ? WRAP_BIT : 0);
      Atomics.store(deviceEvent, EVENT_FLAGS, PackedEventFlags.desc);
    } else {
      deviceEvent[EVENT_OFF_WRAP] = WRAP_BIT;
      Atomics.store(deviceEvent, EVENT_FLAGS, PackedEventFlags.enable);
    }
  }

  disableKicks(): void {
    this.noticeReset();
    this.deviceEvent[EVENT_FLAGS] = PackedEventFlags.disable;
  }

  /**
   * Whether the driver reset the ring (VIRTIO_F_RING_RESET) since the device last looked: Linux's
   * virtqueue_reset() zeroes a packed ring's descriptors and both event suppression structures and
   * starts its wrap counter over, and the device area is otherwise written by the device alone,
   * never to all zeros. A kick right after the reset makes the device write there before a queue
   * looks, so every device write checks first (noticeReset).
   */
  driverReset(): boolean {
    if (!this.followsDriverResets) return false;
    return this.resetSeen || this.deviceAreaZeroed();
  }

  private deviceAreaZeroed(): boolean {
    return this.suppressionWritten && Atomics.load(this.deviceEvent, EVENT_FLAGS) === 0 && Atomics.load(this.deviceEvent, EVENT_OFF_WRAP) === 0;
  }

  private noticeReset(): void {
    if (this.followsDriverResets && this.deviceAreaZeroed()) this.resetSeen = true;
    this.suppressionWritten = true;
  }

  /**
   * Starts over as a fresh ring (slot 0, wrap counter 1, nothing taken), as the driver did; the
   * used elements not yet published are dropped and counted. The first publish notifies.
   */
  restartAfterDriverReset(): number {
    const dropped = this.pushed;
    this.availSlot = 0;
    this.availWrap = 1;
    this.usedSlot = 0;
    this.usedWrap = 1;
    this.taken = 0;
    this.pushed = 0;
    this.takenSlots = 0;
    this.signalled = false;
    this.resetSeen = false;
    this.suppressionWritten = false;
    return dropped;
  }
}
