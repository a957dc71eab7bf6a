/**
 * The zero-copy proofs end to end on the device's transmit path (TransmitQueue, QueuePair)
 * with frames in guest memory, and their negative controls: a wrong map, or payload read from
 * the right buffer at the wrong offset, proves nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Counter, createCounters } from '../../device/counters.js';
import { SinkPort } from '../../device/ports/sink.js';
import { QueuePair } from '../../device/queue-pair.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import { createZeroCopyProof, type BufferPages, type ZeroCopyMapSpec } from '../../device/zero-copy-map.js';
import { FakeGuest, FakeQueue, type FakeBuffer } from '../support/fake-driver.js';

const HEADER = 12;
const PAGE = 4096;

/** A guest with a transmit queue feeding a queue pair whose proof is built from the user buffer's pages. */
function setup(userPages: number, spec: (user: number[]) => ZeroCopyMapSpec) {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 64);
  const user = userBuffer(guest, userPages);
  const counters = createCounters();
  const pair = new QueuePair(0, null, counters);
  pair.port = new SinkPort();
  pair.zeroCopy = createZeroCopyProof(spec(user));
  const tx = new TransmitQueue(guest.memory, queue.vring(), true, HEADER, counters, pair, { queueError: () => {} }, 1);
  return { guest, queue, counters, tx, user };
}

/** Page-aligned pages of a user buffer, allocated out of order so they are not contiguous. */
function userBuffer(guest: FakeGuest, pages: number): number[] {
  const at = Array.from({ length: pages * 2 }, () => guest.alloc(PAGE, PAGE));
  // Every other page, reversed: no two buffer pages are neighbours in guest memory.
  return at.filter((_, i) => i % 2 === 0).reverse();
}

const pagesOf = (gpas: readonly number[], shift = 0): BufferPages => gpas.map((gpa, i) => [i * PAGE + shift, gpa] as const);

// ---- frames (AF_XDP umem): item 10's first negative control ------------------------------

/** xdpsock's chain in generic zerocopy xmit: the virtio-net header alone, the frame in its umem chunk. */
function sendUmemFrames(guest: FakeGuest, queue: FakeQueue, tx: TransmitQueue, umem: readonly number[], size: number): void {
  for (const gpa of umem) {
    guest.write(gpa, new Uint8Array(size).fill(0x5a));
    queue.makeAvailable(queue.addChain([{ length: HEADER, data: new Uint8Array(HEADER) }, { gpa, length: size }], { indirect: true }));
  }
  assert.is(tx.processBurst(64), umem.length);
}

test('frames map: the right map proves every umem frame; a shifted or a wrong map proves none', () => {
  const cases: Array<[string, (user: number[]) => ZeroCopyMapSpec, number]> = [
    ['the right map', (user) => ({ frameSize: PAGE, headroom: 0, pages: pagesOf(user) }), 8],
    ['offsets shifted by half a chunk', (user) => ({ frameSize: PAGE, headroom: 0, pages: pagesOf(user, PAGE / 2) }), 0],
    ['every page one page off in guest memory (a neighbouring buffer)', (user) => ({ frameSize: PAGE, headroom: 0, pages: pagesOf(user.map((gpa) => gpa + PAGE)) }), 0],
    ['a headroom the frames do not have', (user) => ({ frameSize: PAGE, headroom: 256, pages: pagesOf(user) }), 0],
  ];
  for (const [name, spec, proven] of cases) {
    const { guest, queue, counters, tx, user } = setup(8, spec);
    sendUmemFrames(guest, queue, tx, user, 1024);
    assert.is(counters[Counter.zeroCopyChecked], 8, `${name}: checked`);
    assert.is(counters[Counter.zeroCopyProven], proven, `${name}: proven`);
    guest.close();
  }
});

// ---- streams (MSG_ZEROCOPY) ----------------------------------------------------------------

const GUEST_IP = [198, 18, 0, 2];
const PEER_IP = [198, 18, 0, 1];
const ISN = 0xfffff000; // close to 2^32: the relative sequence number wraps inside the stream

interface Segment {
  readonly protocol: 'tcp' | 'udp';
  readonly sourcePort?: number;
  readonly seq?: number;
  readonly flags?: number;
  /** Payload buffers: [gpa, length]. */
  readonly payload: ReadonlyArray<readonly [number, number]>;
  /** Payload in the header buffer instead (a kernel copy). */
  readonly linearPayload?: number;
}

/** virtio-net header + Ethernet/IPv4/TCP or UDP headers in one buffer, the payload in others (frags). */
function headerBuffer(s: Segment): Uint8Array {
  const payloadLength = (s.linearPayload ?? 0) + s.payload.reduce((sum, [, n]) => sum + n, 0);
  const l4 = s.protocol === 'tcp' ? 20 : 8;
  const b = new Uint8Array(HEADER + 14 + 20 + l4 + (s.linearPayload ?? 0));
  const v = new DataView(b.buffer);
  let at = HEADER;
  b.set([0x52, 0x54, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00], at);
  at += 14;
  b[at] = 0x45;
  v.setUint16(at + 2, 20 + l4 + payloadLength);
  b[at + 8] = 64;
  b[at + 9] = s.protocol === 'tcp' ? 6 : 17;
  b.set(GUEST_IP, at + 12);
  b.set(PEER_IP, at + 16);
  at += 20;
  v.setUint16(at, s.sourcePort ?? 40000);
  v.setUint16(at + 2, 5201);
  if (s.protocol === 'tcp') {
    v.setUint32(at + 4, s.seq ?? 0);
    b[at + 12] = 5 << 4;
    b[at + 13] = s.flags ?? 0x10;
  } else {
    v.setUint16(at + 4, 8 + payloadLength);
  }
  return b;
}

function send(queue: FakeQueue, segments: readonly Segment[]): void {
  for (const s of segments) {
    const head = headerBuffer(s);
    const buffers: FakeBuffer[] = [{ length: head.length, data: head }, ...s.payload.map(([gpa, length]) => ({ gpa, length }))];
    queue.makeAvailable(queue.addChain(buffers, { indirect: buffers.length > 1 }));
  }
}

/** Where stream byte `offset` lives: buffer offset offset mod size, on its page. */
function at(pages: readonly number[], offset: number): number {
  const inBuffer = offset % (pages.length * PAGE);
  return pages[Math.floor(inBuffer / PAGE)]! + (inBuffer % PAGE);
}

test('TCP stream: payload read where the sender put byte ISN+1+S is proven; SYN and pure ACKs are not checked', () => {
  const { guest: g, queue, counters, tx, user } = setup(4, (pages) => ({ stream: 'tcp', pages: pagesOf(pages) }));
  const seq = (offset: number): number => (ISN + 1 + offset) >>> 0;
  send(queue, [
    { protocol: 'tcp', seq: ISN, flags: 0x02, payload: [] }, // SYN: the ISN, no payload
    { protocol: 'tcp', seq: seq(0), flags: 0x10, payload: [] }, // the handshake's ACK
    { protocol: 'tcp', seq: seq(0), payload: [[at(user, 0), 1448]] },
    // Crossing a page: two frags, each on its own page.
    { protocol: 'tcp', seq: seq(4000), payload: [[at(user, 4000), 96], [at(user, 4096), 1352]] },
    // Past the end of the 16 KiB buffer: the ring wraps (and the sequence number past 2^32).
    { protocol: 'tcp', seq: seq(16384 + 100), payload: [[at(user, 100), 1448]] },
    // A retransmission reads the same bytes again: proven again.
    { protocol: 'tcp', seq: seq(0), payload: [[at(user, 0), 1448]] },
    { protocol: 'tcp', seq: seq(20000), flags: 0x11, payload: [] }, // FIN, no payload
  ]);
  assert.is(tx.processBurst(64), 7);
  assert.is(counters[Counter.zeroCopyChecked], 4, 'only the payload-carrying frames');
  assert.is(counters[Counter.zeroCopyPayloadProven], 4);
  assert.is(counters[Counter.zeroCopyProven], 0, 'the frames proof is not the stream proof');
  g.close();
});

test('TCP stream negatives: the right buffer at the wrong offset, a kernel copy, another flow, no SYN seen', () => {
  const { guest: g, queue, counters, tx, user } = setup(4, (pages) => ({ stream: 'tcp', pages: pagesOf(pages) }));
  const copy = g.alloc(PAGE, PAGE);
  const seq = (offset: number): number => (ISN + 1 + offset) >>> 0;
  // Before the flow's SYN nothing is checked: no ISN, no stream offsets.
  send(queue, [{ protocol: 'tcp', seq: seq(0), payload: [[at(user, 0), 100]] }]);
  assert.is(tx.processBurst(64), 1);
  assert.is(counters[Counter.zeroCopyChecked], 0, 'no SYN yet: not part of a known stream');
  send(queue, [
    { protocol: 'tcp', seq: ISN, flags: 0x02, payload: [] },
    { protocol: 'tcp', seq: seq(8192), payload: [[at(user, 8192 + 1), 1448]] }, // one byte off
    { protocol: 'tcp', seq: seq(8192), payload: [[at(user, 8192 + PAGE), 1448]] }, // a page off
    { protocol: 'tcp', seq: seq(0), payload: [[at(user, 0), 1000], [at(user, 2000), 448]] }, // second frag misplaced
    { protocol: 'tcp', seq: seq(0), payload: [[copy, 1448]] }, // a kernel copy
    { protocol: 'tcp', seq: seq(0), payload: [], linearPayload: 1448 }, // copied into the linear part
    { protocol: 'tcp', sourcePort: 40001, seq: seq(0), payload: [[at(user, 0), 1448]] }, // another flow: not checked
    { protocol: 'udp', payload: [[at(user, 0), 1448]] }, // another protocol: not checked
  ]);
  assert.is(tx.processBurst(64), 8);
  assert.is(counters[Counter.zeroCopyChecked], 5);
  assert.is(counters[Counter.zeroCopyPayloadProven], 0);
  g.close();
});

test('UDP stream: datagram k is checked at the bytes of the datagrams before it; one misplaced datagram fails alone', () => {
  const { guest: g, queue, counters, tx, user } = setup(4, (pages) => ({ stream: 'udp', pages: pagesOf(pages) }));
  send(queue, [
    { protocol: 'udp', payload: [[at(user, 0), 1400]] },
    { protocol: 'udp', payload: [[at(user, 1400), 1400]] },
    { protocol: 'udp', payload: [[at(user, 0), 1400]] }, // datagram 2 read from datagram 0's bytes
    { protocol: 'udp', payload: [[at(user, 4200), 1400]] },
    { protocol: 'udp', payload: [[at(user, 5600), 1400]] },
    { protocol: 'udp', sourcePort: 40001, payload: [[at(user, 0), 1400]] }, // another flow
    { protocol: 'udp', payload: [] }, // an empty datagram carries nothing
  ]);
  assert.is(tx.processBurst(64), 7);
  assert.is(counters[Counter.zeroCopyChecked], 5);
  assert.is(counters[Counter.zeroCopyPayloadProven], 4);
  g.close();
});

test('a TSO frame is checked once, whole: its payload frags in the user buffer prove it; its segments still go out', () => {
  const { guest: g, queue, counters, tx, user } = setup(4, (pages) => ({ stream: 'tcp', pages: pagesOf(pages) }));
  tx.gsoOffloads = { tcp4: true, tcp6: false, ecn: false, udpL4: false };
  const seq = (offset: number): number => (ISN + 1 + offset) >>> 0;
  send(queue, [{ protocol: 'tcp', seq: ISN, flags: 0x02, payload: [] }]);
  const tso: Segment = { protocol: 'tcp', seq: seq(0), payload: [[at(user, 0), PAGE], [at(user, PAGE), 3904]] };
  const head = headerBuffer(tso);
  const v = new DataView(head.buffer);
  // NEEDS_CSUM, GSO_TCPV4, hdr_len 54, gso_size 1448, csum_start 34, csum_offset 16.
  v.setUint8(0, 1);
  v.setUint8(1, 1);
  v.setUint16(2, 54, true);
  v.setUint16(4, 1448, true);
  v.setUint16(6, 34, true);
  v.setUint16(8, 16, true);
  queue.makeAvailable(queue.addChain([{ length: head.length, data: head }, ...tso.payload.map(([gpa, length]) => ({ gpa, length }))], { indirect: true }));
  assert.is(tx.processBurst(64), 2);
  assert.is(counters[Counter.zeroCopyChecked], 1, 'the GSO frame, not each segment');
  assert.is(counters[Counter.zeroCopyPayloadProven], 1);
  assert.is(counters[Counter.gsoSegments], Math.ceil(8000 / 1448));
  g.close();
});

test.run();
