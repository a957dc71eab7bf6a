/**
 * Ring cases: one generator per hostile pattern a driver can write (each with the error kind it
 * must produce, which the deterministic tests check), valid traffic mixed in before (and, for
 * errors that only drop a frame, after) the hostile chain, a chaos generator of random
 * descriptors biased to boundary values, and field-level mutations for coverage guidance.
 */
import { DescFlags, PackedDescFlags } from 'vfio-user-ts';
import {
  BUFFER_AREA,
  GUEST_BASE,
  GUEST_END,
  INDIRECT_AREA,
  indirectSlotAddress,
  MAX_FRAME,
  QUEUE_SIZES,
} from './layout.js';
import type { Prng } from './prng.js';
import { desc, descWords, PACKED_FRESH_BASE, packedAvailBits, packedGenome, packedPosition, RingBuilder, type Desc, type RingGenome } from './ring-genome.js';

export interface RingCaseKind {
  readonly name: string;
  /** The error counter the case must move ('none' for valid traffic). */
  readonly expect: string;
  /** Whether the error stops the ring (DEVICE_NEEDS_RESET). */
  readonly fatal: boolean;
  readonly side: 'tx' | 'rx';
  /** The genomes it builds are packed (RingGenome.layout); absent: split. */
  readonly layout?: 'packed';
  build(prng: Prng): RingGenome;
}

/** A queue size from the list with room for at least `minimum` descriptors. */
function pickSize(prng: Prng, minimum: number): number {
  const sizes = QUEUE_SIZES.filter((s) => s >= minimum);
  return prng.pick(sizes);
}

function frameLength(prng: Prng): number {
  return prng.weighted([
    [3, prng.range(60, 128)],
    [2, prng.range(129, 1514)],
    [1, prng.pick([14, 60, 64, 1500, 1514])],
  ]);
}

/**
 * Adds up to `max` valid transmit frames, leaving `reserve` descriptors and `slots` available
 * ring slots for what the case adds after them.
 */
function validTx(b: RingBuilder, prng: Prng, max: number, reserve: number, slots: number): number[] {
  const heads: number[] = [];
  const count = prng.int(max + 1);
  for (let i = 0; i < count; i++) {
    const shape = prng.pick(['one', 'split', 'indirect'] as const);
    const needed = shape === 'split' ? 2 : 1;
    if (b.freeDescriptors - needed < reserve || b.chainsMade + 1 + slots > b.size) break;
    heads.push(b.txFrame(frameLength(prng), shape));
  }
  return heads;
}

/** An address (as two words) and a length at least `len` such that the buffer is outside guest memory. */
function outsideBuffer(prng: Prng, len: number): { hi: number; lo: number; len: number } {
  switch (prng.int(7)) {
    case 0:
      return { hi: 0, lo: GUEST_END, len: Math.max(1, len) }; // just past the end
    case 1:
      return { hi: 0, lo: GUEST_END - 8, len: Math.max(16, len) }; // starts inside, runs past the end
    case 2:
      return { hi: 0, lo: GUEST_BASE - 16, len: Math.max(1, len) }; // starts before the region
    case 3:
      return { hi: 0, lo: 0, len: Math.max(1, len) };
    case 4:
      return { hi: 0xffffffff, lo: 0xfffffff0, len: Math.max(32, len) }; // 2^64 - 16: wraps 2^64
    case 5:
      return { hi: 0x200000, lo: 0, len: Math.max(1, len) }; // 2^53
    default:
      return { hi: 1 + prng.int(0xffffffff), lo: prng.u32(), len: Math.max(1, len) };
  }
}

const txKinds: RingCaseKind[] = [
  {
    name: 'tx-valid',
    expect: 'none',
    fatal: false,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-valid', 'tx', pickSize(prng, 16), { version1: prng.chance(0.8), mergeable: prng.chance(0.7) });
      const heads = validTx(b, prng, 12, 0, 0);
      if (heads.length === 0) heads.push(b.txFrame(60));
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-loop',
    expect: 'chainTooLong',
    fatal: true,
    side: 'tx',
    build(prng) {
      const size = pickSize(prng, 1);
      const b = new RingBuilder('tx-loop', 'tx', size);
      const heads = validTx(b, prng, 4, 2, 1);
      const header = b.header;
      if (b.freeDescriptors >= 2 && prng.chance(0.7)) {
        const a = b.takeDescriptors(2);
        b.setDescriptor(a, desc(b.buffer(header), header, DescFlags.next, a + 1));
        b.setDescriptor(a + 1, desc(b.buffer(64), 64, DescFlags.next, a)); // back to the first
        heads.push(a);
      } else {
        const a = b.takeDescriptors(1);
        b.setDescriptor(a, desc(b.buffer(header + 60), header + 60, DescFlags.next, a)); // itself
        heads.push(a);
      }
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-longer-than-queue',
    expect: 'chainTooLong',
    fatal: true,
    side: 'tx',
    build(prng) {
      // Direct buffers, then an indirect table as large as the queue: more buffers than entries.
      const size = pickSize(prng, 2);
      const b = new RingBuilder('tx-longer-than-queue', 'tx', Math.min(size, 256));
      const heads = validTx(b, prng, 3, 2, 1);
      const n = b.size;
      const table: Desc[] = [];
      for (let i = 0; i < n; i++) table.push(desc(b.buffer(16), 16, i < n - 1 ? DescFlags.next : 0, i + 1));
      const slot = b.table(table);
      const head = b.takeDescriptors(2);
      b.setDescriptor(head, desc(b.buffer(b.header), b.header, DescFlags.next, head + 1));
      b.setDescriptor(head + 1, desc(indirectSlotAddress(slot), 16 * n, DescFlags.indirect));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-address-outside',
    expect: 'bufferOutsideMemory',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-address-outside', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 2, 1);
      const bad = outsideBuffer(prng, prng.pick([1, 16, 64, 1514]));
      const head = b.takeDescriptors(2);
      b.setDescriptor(head, desc(b.buffer(b.header), b.header, DescFlags.next, head + 1));
      b.setDescriptor(head + 1, descWords(bad.hi, bad.lo, bad.len, 0));
      heads.push(prng.chance(0.5) ? head : head + 1);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-length-huge',
    expect: 'bufferOutsideMemory',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-length-huge', 'tx', pickSize(prng, 1));
      const heads = validTx(b, prng, 4, 1, 1);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, desc(b.buffer(64), prng.pick([0xffffffff, 0x80000000, 0x100001, GUEST_END - BUFFER_AREA + 1]), 0));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-indirect-outside',
    expect: 'indirectOutsideMemory',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-indirect-outside', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 1, 1);
      const bad = outsideBuffer(prng, 16 * prng.range(1, Math.min(b.size, 8)));
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, descWords(bad.hi, bad.lo, 16 * Math.ceil(bad.len / 16), DescFlags.indirect));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-nested-indirect',
    expect: 'nestedIndirect',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-nested-indirect', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 1, 1);
      const inner = b.table([desc(b.buffer(b.header + 60), b.header + 60, 0)]);
      const outer: Desc[] = [];
      if (prng.chance(0.5)) outer.push(desc(b.buffer(b.header), b.header, DescFlags.next, 1));
      outer.push(desc(indirectSlotAddress(inner), 16, DescFlags.indirect));
      const slot = b.table(outer);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, desc(indirectSlotAddress(slot), 16 * outer.length, DescFlags.indirect));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-indirect-bad-length',
    expect: 'indirectBadLength',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-indirect-bad-length', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 1, 1);
      const slot = b.table([desc(b.buffer(b.header + 60), b.header + 60, 0)]);
      const len = prng.pick([0, 8, 24, 17, 16 * (b.size + 1), 0xfffffff0]);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, desc(indirectSlotAddress(slot), len, DescFlags.indirect));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-indirect-with-next',
    expect: 'indirectWithNext',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-indirect-with-next', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 2, 1);
      const slot = b.table([desc(b.buffer(b.header + 60), b.header + 60, 0)]);
      const head = b.takeDescriptors(2);
      b.setDescriptor(head, desc(indirectSlotAddress(slot), 16, DescFlags.indirect | DescFlags.next, head + 1));
      b.setDescriptor(head + 1, desc(b.buffer(60), 60, 0));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-indirect-not-negotiated',
    expect: 'indirectNotNegotiated',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-indirect-not-negotiated', 'tx', pickSize(prng, 2), { indirect: false });
      const heads = validTx(b, prng, 4, 1, 1);
      const slot = b.table([desc(b.buffer(b.header + 60), b.header + 60, 0)]);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, desc(indirectSlotAddress(slot), 16, DescFlags.indirect));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-avail-jump',
    expect: 'availIndexJump',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-avail-jump', 'tx', pickSize(prng, 1));
      const heads = validTx(b, prng, 4, 0, 0);
      b.publish(...heads);
      b.setAvailIdx(prng.pick([b.size + 1, b.size + 2, 0x8000, 0xffff]));
      return b.build();
    },
  },
  {
    name: 'tx-head-out-of-range',
    expect: 'headOutOfRange',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-head-out-of-range', 'tx', pickSize(prng, 1));
      const heads = validTx(b, prng, 4, 0, 1);
      heads.push(prng.pick([b.size, b.size + 1, 0x8000, 0xffff]));
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-next-out-of-range',
    expect: 'nextOutOfRange',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-next-out-of-range', 'tx', pickSize(prng, 1));
      const heads = validTx(b, prng, 4, 1, 1);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, desc(b.buffer(b.header), b.header, DescFlags.next, prng.pick([b.size, b.size + 1, 0xffff])));
      heads.push(head);
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-readable-after-writable',
    expect: 'readableAfterWritable',
    fatal: true,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-readable-after-writable', 'tx', pickSize(prng, 2));
      const heads = validTx(b, prng, 4, 2, 1);
      heads.push(b.chain([{ len: 64, writable: true }, { len: b.header + 60 }]));
      b.publish(...heads);
      return b.build();
    },
  },
  {
    name: 'tx-write-only',
    expect: 'txWriteOnlyBuffer',
    fatal: false,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-write-only', 'tx', pickSize(prng, 2));
      const before = validTx(b, prng, 3, 2, 1);
      const hostile = prng.chance(0.5) ? b.chain([{ len: b.header + 60, writable: true }]) : b.chain([{ len: b.header }, { len: 60, writable: true }]);
      const after = validTx(b, prng, 3, 0, 0);
      b.publish(...before, hostile, ...after);
      return b.build();
    },
  },
  {
    name: 'tx-short-header',
    expect: 'txHeaderTooShort',
    fatal: false,
    side: 'tx',
    build(prng) {
      const version1 = prng.chance(0.7);
      const mergeable = prng.chance(0.5);
      const b = new RingBuilder('tx-short-header', 'tx', pickSize(prng, 2), { version1, mergeable });
      const before = validTx(b, prng, 3, 2, 1);
      const short = prng.range(0, b.header - 1);
      const hostile = short > 1 && prng.chance(0.5) ? b.chain([{ len: 1 }, { len: short - 1 }]) : b.chain([{ len: short }]);
      const after = validTx(b, prng, 3, 0, 0);
      b.publish(...before, hostile, ...after);
      return b.build();
    },
  },
  {
    name: 'tx-gso-not-negotiated',
    expect: 'txGsoNotNegotiated',
    fatal: false,
    side: 'tx',
    build(prng) {
      // The device offers no GSO feature: any gso_type but GSO_NONE (TCPV4, UDP, TCPV6, ECN
      // alone, unknown values) drops the frame.
      const b = new RingBuilder('tx-gso-not-negotiated', 'tx', pickSize(prng, 2));
      const before = validTx(b, prng, 3, 2, 1);
      const gsoType = prng.pick([1, 3, 4, 5, 0x80, 0x81, 0xff, prng.range(1, 255)]);
      const gsoSize = prng.pick([0, 536, 1448, 0xffff]);
      const fields = [prng.chance(0.5) ? 1 : 0, gsoType, 54, 0, gsoSize & 0xff, gsoSize >> 8, 34, 0, 16, 0];
      const hostile = b.txFrameWithHeader(frameLength(prng), fields, prng.chance(0.5));
      const after = validTx(b, prng, 3, 0, 0);
      b.publish(...before, hostile, ...after);
      return b.build();
    },
  },
  {
    name: 'tx-checksum-outside-frame',
    expect: 'txChecksumOutsideFrame',
    fatal: false,
    side: 'tx',
    build(prng) {
      // NEEDS_CSUM with the sum starting past the frame, or the 2-byte field ending past it.
      const b = new RingBuilder('tx-checksum-outside-frame', 'tx', pickSize(prng, 2));
      const before = validTx(b, prng, 3, 2, 1);
      const frame = frameLength(prng);
      const [start, offset] = prng.pick<[number, number]>([
        [frame, 0],
        [frame - 1, 0],
        [frame - 2, 1],
        [0, frame - 1],
        [0xffff, 0xffff],
        [prng.int(frame), frame],
      ]);
      const fields = [1, 0, 0, 0, 0, 0, start & 0xff, (start >> 8) & 0xff, offset & 0xff, (offset >> 8) & 0xff];
      const hostile = b.txFrameWithHeader(frame, fields, prng.chance(0.5));
      const after = validTx(b, prng, 3, 0, 0);
      b.publish(...before, hostile, ...after);
      return b.build();
    },
  },
  {
    name: 'tx-oversized-frame',
    expect: 'txFrameTooLarge',
    fatal: false,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('tx-oversized-frame', 'tx', pickSize(prng, 2));
      const before = validTx(b, prng, 3, 2, 1);
      const frame = prng.pick([MAX_FRAME + 1, MAX_FRAME + 2, 100_000, 200_000]);
      const hostile = prng.chance(0.5) ? b.chain([{ len: b.header + frame }]) : b.chain([{ len: b.header }, { len: frame }]);
      const after = validTx(b, prng, 3, 0, 0);
      b.publish(...before, hostile, ...after);
      return b.build();
    },
  },
];

/** Receive buffers for `frames` frames (some spread over several chains when mergeable). */
function validRx(b: RingBuilder, prng: Prng, frames: readonly number[], reserve: number, mergeable: boolean): number[] {
  const heads: number[] = [];
  for (const frame of frames) {
    const total = b.header + frame;
    if (mergeable && prng.chance(0.4)) {
      // Split over chains of 1..3 buffers.
      let left = total;
      while (left > 0) {
        const n = prng.range(1, 3);
        if (b.freeDescriptors - n < reserve || b.chainsMade + 1 + reserve > b.size) return heads;
        const lengths = Array.from({ length: n }, () => prng.range(b.header, Math.max(b.header, 600)));
        heads.push(b.rxBuffers(lengths));
        left -= lengths.reduce((s, x) => s + x, 0);
      }
    } else {
      if (b.freeDescriptors - 1 < reserve || b.chainsMade + 1 + reserve > b.size) return heads;
      heads.push(b.rxBuffers([prng.chance(0.5) ? total : 2048]));
    }
  }
  return heads;
}

/** One 2048-byte chain per frame: each holds a whole frame, so the next chain starts the next frame. */
function rxSlots(b: RingBuilder, frames: number): number[] {
  return Array.from({ length: frames }, () => b.rxBuffers([2048]));
}

function feedFrames(prng: Prng, max: number): number[] {
  return Array.from({ length: prng.range(1, max) }, () => prng.range(60, 1500));
}

/** A GSO frame a case writes: its virtio-net header fields and its packet headers (the payload stays zero). */
interface GsoFrame {
  readonly length: number;
  /** Where the transport header starts, and where the headers end. */
  readonly l4: number;
  readonly headers: number;
  readonly tcp: boolean;
  readonly ipv6: boolean;
  /** flags, gso_type, hdr_len, gso_size, csum_start, csum_offset as little-endian bytes. */
  readonly fields: number[];
  readonly head: number[];
}

const le16 = (value: number): [number, number] => [value & 0xff, (value >> 8) & 0xff];

/**
 * A valid GSO frame as Linux's virtio_net sends one: TCP (TSO) or UDP (USO) over IPv4 or IPv6, up
 * to 8 KiB, MSS-sized segments (`udp` forces UDP).
 */
function validGsoFrame(prng: Prng, udp = prng.chance(0.3)): GsoFrame {
  const ipv6 = prng.chance(0.4);
  const ipHeader = ipv6 ? 40 : prng.chance(0.8) ? 20 : 4 * prng.range(6, 15);
  const l4 = 14 + ipHeader;
  if (udp) return validUsoFrame(prng, ipv6, ipHeader, l4);
  const tcpHeader = prng.pick([20, 32, 4 * prng.range(5, 15)]);
  const headers = l4 + tcpHeader;
  const length = headers + prng.weighted([[3, prng.range(1, 8000)], [1, prng.pick([0, 1, 536, 1448, 2896])]]);
  const mss = prng.pick([536, 1000, 1448, 1460, prng.range(64, 3000)]);
  const head = new Array<number>(headers).fill(0);
  head.splice(12, 2, ...(ipv6 ? [0x86, 0xdd] : [0x08, 0x00]));
  if (ipv6) {
    head[14] = 0x60;
    head[20] = 6;
  } else {
    head[14] = 0x40 | (ipHeader / 4);
    head[20] = 0x40; // DF
    head[23] = 6;
  }
  head[l4 + 12] = (tcpHeader / 4) << 4;
  head[l4 + 13] = prng.pick([0x10, 0x18, 0x19, 0xd8]);
  const gsoType = (ipv6 ? 4 : 1) | (prng.chance(0.2) ? 0x80 : 0);
  return { length, l4, headers, tcp: true, ipv6, fields: [1, gsoType, ...le16(headers), ...le16(mss), ...le16(l4), ...le16(16)], head };
}

/** A UDP GSO frame (gso_type UDP_L4): the UDP header, then datagrams of gso_size bytes. */
function validUsoFrame(prng: Prng, ipv6: boolean, ipHeader: number, l4: number): GsoFrame {
  const headers = l4 + 8;
  const length = headers + prng.weighted([[3, prng.range(1, 8000)], [1, prng.pick([0, 1, 1472, 2944])]]);
  const mss = prng.pick([1000, 1232, 1452, 1472, prng.range(64, 3000)]);
  const head = new Array<number>(headers).fill(0);
  head.splice(12, 2, ...(ipv6 ? [0x86, 0xdd] : [0x08, 0x00]));
  if (ipv6) {
    head[14] = 0x60;
    head[20] = 17;
  } else {
    head[14] = 0x40 | (ipHeader / 4);
    head[20] = 0x40; // DF
    head[23] = 17;
  }
  head.splice(l4 + 4, 2, ...[(length - l4) >> 8, (length - l4) & 0xff]);
  return { length, l4, headers, tcp: false, ipv6, fields: [1, 5, ...le16(headers), ...le16(mss), ...le16(l4), ...le16(6)], head };
}

/** A GSO frame on the ring: its header and frame in one buffer or split. */
function gsoChain(b: RingBuilder, prng: Prng, frame: GsoFrame): number {
  return b.txFrameWithHeader(frame.length, frame.fields, prng.chance(0.5), frame.head);
}

/** A case with GSO negotiated: valid frames (some GSO), the frame `spoil` makes hostile, then more valid ones. */
function gsoCase(name: string, expect: string, spoil: (frame: GsoFrame, prng: Prng) => GsoFrame, udp?: boolean): RingCaseKind {
  return {
    name,
    expect,
    fatal: false,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder(name, 'tx', pickSize(prng, 8), { tso: true });
      const before = [...validTx(b, prng, 2, 6, 4), gsoChain(b, prng, validGsoFrame(prng))];
      const hostile = gsoChain(b, prng, spoil(validGsoFrame(prng, udp), prng));
      b.publish(...before, hostile, gsoChain(b, prng, validGsoFrame(prng)), ...validTx(b, prng, 2, 0, 0));
      return b.build();
    },
  };
}

/** `frame` with header fields or packet header bytes replaced. */
function spoiled(frame: GsoFrame, fields: Record<number, number>, head: Record<number, number> = {}, length = frame.length): GsoFrame {
  const f = { ...frame, fields: [...frame.fields], head: [...frame.head], length };
  for (const [i, v] of Object.entries(fields)) f.fields[Number(i)] = v;
  for (const [i, v] of Object.entries(head)) f.head[Number(i)] = v;
  return f;
}

const gsoKinds: RingCaseKind[] = [
  gsoCase('tx-gso-valid', 'none', (frame) => frame),
  // Legacy UFO is not offered, nor are unknown types; ECN is TCP's.
  gsoCase('tx-gso-type-not-negotiated', 'txGsoNotNegotiated', (frame, prng) => spoiled(frame, { 1: prng.pick([2, 3, 0x83, 0x85, prng.range(6, 0x7f)]) })),
  gsoCase('tx-gso-without-checksum', 'txGsoWithoutChecksum', (frame) => spoiled(frame, { 0: 0 })),
  gsoCase('tx-gso-wrong-network-protocol', 'txGsoWrongNetworkProtocol', (frame, prng) =>
    prng.pick([
      spoiled(frame, { 1: frame.ipv6 ? 1 : 4 }),
      spoiled(frame, {}, { 12: 0x08, 13: 0x06 }),
      spoiled(frame, {}, { 14: frame.ipv6 ? 0x45 : 0x65 }),
    ]),
  ),
  gsoCase('tx-gso-malformed-headers', 'txGsoMalformedHeaders', (frame, prng) => {
    // A UDP header cannot be cut without its checksum field (txChecksumOutsideFrame): only IPv4's can break.
    const cases = frame.tcp
      ? [
          spoiled(frame, {}, { [frame.l4 + 12]: prng.range(0, 4) << 4 }),
          // Cut inside the TCP header, after its checksum field (which must fit the frame).
          ...(frame.headers > frame.l4 + 20 ? [spoiled(frame, {}, {}, prng.range(frame.l4 + 20, frame.headers - 1))] : []),
        ]
      : [];
    if (!frame.ipv6) cases.push(spoiled(frame, {}, { 14: 0x40 | prng.range(0, 4) }), spoiled(frame, {}, { 20: prng.pick([0x20, 0x00]), 21: prng.pick([1, 0xff]) }));
    return cases.length > 0 ? prng.pick(cases) : spoiled(frame, {}, { 12: 0x08, 13: 0x00, 14: 0x40 | prng.range(0, 4) });
  }),
  // TSO on UDP and the like; USO on TCP, ICMPv6, UDP-Lite (136), an IPv6 extension header (0).
  gsoCase('tx-gso-wrong-transport', 'txGsoWrongTransport', (frame, prng) =>
    spoiled(frame, {}, { [frame.ipv6 ? 20 : 23]: frame.tcp ? prng.pick([17, 0, 58, 255]) : prng.pick([6, 0, 58, 136, 255]) }),
  ),
  gsoCase('tx-gso-bad-checksum-offsets', 'txGsoBadChecksumOffsets', (frame, prng) =>
    prng.pick([spoiled(frame, { 8: frame.tcp ? 6 : 16 }), spoiled(frame, { 6: prng.pick([0, 14, frame.l4 - 1, frame.l4 + 1]) })]),
  ),
  gsoCase('tx-gso-bad-header-length', 'txGsoBadHeaderLength', (frame, prng) => {
    const hdrLen = prng.chance(0.5) ? prng.int(frame.headers) : prng.range(frame.length + 1, 0xffff);
    return spoiled(frame, { 2: hdrLen & 0xff, 3: hdrLen >> 8 });
  }),
  gsoCase('tx-gso-bad-segment-size', 'txGsoBadSegmentSize', (frame, prng) => {
    const gsoSize = prng.chance(0.5) ? 0 : prng.range(MAX_FRAME - frame.headers + 1, 0xffff);
    return spoiled(frame, { 4: gsoSize & 0xff, 5: gsoSize >> 8 });
  }),
  // USO only: more than 128 datagrams (gso_size small against a payload of at least 129 bytes).
  gsoCase(
    'tx-gso-too-many-segments',
    'txGsoTooManySegments',
    (frame, prng) => {
      const length = Math.max(frame.length, frame.headers + prng.range(129, 8000));
      const gsoSize = prng.range(1, Math.ceil((length - frame.headers) / 128) - 1 || 1);
      return spoiled(frame, { 4: gsoSize & 0xff, 5: gsoSize >> 8 }, {}, length);
    },
    true,
  ),
];

const rxKinds: RingCaseKind[] = [
  {
    name: 'rx-valid',
    expect: 'none',
    fatal: false,
    side: 'rx',
    build(prng) {
      const mergeable = prng.chance(0.7);
      const b = new RingBuilder('rx-valid', 'rx', pickSize(prng, 16), { mergeable, version1: prng.chance(0.8) });
      const frames = feedFrames(prng, 6);
      b.publish(...validRx(b, prng, frames, 0, mergeable));
      b.feed(...frames);
      return b.build();
    },
  },
  {
    name: 'rx-readable-buffer',
    expect: 'rxReadableBuffer',
    fatal: true,
    side: 'rx',
    build(prng) {
      const b = new RingBuilder('rx-readable-buffer', 'rx', pickSize(prng, 16));
      const frames = feedFrames(prng, 4);
      const heads = rxSlots(b, frames.length - 1);
      heads.push(prng.chance(0.5) ? b.chain([{ len: 2048 }]) : b.chain([{ len: 64 }, { len: 2048, writable: true }]));
      b.publish(...heads);
      b.feed(...frames);
      return b.build();
    },
  },
  {
    name: 'rx-buffer-too-small',
    expect: 'rxBufferTooSmall',
    fatal: false,
    side: 'rx',
    build(prng) {
      // Without mergeable buffers a frame must fit one chain: dropped, the ring goes on.
      const b = new RingBuilder('rx-buffer-too-small', 'rx', pickSize(prng, 16), { mergeable: false });
      const frames = feedFrames(prng, 4);
      const heads = rxSlots(b, frames.length - 1);
      heads.push(b.rxBuffers([prng.range(1, b.header + 59)]));
      b.publish(...heads);
      b.feed(...frames.slice(1), 60 + prng.int(100));
      return b.build();
    },
  },
  {
    name: 'rx-header-does-not-fit',
    expect: 'rxBufferTooSmall',
    fatal: true,
    side: 'rx',
    build(prng) {
      // With mergeable buffers the first chain must at least hold the header.
      const b = new RingBuilder('rx-header-does-not-fit', 'rx', pickSize(prng, 16), { mergeable: true });
      const frames = feedFrames(prng, 4);
      const heads = rxSlots(b, frames.length - 1);
      heads.push(b.rxBuffers([prng.range(0, b.header - 1)]));
      b.publish(...heads);
      b.feed(...frames);
      return b.build();
    },
  },
  {
    name: 'rx-error-after-frames',
    expect: 'bufferOutsideMemory',
    fatal: true,
    side: 'rx',
    build(prng) {
      // Frames placed before the broken chain must be delivered (published) and counted.
      const b = new RingBuilder('rx-error-after-frames', 'rx', pickSize(prng, 16));
      const frames = feedFrames(prng, 5);
      const heads = rxSlots(b, frames.length - 1);
      const bad = outsideBuffer(prng, 2048);
      const head = b.takeDescriptors(1);
      b.setDescriptor(head, descWords(bad.hi, bad.lo, bad.len, DescFlags.write));
      heads.push(head);
      b.publish(...heads);
      b.feed(...frames);
      return b.build();
    },
  },
  {
    name: 'rx-avail-jump',
    expect: 'availIndexJump',
    fatal: true,
    side: 'rx',
    build(prng) {
      const b = new RingBuilder('rx-avail-jump', 'rx', pickSize(prng, 1));
      b.publish(...validRx(b, prng, feedFrames(prng, 2), 0, false));
      b.setAvailIdx(prng.pick([b.size + 1, 0x8000, 0xffff]));
      b.feed(...feedFrames(prng, 3));
      return b.build();
    },
  },
  {
    name: 'rx-loop',
    expect: 'chainTooLong',
    fatal: true,
    side: 'rx',
    build(prng) {
      const b = new RingBuilder('rx-loop', 'rx', pickSize(prng, 16));
      const frames = feedFrames(prng, 3);
      const heads = rxSlots(b, frames.length - 1);
      const a = b.takeDescriptors(2);
      b.setDescriptor(a, desc(b.buffer(16), 16, DescFlags.write | DescFlags.next, a + 1));
      b.setDescriptor(a + 1, desc(b.buffer(16), 16, DescFlags.write | DescFlags.next, a));
      heads.push(a);
      b.publish(...heads);
      b.feed(...frames);
      return b.build();
    },
  },
];

const PAGE = 4096;

/**
 * A frontend that truncates its guest-memory memfd mid-traffic (QEMU and DPDK do not seal it):
 * valid frames, then chains whose buffers lie beyond the new end, published after the cut
 * (RingGenome.truncate). The device must not die of SIGBUS: it counts the truncation and
 * disconnects the frontend, whose reset clears DEVICE_NEEDS_RESET again before the counters are
 * read (hence not `fatal`). Everything else is valid traffic, counted as the rules say.
 */
const truncationKinds: RingCaseKind[] = [
  {
    name: 'truncate-tx',
    expect: 'guestMemoryTruncated',
    fatal: false,
    side: 'tx',
    build(prng) {
      const b = new RingBuilder('truncate-tx', 'tx', pickSize(prng, 32), { version1: prng.chance(0.8), mergeable: prng.chance(0.7) });
      const before = validTx(b, prng, 8, 16, 8);
      // Memory ends 0..7 pages after the last buffer used before the cut (indirect tables lie
      // beyond it too, read before the cut); the frames after it are read from beyond the end.
      const kept = Math.ceil((b.bufferEnd - GUEST_BASE) / PAGE) * PAGE + PAGE * prng.int(8);
      b.skipBuffersTo(GUEST_BASE + kept + 16 * prng.int(PAGE / 16));
      const after = Array.from({ length: prng.range(1, 8) }, () => b.txFrame(frameLength(prng), prng.pick(['one', 'split'] as const)));
      b.publish(...before, ...after);
      b.truncateAfter(before.length, kept);
      return b.build();
    },
  },
  {
    name: 'truncate-rx',
    expect: 'guestMemoryTruncated',
    fatal: false,
    side: 'rx',
    build(prng) {
      const mergeable = prng.chance(0.7);
      const b = new RingBuilder('truncate-rx', 'rx', pickSize(prng, 16), { mergeable, version1: prng.chance(0.8) });
      const frames = feedFrames(prng, 12);
      const before = prng.int(frames.length);
      // The frames fed from the transmitq lie below the indirect area and stay; receive
      // buffers after the cut are written beyond the end.
      const skip = prng.int(8);
      const kept = INDIRECT_AREA - GUEST_BASE + PAGE * prng.int(skip + 1);
      const beyond = INDIRECT_AREA + PAGE * skip + 16 * prng.int(PAGE / 16);
      const heads = rxSlots(b, before);
      for (let i = before; i < frames.length; i++) heads.push(b.chain([{ len: 2048, writable: true, addr: beyond + 2048 * (i - before) }]));
      b.publish(...heads);
      b.feed(...frames);
      b.truncateAfter(before, kept);
      return b.build();
    },
  },
];

const splitKinds: readonly RingCaseKind[] = [...txKinds, ...gsoKinds, ...rxKinds, ...truncationKinds];

// ---- packed rings ------------------------------------------------------------------------------

/**
 * Split patterns that are about the split ring's own structure: avail.idx, head indexes, next
 * links. A packed ring has none of them (its chains are consecutive slots; a loop is a chain
 * round the whole ring, packedLoop below).
 */
const SPLIT_ONLY = new Set(['tx-loop', 'tx-avail-jump', 'tx-head-out-of-range', 'tx-next-out-of-range', 'rx-avail-jump', 'rx-loop']);

const WRAP_BITS = PackedDescFlags.avail | PackedDescFlags.used;

/**
 * Where a packed case's hostile queue starts (SET_VRING_BASE): a fresh ring, a slot just before
 * the ring's end (its chains cross it, the wrap counter flipping there), or anywhere, on either
 * lap.
 */
function packedStart(prng: Prng, size: number): number {
  const wrap = prng.chance(0.5) ? 0x8000 : 0;
  return prng.weighted([
    [4, PACKED_FRESH_BASE],
    [4, wrap | (size - 1 - prng.int(Math.min(size, 8)))],
    [2, wrap | prng.int(size)],
  ]);
}

/**
 * The slots after the chains hold what a driver's ring holds there after a lap: used elements
 * of the previous lap (AVAIL and USED both the other wrap counter), never available. Up to 16
 * of them: the device looks no further than the first.
 */
function withStaleSlots(g: RingGenome, prng: Prng): RingGenome {
  const base = g.base ?? PACKED_FRESH_BASE;
  const posted = g.table.length;
  for (let k = posted; k < Math.min(g.size, posted + 16); k++) {
    const { slot, wrap } = packedPosition(base, g.size, k);
    const stale = wrap === 0 ? WRAP_BITS : 0;
    g.table.push([slot, desc(BUFFER_AREA + 16 * prng.int(1024), prng.pick([0, 60, 1514]), stale | (prng.chance(0.3) ? DescFlags.write : 0), prng.int(g.size))]);
  }
  return g;
}

/** Any driver event suppression (RingGenome.driverEvent): off_wrap anywhere, flags ENABLE, DISABLE, DESC or reserved. */
function driverEvent(prng: Prng, size: number): [number, number] {
  const offWrap = prng.pick([0, 0x8000, (size - 1) | 0x8000, size, prng.int(0x10000)]);
  return [offWrap, prng.pick([0, 1, 2, 3, prng.int(0x10000)])];
}

/** The driver's wrap counter at `slot` on the lap that starts at a packed genome's base. */
function lapOf(g: RingGenome, slot: number): number {
  const base = g.base ?? PACKED_FRESH_BASE;
  return packedPosition(base, g.size, (slot - packedPosition(base, g.size, 0).slot + g.size) % g.size).wrap;
}

/** A split pattern on a packed ring: the same chains from a packed start (packedGenome), the same error kind. */
function packedVariant(kind: RingCaseKind): RingCaseKind {
  const name = `packed-${kind.name}`;
  return {
    ...kind,
    name,
    layout: 'packed',
    build(prng) {
      const split = kind.build(prng);
      const g = packedGenome(split, name, packedStart(prng, split.size));
      if (prng.chance(0.4)) g.driverEvent = driverEvent(prng, g.size);
      return prng.chance(0.5) ? withStaleSlots(g, prng) : g;
    },
  };
}

/** The slots of chain `k` of a packed genome: from its head while NEXT (not with INDIRECT) goes on. */
function chainSlots(g: RingGenome, k: number): number[] {
  const slots = [g.heads[k]!];
  for (let d = entry(g, slots[0]!); (d.flags & DescFlags.next) !== 0 && (d.flags & DescFlags.indirect) === 0 && slots.length < g.size; ) {
    slots.push((slots[slots.length - 1]! + 1) % g.size);
    d = entry(g, slots[slots.length - 1]!);
  }
  return slots;
}

function entry(g: RingGenome, slot: number): Desc {
  const found = g.table.find(([s]) => s === slot);
  if (!found) throw new RangeError(`${g.name}: slot ${slot} holds no descriptor`);
  return found[1];
}

/** Valid transmit frames on a packed ring, at least two chains, the last a header and a frame in two descriptors. */
function packedTxFrames(name: string, prng: Prng): RingGenome {
  const b = new RingBuilder(name, 'tx', pickSize(prng, 16), { version1: prng.chance(0.8), mergeable: prng.chance(0.7) });
  const heads = validTx(b, prng, 10, 3, 2);
  if (heads.length === 0) heads.push(b.txFrame(frameLength(prng)));
  heads.push(b.txFrame(frameLength(prng), 'split'));
  b.publish(...heads);
  return packedGenome(b.build(), name, packedStart(prng, b.size));
}

/** Receive buffers on a packed ring for frames fed from the transmitq, one 2048-byte chain each. */
function packedRxBuffers(name: string, prng: Prng, frames: number): RingGenome {
  const b = new RingBuilder(name, 'rx', pickSize(prng, 16), { mergeable: prng.chance(0.5) });
  b.publish(...rxSlots(b, frames));
  b.feed(...Array.from({ length: frames }, () => prng.range(60, 1500)));
  return packedGenome(b.build(), name, packedStart(prng, b.size));
}

/**
 * Chain `k`'s first descriptor with AVAIL and USED not as the driver makes it available on its
 * lap: as used on that lap, as available on the other lap, or neither. The device must not take
 * it, nor anything after it; no error: to the device it is a ring the driver has not filled yet.
 */
function spoilWrap(g: RingGenome, prng: Prng, k: number): void {
  const first = entry(g, g.heads[k]!);
  const right = first.flags & WRAP_BITS;
  first.flags = (first.flags & ~WRAP_BITS) | prng.pick([0, PackedDescFlags.avail, PackedDescFlags.used, WRAP_BITS].filter((bits) => bits !== right));
}

/**
 * The first chain takes every slot of the ring, each with NEXT, so it comes round to its own
 * first slot: a chain longer than the queue, the packed ring's loop.
 */
function packedLoop(name: string, side: 'tx' | 'rx', prng: Prng): RingGenome {
  const b = new RingBuilder(name, side, prng.pick([1, 2, 16, 64, 256]));
  const g = packedGenome(b.build(), name, packedStart(prng, b.size));
  const base = g.base!;
  for (let k = 0; k < g.size; k++) {
    const { slot, wrap } = packedPosition(base, g.size, k);
    g.table.push([slot, desc(b.buffer(16), 16, DescFlags.next | packedAvailBits(wrap) | (side === 'rx' ? DescFlags.write : 0), 0)]);
  }
  g.heads = [packedPosition(base, g.size, 0).slot];
  if (side === 'rx') g.feed = feedFrames(prng, 3);
  return g;
}

const packedOnlyKinds: RingCaseKind[] = [
  {
    name: 'packed-tx-wrong-wrap',
    expect: 'none',
    fatal: false,
    side: 'tx',
    layout: 'packed',
    build(prng) {
      const g = packedTxFrames('packed-tx-wrong-wrap', prng);
      spoilWrap(g, prng, prng.range(1, g.heads.length - 1));
      return g;
    },
  },
  {
    name: 'packed-tx-wrap-bits-after-first',
    expect: 'none',
    fatal: false,
    side: 'tx',
    layout: 'packed',
    build(prng) {
      // Only a chain's first flags make it available (the driver writes them last): the wrap
      // bits of the descriptors after it say nothing, and the chain goes out.
      const g = packedTxFrames('packed-tx-wrap-bits-after-first', prng);
      const second = entry(g, chainSlots(g, g.heads.length - 1)[1]!);
      second.flags = (second.flags & ~WRAP_BITS) | prng.pick([0, PackedDescFlags.avail, PackedDescFlags.used, WRAP_BITS]);
      return g;
    },
  },
  {
    name: 'packed-tx-unoffered-ids',
    expect: 'none',
    fatal: false,
    side: 'tx',
    layout: 'packed',
    build(prng) {
      // Buffer ids the driver never offered, repeated, or out of the ring's range: the device
      // returns whatever the chain's last descriptor names.
      const g = packedTxFrames('packed-tx-unoffered-ids', prng);
      for (let k = 0; k < g.heads.length; k++) {
        if (prng.chance(0.4)) continue;
        const id = prng.pick([g.size, g.size + 1, 0x7fff, 0x8000, 0xffff, prng.int(0x10000), g.heads[0]!]);
        const slots = chainSlots(g, k);
        // Sometimes only the last descriptor's id changes, sometimes only the others'.
        const which = prng.int(3);
        slots.forEach((s, i) => {
          const last = i === slots.length - 1;
          if (which === 0 || (which === 1 && last) || (which === 2 && !last)) entry(g, s).next = id;
        });
      }
      return g;
    },
  },
  {
    name: 'packed-tx-loop',
    expect: 'chainTooLong',
    fatal: true,
    side: 'tx',
    layout: 'packed',
    build: (prng) => packedLoop('packed-tx-loop', 'tx', prng),
  },
  {
    name: 'packed-rx-wrong-wrap',
    expect: 'none',
    fatal: false,
    side: 'rx',
    layout: 'packed',
    build(prng) {
      // The frames after the spoiled chain find no buffers.
      const g = packedRxBuffers('packed-rx-wrong-wrap', prng, prng.range(2, 6));
      spoilWrap(g, prng, prng.range(1, g.heads.length - 1));
      return g;
    },
  },
  {
    name: 'packed-rx-loop',
    expect: 'chainTooLong',
    fatal: true,
    side: 'rx',
    layout: 'packed',
    build: (prng) => packedLoop('packed-rx-loop', 'rx', prng),
  },
];

const packedKinds: readonly RingCaseKind[] = [...splitKinds.filter((k) => !SPLIT_ONLY.has(k.name)).map(packedVariant), ...packedOnlyKinds];

/**
 * The share of ring cases (generated and chaos) that negotiate VIRTIO_F_IN_ORDER: their
 * transmitq publishes each burst as one used element, whatever the case does to the ring.
 */
const IN_ORDER_SHARE = 0.5;

/** A generator whose cases negotiate IN_ORDER in IN_ORDER_SHARE of them (drawn once the case is built). */
function sometimesInOrder(kind: RingCaseKind): RingCaseKind {
  return { ...kind, build: (prng) => ({ ...kind.build(prng), inOrder: prng.chance(IN_ORDER_SHARE) }) };
}

/** Every ring pattern the fuzzer knows: split (transmit side first, truncation last), then packed. */
export const ringKinds: readonly RingCaseKind[] = [...splitKinds, ...packedKinds].map(sometimesInOrder);

export function ringKind(name: string): RingCaseKind {
  const kind = ringKinds.find((k) => k.name === name);
  if (!kind) throw new Error(`no ring case named ${name}`);
  return kind;
}

// ---- chaos and mutation ------------------------------------------------------------------------

function interestingAddress(prng: Prng, g: RingGenome): [number, number] {
  return prng.pick<[number, number]>([
    [0, GUEST_BASE],
    [0, GUEST_END],
    [0, GUEST_END - 16],
    [0, GUEST_END - 1],
    [0, BUFFER_AREA + 16 * prng.int(64)],
    [0, INDIRECT_AREA + 16 * prng.int(16)],
    [0, indirectSlotAddress(prng.int(Math.max(1, g.tables.length)))],
    [0, GUEST_BASE + 0x1000 * prng.int(32)], // somewhere in the rings
    [0, 0],
    [1, 0],
    [0x1fffff, 0xffffffff],
    [0x200000, 0],
    [0xffffffff, 0xffffffff],
    [0xffffffff, 0xfffffff0],
    [prng.u32(), prng.u32()],
  ]);
}

function interestingLength(prng: Prng, g: RingGenome): number {
  return prng.pick([0, 1, 2, 9, 10, 11, 12, 13, 16, 17, 24, 60, 64, 1514, 2048, 16 * g.size, 16 * (g.size + 1), 0x10000, 0x10000 + 13, 0x7fffffff, 0x80000000, 0xffffffff, prng.u32(), prng.range(0, 4096)]);
}

function interestingIndex(prng: Prng, g: RingGenome): number {
  return prng.pick([0, 1, g.size - 1, g.size, g.size + 1, 0x7fff, 0x8000, 0xffff, prng.int(g.size), prng.int(0x10000)]);
}

function randomDesc(prng: Prng, g: RingGenome): Desc {
  const [hi, lo] = prng.chance(0.6) ? [0, BUFFER_AREA + 16 * prng.int(1024)] : interestingAddress(prng, g);
  const flags = prng.chance(0.1) ? prng.int(0x10000) : prng.pick([0, DescFlags.next, DescFlags.write, DescFlags.next | DescFlags.write, DescFlags.indirect, DescFlags.indirect | DescFlags.next, DescFlags.indirect | DescFlags.write]);
  return descWords(hi, lo, prng.chance(0.5) ? prng.range(0, 2048) : interestingLength(prng, g), flags, prng.chance(0.7) ? prng.int(g.size) : interestingIndex(prng, g));
}

/** A genome of random descriptors, heads and indexes, biased towards boundaries. */
export function chaosRing(prng: Prng): RingGenome {
  const size = prng.pick(QUEUE_SIZES.filter((s) => s <= 256));
  const side = prng.chance(0.7) ? 'tx' : 'rx';
  const g: RingGenome = {
    name: `chaos-${side}`,
    side,
    size,
    indirect: prng.chance(0.8),
    mergeable: prng.chance(0.6),
    version1: prng.chance(0.8),
    inOrder: prng.chance(IN_ORDER_SHARE),
    table: [],
    tables: [],
    heads: [],
    availIdx: null,
    feed: [],
  };
  const tables = prng.int(4);
  for (let t = 0; t < tables; t++) g.tables.push(Array.from({ length: prng.range(1, 8) }, () => randomDesc(prng, g)));
  const descriptors = prng.range(1, Math.min(size, 16));
  for (let i = 0; i < descriptors; i++) g.table.push([prng.int(size), randomDesc(prng, g)]);
  const heads = prng.range(1, Math.min(size, 8));
  for (let i = 0; i < heads; i++) g.heads.push(prng.chance(0.9) ? prng.int(size) : interestingIndex(prng, g));
  if (prng.chance(0.1)) g.availIdx = interestingIndex(prng, g);
  if (side === 'rx') g.feed = feedFrames(prng, 4);
  return g;
}

/**
 * A packed ring of random descriptors: a run of them from the ring's start slot on (most
 * flagged available on their lap, the rest with any AVAIL and USED bits), a few elsewhere.
 */
export function chaosPackedRing(prng: Prng): RingGenome {
  const split = chaosRing(prng);
  const base = packedStart(prng, split.size);
  const table: [number, Desc][] = split.table.map(([index, d], k) => {
    const { slot, wrap } = packedPosition(base, split.size, prng.chance(0.85) ? k : index);
    const bits = prng.chance(0.75) ? packedAvailBits(wrap) : prng.pick([0, PackedDescFlags.avail, PackedDescFlags.used, WRAP_BITS]);
    return [slot, { ...d, flags: (d.flags & ~WRAP_BITS) | bits }];
  });
  const g: RingGenome = { ...split, name: `packed-${split.name}`, layout: 'packed', base, table, heads: [], availIdx: null };
  if (prng.chance(0.5)) g.driverEvent = driverEvent(prng, split.size);
  return g;
}

function mutateDesc(prng: Prng, g: RingGenome, d: Desc): void {
  switch (prng.int(7)) {
    case 0: {
      const [hi, lo] = interestingAddress(prng, g);
      d.addrHi = hi;
      d.addrLo = lo;
      return;
    }
    case 1:
      d.addrLo = (d.addrLo + prng.pick([-16, -1, 1, 16, 4096, -4096])) >>> 0;
      return;
    case 2:
      d.len = interestingLength(prng, g);
      return;
    case 3:
      d.len = (d.len + prng.pick([-1, 1, -16, 16])) >>> 0;
      return;
    case 4:
      d.flags ^= prng.pick([DescFlags.next, DescFlags.write, DescFlags.indirect, 1 << prng.int(16)]);
      return;
    case 5:
      d.next = interestingIndex(prng, g);
      return;
    default:
      d.addrLo = (d.addrLo ^ (1 << prng.int(32))) >>> 0;
  }
}

/** 1 to 4 field-level changes to a copy of `parent`. */
export function mutateRing(parent: RingGenome, prng: Prng): RingGenome {
  const g: RingGenome = structuredClone(parent);
  g.name = `mutated:${parent.name.replace(/^mutated:/, '')}`;
  const rounds = prng.range(1, 4);
  for (let r = 0; r < rounds; r++) {
    switch (prng.int(13)) {
      case 0:
      case 1:
      case 2:
        if (g.table.length > 0) mutateDesc(prng, g, prng.pick(g.table)[1]);
        else g.table.push([prng.int(g.size), randomDesc(prng, g)]);
        break;
      case 3:
        if (g.tables.length > 0) {
          const table = prng.pick(g.tables);
          if (table.length > 0) mutateDesc(prng, g, prng.pick(table));
        } else {
          g.tables.push([randomDesc(prng, g)]);
        }
        break;
      case 4: {
        const d = randomDesc(prng, g);
        const slot = prng.int(g.size);
        // Packed: most often available on the slot's lap.
        if (g.layout === 'packed' && prng.chance(0.7)) d.flags = (d.flags & ~WRAP_BITS) | packedAvailBits(lapOf(g, slot));
        g.table.push([slot, d]);
        break;
      }
      case 5:
        if (g.table.length > 1) g.table.splice(prng.int(g.table.length), 1);
        break;
      case 6:
        // Packed: a descriptor's AVAIL or USED bit (wrong lap, looks used), or its buffer id.
        if (g.layout === 'packed') {
          if (g.table.length > 0) {
            const d = prng.pick(g.table)[1];
            if (prng.chance(0.7)) d.flags ^= prng.pick([PackedDescFlags.avail, PackedDescFlags.used, WRAP_BITS]);
            else d.next = interestingIndex(prng, g);
          }
        } else if (g.heads.length > 0 && prng.chance(0.5)) g.heads[prng.int(g.heads.length)] = interestingIndex(prng, g);
        else if (g.heads.length < g.size) g.heads.push(prng.int(g.size));
        break;
      case 7:
        // Packed: where the ring starts (slot and wrap counter), or the driver's event suppression.
        if (g.layout === 'packed' && prng.chance(0.3)) g.driverEvent = driverEvent(prng, g.size);
        else if (g.layout === 'packed') g.base = prng.chance(0.5) ? (g.base ?? PACKED_FRESH_BASE) ^ 0x8000 : packedStart(prng, g.size);
        else g.availIdx = prng.chance(0.3) ? null : prng.chance(0.5) ? interestingIndex(prng, g) : (g.heads.length + prng.pick([-1, 1, 2])) & 0xffff;
        break;
      case 8: {
        const which = prng.int(5);
        if (which === 0) g.indirect = !g.indirect;
        else if (which === 1) g.mergeable = !g.mergeable;
        else if (which === 2) g.version1 = !g.version1;
        else if (which === 3) g.tso = g.tso !== true;
        else g.inOrder = g.inOrder !== true;
        break;
      }
      case 9:
        g.size = prng.pick(QUEUE_SIZES.filter((s) => s <= 256));
        break;
      case 10:
        if (g.side === 'rx' || prng.chance(0.2)) {
          if (g.feed.length > 0 && prng.chance(0.5)) g.feed[prng.int(g.feed.length)] = prng.pick([0, 1, 14, 60, 1500, 2000, prng.int(2048)]);
          else g.feed.push(prng.range(60, 1500));
        }
        break;
      case 11: {
        // A header field (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) of a
        // buffer the case writes, or a byte of a GSO frame's packet headers.
        const written = g.bytes?.filter(([, bytes]) => bytes.length > 0) ?? [];
        if (written.length > 0) {
          const bytes = prng.pick(written)[1];
          bytes[prng.int(bytes.length)] = prng.chance(0.5) ? prng.int(256) : prng.pick([0, 1, 0x80, 0xff]);
        }
        break;
      }
      default:
        if (g.heads.length > 1) g.heads.splice(prng.int(g.heads.length), 1);
    }
  }
  return g;
}
