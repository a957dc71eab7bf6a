/**
 * The fuzzer's oracle for ring cases: what a correct device must do with the rings as they are
 * in guest memory, worked out from the virtio 1.2 rules (split rings 2.7.5 and 2.7.5.3, packed
 * rings 2.8, the net device 5.1.6) without any device code. The device's counters and used rings are compared with it, so an error the
 * device misses, counts twice or counts under the wrong kind, a frame it drops or invents, and
 * a used element it forgets to publish (or, on a packed ring, writes with the wrong id, length or
 * wrap counter, or where none belongs) all show up as mismatches.
 *
 * It simulates a device with the `reflect` port (or `sink`): the transmitq's chains in order,
 * each valid frame handed to the receiveq at once. A ring error stops that ring
 * (DEVICE_NEEDS_RESET); what was accepted before it is delivered and published.
 *
 * With VIRTIO_F_IN_ORDER the transmitq publishes each burst as one used element (virtio 1.2,
 * "In-order use of descriptors" in 2.7 and 2.8): the last chain's id and length, in the place of
 * the burst's first chain (split: its used ring slot; packed: its first descriptor's slot, with
 * that lap's wrap counter), completing every chain of the burst; the other chains' places are not
 * written. So the rules need the bursts: a burst takes what the driver had made available when the
 * device looked, at most DEVICE_BURST chains, and ends early at a chain that breaks a rule (which
 * is never completed; the chains before it are published). The driver here makes each publish
 * visible at once (one avail.idx store; on a packed ring the first chain's flags written last), so
 * a burst ends only there, at DEVICE_BURST, or where the driver waited for the device before
 * publishing more (ModelInput.txPublishEnds). The receiveq keeps one element per chain: each
 * receive buffer needs its own length.
 *
 * When the device's own writes (used rings, receive buffers) land on memory the rules read
 * (descriptors, available rings), the result depends on timing: the expectation is then marked
 * uncertain and only liveness is checked.
 */
import { DescFlags, PackedDescFlags } from 'vfio-user-ts';
import { GSO_ECN, GsoType, NetHeaderFlags } from '../device/net-header.js';
import { DEVICE_BURST, MAX_FRAME, MAX_GSO_FRAME } from './layout.js';

/** Read access to the guest RAM as the driver wrote it. */
export interface GuestView {
  readonly base: number;
  readonly size: number;
  u8(gpa: number): number;
  u16(gpa: number): number;
  u32(gpa: number): number;
}

export interface ModelRing {
  readonly size: number;
  /** The descriptor table (split) or ring (packed). */
  readonly descGpa: number;
  /** The available ring (split) or driver area (packed). */
  readonly availGpa: number;
  /** The used ring (split) or device area (packed). */
  readonly usedGpa: number;
  /** Packed: SET_VRING_BASE (slot in bits 0-14, below the size; the driver's wrap counter in bit 15). */
  readonly base: number;
}

export interface ModelInput {
  readonly mem: GuestView;
  /** Both queues' layout (RING_PACKED negotiated: 'packed'). */
  readonly layout: 'split' | 'packed';
  readonly tx: ModelRing;
  readonly rx: ModelRing;
  readonly indirect: boolean;
  readonly mergeable: boolean;
  readonly header: number;
  /** Frames from the transmitq come back on the receiveq (the reflect port); else sink. */
  readonly reflect: boolean;
  /** The GSO features negotiated (HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_USO). */
  readonly gso: { readonly tcp4: boolean; readonly tcp6: boolean; readonly ecn: boolean; readonly udpL4: boolean };
  /**
   * VIRTIO_F_IN_ORDER negotiated: the transmitq publishes a burst as one used element. (A split
   * ring with an inflight region would not batch; the fuzzer's frontend keeps none.)
   */
  readonly inOrder: boolean;
  /**
   * Where the driver stopped publishing transmit chains and waited for the device to complete
   * them before it published more, in chains from the ring's start (a truncation case's chains
   * before its cut): a burst ends there. Empty: everything was published at once.
   */
  readonly txPublishEnds: readonly number[];
}

interface NetHeaderFields {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** The most frame bytes a GSO check reads: Ethernet, the longest IPv4 header, the longest TCP header. */
const GSO_HEADERS_MAX = 14 + 60 + 60;

/**
 * A used element where the device writes it: split (2.7), in used ring slot used.idx mod size as
 * it was before the element; packed (2.8), in the descriptor slot where its chain started, with
 * that lap's wrap counter.
 */
export interface UsedElement {
  readonly slot: number;
  /** Packed: the wrap counter of the lap the slot is used in; split: 0. */
  readonly wrap: number;
  readonly id: number;
  readonly length: number;
  /** The chains it completes: 1, or under IN_ORDER the chains of the transmit burst it publishes. */
  readonly chains: number;
}

export interface Expectation {
  /** What the rules were worked out for: the negotiated layout and VIRTIO_F_IN_ORDER. */
  layout: 'split' | 'packed';
  inOrder: boolean;
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  rxNoBuffers: number;
  /** Error kind -> count (only kinds that occur). */
  errors: Record<string, number>;
  needsReset: boolean;
  /** Chains each ring must complete (split: where used.idx ends up). */
  txUsed: number;
  rxUsed: number;
  /** The used elements the device writes, in order; no other element of the ring is written. */
  txElements: UsedElement[];
  rxElements: UsedElement[];
  /** False when device writes overlap what the rules read (see above). */
  certain: boolean;
  /** One line per ring error, for reports. */
  notes: string[];
}

interface Chain {
  error: string | null;
  /** The buffer id its used element names: the head (split), the last ring descriptor's id (packed). */
  id: number;
  /** Buffers: [gpa, length, writable]. */
  buffers: [number, number, boolean][];
  readable: number;
  writable: number;
  /** A writable buffer was recorded (readable ones may not follow, even after a 0-byte one). */
  sawWritable: boolean;
}

interface Descriptor {
  addr: bigint;
  len: number;
  flags: number;
  /** Split: next; packed: the buffer id. */
  next: number;
}

/**
 * One queue as the rules walk it: the device's position, the chains taken, the ones completed
 * (in order: every chain taken is completed or given back before the next is taken; the spec
 * allows the device any order, the rules take the device's own, which the packed ring's used
 * element positions depend on).
 */
interface QueueWalk {
  /** Split: avail.idx claims more chains than the ring holds (availIndexJump). Packed: never. */
  jumped(): boolean;
  /** Whether a chain is available at the device's position. */
  available(): boolean;
  /** Takes the chain at the device's position and walks it. */
  take(): Chain;
  /** Gives back the last `count` chains taken (a frame that found too few). */
  untake(count: number): void;
  /** The oldest chain taken and not completed is used, `length` bytes written into it. */
  complete(length: number): void;
  /** The device publishes what it completed since the last burst ended (see usedLog). */
  endBurst(): void;
  readonly used: number;
  readonly elements: UsedElement[];
}

type Range = [number, number];

const TWO_32 = 4294967296;
const WRAP_BIT = 0x8000;

export function expectRings(input: ModelInput): Expectation {
  const { mem, header, mergeable } = input;
  const reads: Range[] = [];
  /** What the device writes: its ring structures, and (frameWrites) the frames it places. */
  const writes: Range[] = [];
  const frameWrites: Range[] = [];
  /** Packed used elements written so far: what a read after them may or may not see. */
  const usedWrites: Range[] = [];
  const e: Expectation = {
    layout: input.layout,
    inOrder: input.inOrder,
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    rxNoBuffers: 0,
    errors: {},
    needsReset: false,
    txUsed: 0,
    rxUsed: 0,
    txElements: [],
    rxElements: [],
    certain: true,
    notes: [],
  };
  const error = (ring: string, kind: string, note: string): void => {
    e.errors[kind] = (e.errors[kind] ?? 0) + 1;
    e.notes.push(`${ring}: ${kind}: ${note}`);
  };
  /** All of [gpa, gpa + len) inside guest memory (exact: BigInt, no wrap at 2^64). */
  const inside = (addr: bigint, len: number): boolean => addr >= BigInt(mem.base) && addr + BigInt(len) <= BigInt(mem.base + mem.size);
  const overlaps = ([s1, e1]: Range, [s2, e2]: Range): boolean => s1 < e2 && s2 < e1;
  /** Something the rules read; the device may read it before or after a used element it wrote over it. */
  const read = (range: Range): void => {
    reads.push(range);
    if (usedWrites.some((w) => overlaps(w, range))) e.certain = false;
  };

  if (input.layout === 'split') {
    for (const ring of [input.tx, input.rx]) {
      writes.push([ring.usedGpa, ring.usedGpa + 6 + 8 * ring.size]);
      reads.push([ring.availGpa, ring.availGpa + 4 + 2 * ring.size]);
    }
  } else {
    // The device writes its event suppression whenever it asks for kicks or not.
    for (const ring of [input.tx, input.rx]) writes.push([ring.usedGpa, ring.usedGpa + 4]);
  }

  /** A descriptor in either layout: split has flags at 12 and next at 14, packed the id at 12 and flags at 14. */
  const readDescriptor = (gpa: number): Descriptor => {
    read([gpa, gpa + 16]);
    const packed = input.layout === 'packed';
    return {
      addr: BigInt(mem.u32(gpa)) + BigInt(mem.u32(gpa + 4)) * BigInt(TWO_32),
      len: mem.u32(gpa + 8),
      flags: mem.u16(gpa + (packed ? 14 : 12)),
      next: mem.u16(gpa + (packed ? 12 : 14)),
    };
  };

  const newChain = (id: number): Chain => ({ error: null, id, buffers: [], readable: 0, writable: 0, sawWritable: false });
  const fail = (chain: Chain, kind: string): Chain => ((chain.error = kind), chain);
  /** The rules of an indirect descriptor, both layouts (the order decides the kind); null when it may be followed. */
  const indirectError = (ring: ModelRing, d: Descriptor, inIndirect: boolean): string | null => {
    if (!input.indirect) return 'indirectNotNegotiated';
    if (inIndirect) return 'nestedIndirect';
    if ((d.flags & DescFlags.next) !== 0) return 'indirectWithNext';
    if (d.len === 0 || d.len % 16 !== 0 || d.len / 16 > ring.size) return 'indirectBadLength';
    if (!inside(d.addr, d.len)) return 'indirectOutsideMemory';
    return null;
  };
  /** One buffer of a chain, both layouts; null when it is fine. */
  const recordBuffer = (ring: ModelRing, chain: Chain, d: Descriptor): string | null => {
    // 2.7.5.3.1 and its packed counterpart (2.8): no chain longer than the queue, indirect tables included.
    if (chain.buffers.length === ring.size) return 'chainTooLong';
    if (!inside(d.addr, d.len)) return 'bufferOutsideMemory';
    const writable = (d.flags & DescFlags.write) !== 0;
    if (writable) {
      chain.sawWritable = true;
      chain.writable += d.len;
    } else {
      if (chain.sawWritable) return 'readableAfterWritable';
      chain.readable += d.len;
    }
    chain.buffers.push([Number(d.addr), d.len, writable]);
    return null;
  };

  /** Walks one split chain by the rules (the order in which a rule is checked decides the kind). */
  const resolveSplit = (ring: ModelRing, head: number): Chain => {
    const chain = newChain(head);
    if (head >= ring.size) return fail(chain, 'headOutOfRange');
    let tableGpa = ring.descGpa;
    let tableSize = ring.size;
    let inIndirect = false;
    let index = head;
    for (;;) {
      const d = readDescriptor(tableGpa + 16 * index);
      if ((d.flags & DescFlags.indirect) !== 0) {
        const kind = indirectError(ring, d, inIndirect);
        if (kind) return fail(chain, kind);
        inIndirect = true;
        tableGpa = Number(d.addr);
        tableSize = d.len / 16;
        index = 0;
        continue;
      }
      const kind = recordBuffer(ring, chain, d);
      if (kind) return fail(chain, kind);
      if ((d.flags & DescFlags.next) === 0) return chain;
      if (d.next >= tableSize) return fail(chain, 'nextOutOfRange');
      index = d.next;
    }
  };

  /**
   * The used elements of one queue as the device publishes them: one per chain as it completes;
   * batched (IN_ORDER on the transmitq), one per burst when it ends, the last chain's id and
   * length in the place of the burst's first chain. `written` learns each element as the device
   * writes it.
   */
  const usedLog = (batched: boolean, written: (u: UsedElement) => void): { elements: UsedElement[]; complete(u: UsedElement): void; endBurst(): void } => {
    const elements: UsedElement[] = [];
    let burst: UsedElement[] = [];
    const publish = (u: UsedElement): void => {
      elements.push(u);
      written(u);
    };
    return {
      elements,
      complete: (u) => (batched ? void burst.push(u) : publish(u)),
      endBurst: () => {
        if (burst.length === 0) return;
        const first = burst[0]!;
        const last = burst[burst.length - 1]!;
        publish({ slot: first.slot, wrap: first.wrap, id: last.id, length: last.length, chains: burst.length });
        burst = [];
      },
    };
  };

  /** A split ring from a fresh start: used.idx 0, so chain k's used element goes in slot k mod size. */
  const splitWalk = (ring: ModelRing, batched: boolean): QueueWalk => {
    let taken = 0;
    /** The heads taken and not completed, oldest first. */
    const pending: number[] = [];
    const availIdx = (): number => mem.u16(ring.availGpa + 2);
    const waiting = (): number => (availIdx() - taken) & 0xffff;
    // Writes to the used ring are among `writes` already.
    const log = usedLog(batched, () => {});
    const walk = {
      used: 0,
      elements: log.elements,
      jumped: () => waiting() > ring.size,
      available: () => waiting() > 0,
      take: () => {
        const chain = resolveSplit(ring, mem.u16(ring.availGpa + 4 + 2 * (taken++ % ring.size)));
        pending.push(chain.id);
        return chain;
      },
      untake: (count: number) => {
        taken -= count;
        pending.splice(pending.length - count, count);
      },
      complete: (length: number) => {
        log.complete({ slot: walk.used % ring.size, wrap: 0, id: pending.shift()!, length, chains: 1 });
        walk.used++;
      },
      endBurst: log.endBurst,
    };
    return walk;
  };

  /** The entries of a packed indirect table, one after another; NEXT means nothing there, WRITE is their only flag. */
  const packedTable = (ring: ModelRing, chain: Chain, gpa: number, entries: number): string | null => {
    for (let i = 0; i < entries; i++) {
      const t = readDescriptor(gpa + 16 * i);
      if ((t.flags & DescFlags.indirect) !== 0) return 'nestedIndirect';
      const kind = recordBuffer(ring, chain, { ...t, flags: t.flags & DescFlags.write });
      if (kind) return kind;
    }
    return null;
  };

  /**
   * A packed ring (2.8): a chain is available when its first descriptor's AVAIL bit equals the
   * driver's wrap counter at that slot and its USED bit does not (2.8.1); its descriptors follow
   * each other round the ring while NEXT is set, the buffer id in the last, or one
   * descriptor points at an indirect table whose entries follow each other, as many as its length
   * holds, WRITE their only flag. Only a chain's first flags say whether it is available:
   * the driver writes them last, after the rest.
   *
   * A chain that reaches slots an earlier chain took (the driver posted over descriptors the
   * device holds or gave back) reads them as the driver wrote them or as the device rewrote them
   * (a used element), depending on when the device published: the outcome is then uncertain.
   */
  const packedWalk = (ring: ModelRing, batched: boolean): QueueWalk => {
    let slot = ring.base & ~WRAP_BIT;
    let wrap = (ring.base & WRAP_BIT) !== 0 ? 1 : 0;
    /** Which chain (by sequence number) first took each slot; chains taken, in order, and how many completed. */
    const owner = new Map<number, number>();
    const taken: { slot: number; wrap: number; id: number; sequence: number }[] = [];
    let completed = 0;
    let sequence = 0;
    const slotGpa = (s: number): number => ring.descGpa + 16 * s;
    const log = usedLog(batched, (u) => usedWrites.push([slotGpa(u.slot) + 8, slotGpa(u.slot) + 16]));
    const isAvailable = (flags: number): boolean => ((flags & PackedDescFlags.avail) !== 0 ? 1 : 0) === wrap && ((flags & PackedDescFlags.used) !== 0 ? 1 : 0) !== wrap;
    const walk = {
      used: 0,
      elements: log.elements,
      jumped: () => false,
      available: () => {
        const gpa = slotGpa(slot) + 14;
        reads.push([gpa, gpa + 2]);
        const available = isAvailable(mem.u16(gpa));
        // A used element there is never available; the driver's descriptor, available, may still be read.
        if (available && owner.has(slot)) e.certain = false;
        return available;
      },
      take: (): Chain => {
        const me = ++sequence;
        const start = { slot, wrap };
        const chain = newChain(0);
        let index = slot;
        let descriptors = 0;
        const ringDescriptor = (): Descriptor => {
          const first = owner.get(index);
          if (first === undefined) owner.set(index, me);
          else if (first !== me) e.certain = false;
          descriptors++;
          return readDescriptor(slotGpa(index));
        };
        for (;;) {
          const d = ringDescriptor();
          if ((d.flags & DescFlags.indirect) !== 0) {
            chain.id = d.next;
            const kind = indirectError(ring, d, false) ?? packedTable(ring, chain, Number(d.addr), d.len / 16);
            if (kind) fail(chain, kind);
            break;
          }
          const kind = recordBuffer(ring, chain, d);
          if (kind) {
            fail(chain, kind);
            break;
          }
          if ((d.flags & DescFlags.next) === 0) {
            chain.id = d.next;
            break;
          }
          index = (index + 1) % ring.size;
        }
        taken.push({ ...start, id: chain.id, sequence: me });
        const next = slot + descriptors;
        slot = next % ring.size;
        wrap ^= Math.floor(next / ring.size) & 1;
        return chain;
      },
      untake: (count: number) => {
        const back = taken.splice(taken.length - count, count);
        if (back.length === 0) return;
        ({ slot, wrap } = back[0]!);
        const sequences = new Set(back.map((t) => t.sequence));
        for (const [s, by] of owner) if (sequences.has(by)) owner.delete(s);
      },
      complete: (length: number) => {
        const t = taken[completed++]!;
        log.complete({ slot: t.slot, wrap: t.wrap, id: t.id, length, chains: 1 });
        walk.used++;
      },
      endBurst: log.endBurst,
    };
    return walk;
  };
  /** `count` bytes from byte `skip` of the chain's readable buffers (fewer when the chain ends first). */
  const gather = (chain: Chain, skip: number, count: number): number[] => {
    const bytes: number[] = [];
    let offset = 0;
    for (const [gpa, len] of chain.buffers) {
      const from = Math.max(0, skip - offset);
      const n = Math.min(len - from, count - bytes.length);
      offset += len;
      if (n <= 0) continue;
      read([gpa + from, gpa + from + n]);
      for (let i = 0; i < n; i++) bytes.push(mem.u8(gpa + from + i));
      if (bytes.length === count) break;
    }
    return bytes;
  };

  /** The first 10 header bytes (flags to csum_offset). */
  const readHeader = (chain: Chain): NetHeaderFields => {
    const b = gather(chain, 0, 10);
    return { flags: b[0]!, gsoType: b[1]!, hdrLen: b[2]! | (b[3]! << 8), gsoSize: b[4]! | (b[5]! << 8), csumStart: b[6]! | (b[7]! << 8), csumOffset: b[8]! | (b[9]! << 8) };
  };

  const walkOf = (ring: ModelRing, batched: boolean): QueueWalk => (input.layout === 'split' ? splitWalk(ring, batched) : packedWalk(ring, batched));

  // ---- the receiveq: frames placed as they come, one used element per chain ----
  const rx = walkOf(input.rx, false);
  let rxBroken = false;
  const breakRx = (kind: string, note: string): void => {
    rxBroken = true;
    e.needsReset = true;
    error('receiveq', kind, note);
  };
  const checkRxJump = (): boolean => {
    if (rxBroken) return false;
    if (rx.jumped()) {
      breakRx('availIndexJump', `avail.idx is more than ${input.rx.size} ahead of the chains taken`);
      return false;
    }
    return true;
  };
  /** One frame of `length` bytes offered to the receiveq; false: not placed (no buffers, broken). */
  const receive = (length: number): boolean => {
    if (rxBroken || !checkRxJump()) return false;
    const total = header + length;
    /** Bytes written into each chain taken for the frame. */
    const lengths: number[] = [];
    let written = 0;
    while (written < total) {
      if (!rx.available()) {
        rx.untake(lengths.length); // nothing consumed: the frame waits for buffers
        return false;
      }
      const chain = rx.take();
      if (chain.error) {
        breakRx(chain.error, `id ${chain.id}`);
        return false;
      }
      if (chain.readable > 0) {
        breakRx('rxReadableBuffer', `id ${chain.id}`);
        return false;
      }
      if (written === 0) {
        if (!mergeable && chain.writable < total) {
          error('receiveq', 'rxBufferTooSmall', `id ${chain.id}: ${chain.writable} < ${total}, dropped`);
          rx.complete(0);
          return true;
        }
        if (chain.writable < header) {
          breakRx('rxBufferTooSmall', `id ${chain.id}: ${chain.writable} bytes for the header`);
          return false;
        }
      }
      // The device writes into each chain as it takes it, before it knows whether the frame
      // will find all the chains it needs: a frame given back (no buffers) has written too.
      let room = total - written;
      for (const [gpa, len] of chain.buffers) {
        if (room === 0) break;
        const n = Math.min(room, len);
        if (n > 0) frameWrites.push([gpa, gpa + n]);
        room -= n;
      }
      const n = Math.min(chain.writable, total - written);
      lengths.push(n);
      written += n;
    }
    for (const n of lengths) rx.complete(n);
    e.rxFrames++;
    e.rxBytes += length;
    return true;
  };

  // ---- the transmitq, in order, in bursts; each frame reflected at once ----
  const tx = walkOf(input.tx, input.inOrder);
  if (tx.jumped()) {
    e.needsReset = true;
    error('transmitq', 'availIndexJump', `avail.idx is more than ${input.tx.size} ahead of 0`);
  } else {
    const publishEnds = new Set(input.txPublishEnds);
    let taken = 0;
    let inBurst = 0;
    while (tx.available()) {
      if (inBurst === DEVICE_BURST || publishEnds.has(taken)) {
        tx.endBurst();
        inBurst = 0;
      }
      const chain = tx.take();
      taken++;
      inBurst++;
      const head = chain.id;
      if (chain.error) {
        e.needsReset = true;
        error('transmitq', chain.error, `id ${head}`);
        break;
      }
      tx.complete(0);
      if (chain.writable > 0) {
        error('transmitq', 'txWriteOnlyBuffer', `id ${head}`);
        continue;
      }
      if (chain.readable < header) {
        error('transmitq', 'txHeaderTooShort', `id ${head}`);
        continue;
      }
      const frame = chain.readable - header;
      const h = readHeader(chain);
      const gso = h.gsoType !== GsoType.none;
      // Only the GSO types the negotiated features allow (5.1.6.2): none without them.
      if (gso && !gsoAllowed(input.gso, h.gsoType)) {
        error('transmitq', 'txGsoNotNegotiated', `id ${head}: gso_type ${h.gsoType}`);
        continue;
      }
      if ((h.flags & NetHeaderFlags.needsCsum) !== 0 && !(h.csumStart < frame && h.csumStart + h.csumOffset + 2 <= frame)) {
        error('transmitq', 'txChecksumOutsideFrame', `id ${head}: csum_start ${h.csumStart} csum_offset ${h.csumOffset}, ${frame}-byte frame`);
        continue;
      }
      if (frame > (gso ? MAX_GSO_FRAME : MAX_FRAME)) {
        error('transmitq', 'txFrameTooLarge', `id ${head}: ${frame} bytes`);
        continue;
      }
      // A GSO frame goes on as its segments; any other as it is.
      const wire = gso ? gsoSegments(h, gather(chain, header, Math.min(frame, GSO_HEADERS_MAX)), frame) : [frame];
      if (typeof wire === 'string') {
        error('transmitq', wire, `id ${head}: gso_type ${h.gsoType} hdr_len ${h.hdrLen} gso_size ${h.gsoSize} csum_start ${h.csumStart} csum_offset ${h.csumOffset}, ${frame}-byte frame`);
        continue;
      }
      e.txFrames++;
      e.txBytes += frame;
      if (input.reflect) for (const length of wire) if (!receive(length)) e.rxNoBuffers++;
    }
    // The last burst, or the one a broken chain ended: what it completed is published.
    tx.endBurst();
  }
  // The device looks at the receiveq whenever the pair runs, frames or not.
  checkRxJump();
  e.txUsed = tx.used;
  e.rxUsed = rx.used;
  e.txElements = tx.elements;
  e.rxElements = rx.elements;

  if ([...writes, ...frameWrites].some((w) => reads.some((r) => overlaps(w, r)))) e.certain = false;
  // A frame placed over a split used ring: what the driver then finds there depends on whether
  // the device published before or after placing it.
  if (input.layout === 'split' && frameWrites.some((w) => [input.tx, input.rx].some((ring) => overlaps(w, [ring.usedGpa, ring.usedGpa + 6 + 8 * ring.size])))) e.certain = false;
  return e;
}

/** Whether the negotiated GSO features allow `gsoType` (not GSO_NONE): never legacy UFO; ECN only on TCP with HOST_ECN. */
function gsoAllowed(gso: ModelInput['gso'], gsoType: number): boolean {
  const type = gsoType & ~GSO_ECN;
  const tcp = type === GsoType.tcpV4 || type === GsoType.tcpV6;
  if ((gsoType & GSO_ECN) !== 0 && !(gso.ecn && tcp)) return false;
  return (type === GsoType.tcpV4 && gso.tcp4) || (type === GsoType.tcpV6 && gso.tcp6) || (type === GsoType.udpL4 && gso.udpL4);
}

/**
 * A GSO frame's header against the frame's own headers (`head`: its first bytes), as tun checks
 * it: the error kind of the first mismatch, or the lengths of the wire frames it is cut into
 * (the headers again before every gso_size bytes of payload).
 */
function gsoSegments(h: NetHeaderFields, head: readonly number[], length: number): string | number[] {
  if ((h.flags & NetHeaderFlags.needsCsum) === 0) return 'txGsoWithoutChecksum';
  if (head.length < 15) return 'txGsoMalformedHeaders';
  const type = h.gsoType & ~GSO_ECN;
  const etherType = (head[12]! << 8) | head[13]!;
  const version = head[14]! >> 4;
  const ipv4 = etherType === 0x0800 && version === 4;
  const ipv6 = etherType === 0x86dd && version === 6;
  if (!((ipv4 && (type === GsoType.tcpV4 || type === GsoType.udpL4)) || (ipv6 && (type === GsoType.tcpV6 || type === GsoType.udpL4)))) return 'txGsoWrongNetworkProtocol';
  const ipHeader = ipv4 ? (head[14]! & 0x0f) * 4 : 40;
  const l4 = 14 + ipHeader;
  if (l4 > head.length) return 'txGsoMalformedHeaders';
  if (ipv4 && (ipHeader < 20 || (((head[20]! << 8) | head[21]!) & 0x3fff) !== 0)) return 'txGsoMalformedHeaders';
  const tcp = type !== GsoType.udpL4;
  if (head[ipv4 ? 23 : 20] !== (tcp ? 6 : 17)) return 'txGsoWrongTransport';
  const transportHeader = tcp ? (l4 + 13 <= head.length ? (head[l4 + 12]! >> 4) * 4 : 0) : 8;
  if ((tcp && transportHeader < 20) || l4 + transportHeader > head.length) return 'txGsoMalformedHeaders';
  const headers = l4 + transportHeader;
  if (h.csumStart !== l4 || h.csumOffset !== (tcp ? 16 : 6)) return 'txGsoBadChecksumOffsets';
  if (h.hdrLen < headers || h.hdrLen > length) return 'txGsoBadHeaderLength';
  if (h.gsoSize === 0 || headers + h.gsoSize > MAX_FRAME) return 'txGsoBadSegmentSize';
  // USO: no more datagrams than Linux's UDP_MAX_SEGMENTS (128 in recent kernels).
  if (!tcp && length - headers > h.gsoSize * 128) return 'txGsoTooManySegments';
  const lengths: number[] = [];
  let payload = length - headers;
  do {
    const take = Math.min(payload, h.gsoSize);
    lengths.push(headers + take);
    payload -= take;
  } while (payload > 0);
  return lengths;
}
