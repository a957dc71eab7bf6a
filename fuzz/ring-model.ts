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
import { GSO_ECN, GsoType, NetHeaderFlags } from '../device/net-header.js';
import { MAX_FRAME, MAX_GSO_FRAME } from './layout.js';

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
  /** The GSO features negotiated (HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_USO). */
  readonly gso: { readonly tcp4: boolean; readonly tcp6: boolean; readonly ecn: boolean; readonly udpL4: boolean };
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

  /** `count` bytes from byte `skip` of the chain's readable buffers (fewer when the chain ends first). */
  const gather = (chain: Chain, skip: number, count: number): number[] => {
    const bytes: number[] = [];
    let offset = 0;
    for (const [gpa, len] of chain.buffers) {
      const from = Math.max(0, skip - offset);
      const n = Math.min(len - from, count - bytes.length);
      offset += len;
      if (n <= 0) continue;
      reads.push([gpa + from, gpa + from + n]);
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
      const gso = h.gsoType !== GsoType.none;
      // Only the GSO types the negotiated features allow (5.1.6.2): none without them.
      if (gso && !gsoAllowed(input.gso, h.gsoType)) {
        error('transmitq', 'txGsoNotNegotiated', `head ${head}: gso_type ${h.gsoType}`);
        continue;
      }
      if ((h.flags & NetHeaderFlags.needsCsum) !== 0 && !(h.csumStart < frame && h.csumStart + h.csumOffset + 2 <= frame)) {
        error('transmitq', 'txChecksumOutsideFrame', `head ${head}: csum_start ${h.csumStart} csum_offset ${h.csumOffset}, ${frame}-byte frame`);
        continue;
      }
      if (frame > (gso ? MAX_GSO_FRAME : MAX_FRAME)) {
        error('transmitq', 'txFrameTooLarge', `head ${head}: ${frame} bytes`);
        continue;
      }
      // A GSO frame goes on as its segments; any other as it is.
      const wire = gso ? gsoSegments(h, gather(chain, header, Math.min(frame, GSO_HEADERS_MAX)), frame) : [frame];
      if (typeof wire === 'string') {
        error('transmitq', wire, `head ${head}: gso_type ${h.gsoType} hdr_len ${h.hdrLen} gso_size ${h.gsoSize} csum_start ${h.csumStart} csum_offset ${h.csumOffset}, ${frame}-byte frame`);
        continue;
      }
      e.txFrames++;
      e.txBytes += frame;
      if (input.reflect) for (const length of wire) if (!receive(length)) e.rxNoBuffers++;
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
