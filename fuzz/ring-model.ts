/**
 * The fuzzer's oracle for ring cases: what a correct device must do with the rings as they are
 * in guest memory, worked out from the virtio 1.2 rules (2.7.5, 2.7.5.3, 5.1.6) without any
 * device code. The device's counters and used rings are compared with it, so an error the
 * device misses, counts twice or counts under the wrong kind, a frame it drops or invents, and
 * a used element it forgets to publish all show up as mismatches.
 *
 * It simulates a device with the `reflect` port (or `sink`): the transmitq's chains in order,
 * each valid frame handed to the receiveq at once. A ring error stops that ring
 * (DEVICE_NEEDS_RESET); what was accepted before it is delivered and published.
 *
 * When the device's own writes (used rings, receive buffers) land on memory the rules read
 * (descriptors, available rings), the result depends on timing: the expectation is then marked
 * uncertain and only liveness is checked.
 */
import { DescFlags } from 'vfio-user-ts';
import { GsoType, NetHeaderFlags } from '../device/net-header.js';
import { MAX_FRAME } from './layout.js';

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
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
}

export interface ModelInput {
  readonly mem: GuestView;
  readonly tx: ModelRing;
  readonly rx: ModelRing;
  readonly indirect: boolean;
  readonly mergeable: boolean;
  readonly header: number;
  /** Frames from the transmitq come back on the receiveq (the reflect port); else sink. */
  readonly reflect: boolean;
}

export interface Expectation {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  rxNoBuffers: number;
  /** Error kind -> count (only kinds that occur). */
  errors: Record<string, number>;
  needsReset: boolean;
  /** used.idx each ring must end up at. */
  txUsed: number;
  rxUsed: number;
  /** False when device writes overlap what the rules read (see above). */
  certain: boolean;
  /** One line per ring error, for reports. */
  notes: string[];
}

interface Chain {
  error: string | null;
  /** Buffers: [gpa, length, writable]. */
  buffers: [number, number, boolean][];
  readable: number;
  writable: number;
}

type Range = [number, number];

const TWO_32 = 4294967296;

export function expectRings(input: ModelInput): Expectation {
  const { mem, header, mergeable } = input;
  const reads: Range[] = [];
  const writes: Range[] = [];
  const e: Expectation = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, rxNoBuffers: 0, errors: {}, needsReset: false, txUsed: 0, rxUsed: 0, certain: true, notes: [] };
  const error = (ring: string, kind: string, note: string): void => {
    e.errors[kind] = (e.errors[kind] ?? 0) + 1;
    e.notes.push(`${ring}: ${kind}: ${note}`);
  };
  /** All of [gpa, gpa + len) inside guest memory (exact: BigInt, no wrap at 2^64). */
  const inside = (addr: bigint, len: number): boolean => addr >= BigInt(mem.base) && addr + BigInt(len) <= BigInt(mem.base + mem.size);

  for (const ring of [input.tx, input.rx]) {
    writes.push([ring.usedGpa, ring.usedGpa + 6 + 8 * ring.size]);
    reads.push([ring.availGpa, ring.availGpa + 4 + 2 * ring.size]);
  }

  const readDescriptor = (gpa: number): { addr: bigint; len: number; flags: number; next: number } => {
    reads.push([gpa, gpa + 16]);
    return {
      addr: BigInt(mem.u32(gpa)) + BigInt(mem.u32(gpa + 4)) * BigInt(TWO_32),
      len: mem.u32(gpa + 8),
      flags: mem.u16(gpa + 12),
      next: mem.u16(gpa + 14),
    };
  };

  /** Walks one chain by the rules (the order in which a rule is checked decides the kind). */
  const resolve = (ring: ModelRing, head: number): Chain => {
    const chain: Chain = { error: null, buffers: [], readable: 0, writable: 0 };
    const fail = (kind: string): Chain => ((chain.error = kind), chain);
    if (head >= ring.size) return fail('headOutOfRange');
    let tableGpa = ring.descGpa;
    let tableSize = ring.size;
    let inIndirect = false;
    let index = head;
    let sawWritable = false;
    for (;;) {
      const d = readDescriptor(tableGpa + 16 * index);
      if ((d.flags & DescFlags.indirect) !== 0) {
        if (!input.indirect) return fail('indirectNotNegotiated');
        if (inIndirect) return fail('nestedIndirect');
        if ((d.flags & DescFlags.next) !== 0) return fail('indirectWithNext');
        if (d.len === 0 || d.len % 16 !== 0 || d.len / 16 > ring.size) return fail('indirectBadLength');
        if (!inside(d.addr, d.len)) return fail('indirectOutsideMemory');
        inIndirect = true;
        tableGpa = Number(d.addr);
        tableSize = d.len / 16;
        index = 0;
        continue;
      }
      // 2.7.5.3.1: no chain longer than the queue, indirect tables included.
      if (chain.buffers.length === ring.size) return fail('chainTooLong');
      if (!inside(d.addr, d.len)) return fail('bufferOutsideMemory');
      const writable = (d.flags & DescFlags.write) !== 0;
      if (writable) {
        sawWritable = true;
        chain.writable += d.len;
      } else {
        if (sawWritable) return fail('readableAfterWritable');
        chain.readable += d.len;
      }
      chain.buffers.push([Number(d.addr), d.len, writable]);
      if ((d.flags & DescFlags.next) === 0) return chain;
      if (d.next >= tableSize) return fail('nextOutOfRange');
      index = d.next;
    }
  };

  /** The first 10 header bytes (flags to csum_offset), gathered over the chain's buffers. */
  const readHeader = (chain: Chain): { flags: number; gsoType: number; csumStart: number; csumOffset: number } => {
    const bytes: number[] = [];
    for (const [gpa, len] of chain.buffers) {
      const n = Math.min(len, 10 - bytes.length);
      if (n > 0) reads.push([gpa, gpa + n]);
      for (let i = 0; i < n; i++) bytes.push(mem.u8(gpa + i));
      if (bytes.length === 10) break;
    }
    return { flags: bytes[0]!, gsoType: bytes[1]!, csumStart: bytes[6]! | (bytes[7]! << 8), csumOffset: bytes[8]! | (bytes[9]! << 8) };
  };

  const availIdx = (ring: ModelRing): number => mem.u16(ring.availGpa + 2);
  const headAt = (ring: ModelRing, i: number): number => mem.u16(ring.availGpa + 4 + 2 * (i % ring.size));

  // ---- the receiveq: frames placed as they come ----
  const rx = input.rx;
  let rxBroken = false;
  let rxTaken = 0;
  const rxAvailable = (): number => (availIdx(rx) - rxTaken) & 0xffff;
  const breakRx = (kind: string, note: string): void => {
    rxBroken = true;
    e.needsReset = true;
    error('receiveq', kind, note);
  };
  const checkRxJump = (): boolean => {
    if (rxBroken) return false;
    if (rxAvailable() > rx.size) {
      breakRx('availIndexJump', `avail.idx ${availIdx(rx)} is more than ${rx.size} ahead of ${rxTaken}`);
      return false;
    }
    return true;
  };
  /** One frame of `length` bytes offered to the receiveq; false: not placed (no buffers, broken). */
  const receive = (length: number): boolean => {
    if (rxBroken || !checkRxJump()) return false;
    const total = header + length;
    let chains = 0;
    let written = 0;
    while (written < total) {
      if (rxAvailable() === 0) {
        rxTaken -= chains; // nothing consumed: the frame waits for buffers
        return false;
      }
      const head = headAt(rx, rxTaken);
      rxTaken++;
      chains++;
      const chain = resolve(rx, head);
      if (chain.error) {
        breakRx(chain.error, `head ${head}`);
        return false;
      }
      if (chain.readable > 0) {
        breakRx('rxReadableBuffer', `head ${head}`);
        return false;
      }
      if (written === 0) {
        if (!mergeable && chain.writable < total) {
          error('receiveq', 'rxBufferTooSmall', `head ${head}: ${chain.writable} < ${total}, dropped`);
          e.rxUsed++;
          return true;
        }
        if (chain.writable < header) {
          breakRx('rxBufferTooSmall', `head ${head}: ${chain.writable} bytes for the header`);
          return false;
        }
      }
      // The device writes into each chain as it takes it, before it knows whether the frame
      // will find all the chains it needs: a frame given back (no buffers) has written too.
      let room = total - written;
      for (const [gpa, len] of chain.buffers) {
        if (room === 0) break;
        const n = Math.min(room, len);
        if (n > 0) writes.push([gpa, gpa + n]);
        room -= n;
      }
      written += Math.min(chain.writable, total - written);
    }
    e.rxUsed += chains;
    e.rxFrames++;
    e.rxBytes += length;
    return true;
  };

  // ---- the transmitq, in order; each frame reflected at once ----
  const tx = input.tx;
  const txCount = availIdx(tx);
  if (txCount > tx.size) {
    e.needsReset = true;
    error('transmitq', 'availIndexJump', `avail.idx ${txCount} is more than ${tx.size} ahead of 0`);
  } else {
    for (let i = 0; i < txCount; i++) {
      const head = headAt(tx, i);
      const chain = resolve(tx, head);
      if (chain.error) {
        e.needsReset = true;
        error('transmitq', chain.error, `head ${head}`);
        break;
      }
      e.txUsed++;
      if (chain.writable > 0) {
        error('transmitq', 'txWriteOnlyBuffer', `head ${head}`);
        continue;
      }
      if (chain.readable < header) {
        error('transmitq', 'txHeaderTooShort', `head ${head}`);
        continue;
      }
      const frame = chain.readable - header;
      const h = readHeader(chain);
      // No GSO feature is offered, so the driver must send GSO_NONE (5.1.6.2).
      if (h.gsoType !== GsoType.none) {
        error('transmitq', 'txGsoNotNegotiated', `head ${head}: gso_type ${h.gsoType}`);
        continue;
      }
      if ((h.flags & NetHeaderFlags.needsCsum) !== 0 && !(h.csumStart < frame && h.csumStart + h.csumOffset + 2 <= frame)) {
        error('transmitq', 'txChecksumOutsideFrame', `head ${head}: csum_start ${h.csumStart} csum_offset ${h.csumOffset}, ${frame}-byte frame`);
        continue;
      }
      if (frame > MAX_FRAME) {
        error('transmitq', 'txFrameTooLarge', `head ${head}: ${frame} bytes`);
        continue;
      }
      e.txFrames++;
      e.txBytes += frame;
      if (input.reflect && !receive(frame)) e.rxNoBuffers++;
    }
  }
  // The device looks at the receiveq whenever the pair runs, frames or not.
  checkRxJump();

  for (const [ws, we] of writes) {
    for (const [rs, re] of reads) {
      if (ws < re && rs < we) {
        e.certain = false;
        return e;
      }
    }
  }
  return e;
}
