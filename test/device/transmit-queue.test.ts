import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Counter, createCounters, describeCounters } from '../../device/counters.js';
import { ChainError } from '../../device/descriptor-chain.js';
import { GSO_ECN, GsoType, NetHeader, NetHeaderFlags } from '../../device/net-header.js';
import { describeQueueError, queueErrorNames } from '../../device/queue-errors.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import type { TxFrame } from '../../device/tx-frame.js';
import { DescFlags } from 'vfio-user-ts';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

const HEADER = 12;

function frameBytes(length: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
}

function header(flags = 0, csumStart = 0, csumOffset = 0): Uint8Array {
  const h = new Uint8Array(HEADER);
  const v = new DataView(h.buffer);
  v.setUint8(0, flags);
  v.setUint16(6, csumStart, true);
  v.setUint16(8, csumOffset, true);
  return h;
}

function setup(size = 16) {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, size);
  const counters = createCounters();
  const frames: Uint8Array[] = [];
  const errors: Array<{ kind: string; fatal: boolean; detail: string }> = [];
  const tx = new TransmitQueue(
    guest.memory,
    queue.vring(),
    true,
    HEADER,
    counters,
    {
      transmitted(frame: TxFrame) {
        assert.ok(frame.linearize());
        frames.push(frame.linear.slice(0, frame.length));
      },
    },
    { queueError: (_q, kind, fatal, head, a, b, c) => errors.push({ kind: queueErrorNames[kind]!, detail: describeQueueError(kind, head, a, b, c), fatal }) },
    1,
  );
  return { guest, queue, counters, frames, errors, tx };
}

test('every layout yields the same frame bytes, and its shape is counted', () => {
  const { guest, queue, counters, frames, tx } = setup(128);
  const f = frameBytes(60);
  const whole = new Uint8Array([...header(), ...f]);
  const layouts: Array<Array<{ length: number; data: Uint8Array }>> = [
    [{ length: 72, data: whole }],
    // The XSK generic zerocopy xmit shape: header alone, frame in a buffer of its own.
    [{ length: 12, data: header() }, { length: 60, data: f }],
    // Header split, Ethernet header split.
    [{ length: 5, data: whole.subarray(0, 5) }, { length: 10, data: whole.subarray(5, 15) }, { length: 57, data: whole.subarray(15) }],
  ];
  for (const layout of layouts) queue.makeAvailable(queue.addChain(layout));
  // 1-byte fragments through an indirect table.
  queue.makeAvailable(queue.addChain(Array.from(whole, (b) => ({ length: 1, data: Uint8Array.of(b) })), { indirect: true }));
  assert.is(tx.processBurst(256), 4);
  assert.is(frames.length, 4);
  for (const got of frames) assert.equal([...got], [...f]);
  const c = describeCounters(counters);
  assert.is(c.transmitq.frames, 4);
  assert.is(c.transmitq.bytes, 60 * 4);
  assert.equal(c.chainShapes.descriptorsPerChain, { '1': 1, '2': 1, '3': 1, '4': 0, '5-8': 0, '9-16': 0, '17+': 1 });
  assert.is(c.chainShapes.vnetHeaderAlone, 1);
  assert.is(c.chainShapes.ethernetHeaderNotWithVnetHeader, 3, 'header alone, split header, 1-byte fragments');
  assert.is(c.chainShapes.frameSplitAcrossBuffers, 2);
  assert.is(c.chainShapes.indirect, 1);
  assert.is(queue.usedIdx(), 4);
  assert.equal(queue.usedElement(0), { id: 0, length: 0 });
  guest.close();
});

test('a partial checksum is completed in the copy, never in guest memory', () => {
  const { guest, queue, frames, tx } = setup();
  // A UDP/IPv4 frame: csum_start 34 (UDP header), csum_offset 6; pseudo-header sum left as 0.
  const f = frameBytes(64);
  f.fill(0, 34, 42);
  const gpa = guest.alloc(HEADER + 64);
  const chain = new Uint8Array([...header(NetHeaderFlags.needsCsum, 34, 6), ...f]);
  queue.makeAvailable(queue.addChain([{ gpa, length: chain.length, data: chain }]));
  tx.processBurst(8);
  const got = frames[0]!;
  let sum = 0;
  for (let i = 34; i < 64; i += 2) sum += (got[i]! << 8) | got[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.is(sum, 0xffff, 'the completed checksum verifies');
  assert.equal([...guest.read(gpa + HEADER + 40, 2)], [0, 0], 'the driver buffer is untouched');
  guest.close();
});

test('a chain shorter than the header and a write-only buffer are dropped and counted; the queue goes on', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  queue.makeAvailable(queue.addChain([{ length: 8 }]));
  queue.makeAvailable(queue.addChain([{ length: 72 }, { length: 10, writable: true }]));
  queue.makeAvailable(queue.addChain([{ length: 72 }]));
  assert.is(tx.processBurst(8), 3);
  assert.is(counters[Counter.txHeaderTooShort], 1);
  assert.is(counters[Counter.txWriteOnlyBuffer], 1);
  assert.is(frames.length, 1);
  assert.is(tx.broken, false);
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['txHeaderTooShort', false], ['txWriteOnlyBuffer', false]]);
  assert.is(queue.usedIdx(), 3, 'dropped chains are still returned to the driver');
  guest.close();
});

test('a broken chain stops the queue: frames before it are delivered, the error is counted once', () => {
  const { guest, queue, counters, frames, errors, tx } = setup(8);
  queue.makeAvailable(queue.addChain([{ length: 72 }]));
  const bad = queue.addChain([{ length: 72 }]);
  queue.setDescriptor(bad, 0x10, 72, 0, 0);
  queue.makeAvailable(bad);
  queue.makeAvailable(queue.addChain([{ length: 72 }]));
  assert.is(tx.processBurst(8), 1);
  assert.is(frames.length, 1);
  assert.is(queue.usedIdx(), 1, 'the frame accepted before the error is published');
  assert.is(tx.broken, true);
  assert.is(counters[Counter.chainErrors + ChainError.bufferOutsideMemory - 1], 1);
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['bufferOutsideMemory', true]]);
  assert.match(errors[0]!.detail, /head 1 descriptor 1 addr 0x10 len 72/);
  assert.is(tx.processBurst(8), 0, 'a broken queue does nothing more');
  guest.close();
});

test('hostile rings: loop, avail index jump, head out of range', () => {
  for (const [name, poison] of [
    ['chainTooLong', (q: FakeQueue) => (q.setDescriptor(0, 0x100000, 8, DescFlags.next, 0), q.makeAvailable(0))],
    ['availIndexJump', (q: FakeQueue) => q.setAvailIdx(100)],
    ['headOutOfRange', (q: FakeQueue) => q.makeAvailable(1000)],
  ] as const) {
    const { guest, queue, errors, tx } = setup(8);
    poison(queue);
    tx.processBurst(8);
    assert.is(tx.broken, true, name);
    assert.is(errors[0]?.kind, name);
    guest.close();
  }
});

test('a strict-layout device (complete-empty) completes header-alone chains with length 0, counts them and goes on', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  tx.linearHeaderRefusal = 'complete-empty';
  const f = frameBytes(60);
  queue.makeAvailable(queue.addChain([{ length: HEADER, data: header() }, { length: 60, data: f }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER + 60, data: new Uint8Array([...header(), ...f]) }]));
  assert.is(tx.processBurst(8), 2);
  assert.is(counters[Counter.linearHeaderViolations], 1);
  assert.is(frames.length, 1, 'the linear chain still goes out');
  assert.is(counters[Counter.txFrames], 1);
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['linearHeaderViolation', false]]);
  assert.equal(queue.usedElement(0), { id: 0, length: 0 });
  guest.close();
});

test('a strict-layout device (stall) stops at its first refusal: no chain is taken until resume(), which flushes them unsent', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  tx.linearHeaderRefusal = 'stall';
  const f = frameBytes(60);
  const linear = (): number => queue.addChain([{ length: HEADER + 60, data: new Uint8Array([...header(), ...f]) }]);
  queue.makeAvailable(linear());
  queue.makeAvailable(queue.addChain([{ length: HEADER, data: header() }, { length: 60, data: f }]));
  queue.makeAvailable(linear());
  assert.is(tx.processBurst(8), 2, 'the linear chain and the refused one');
  assert.is(tx.stalled, true);
  assert.is(frames.length, 1);
  assert.is(counters[Counter.linearHeaderViolations], 1);
  assert.is(queue.usedIdx(), 2, 'the refused chain completes (the error CQE), nothing after it');
  assert.equal(queue.usedElement(1), { id: 1, length: 0 });
  // A stalled queue takes no chain, however many the driver posts, linear or not.
  queue.makeAvailable(linear());
  assert.is(tx.processBurst(8), 0);
  assert.is(tx.processBurst(8), 0);
  assert.is(queue.usedIdx(), 2, 'the driver gets nothing back: its ring fills and its watchdog fires');
  assert.is(frames.length, 1);
  assert.is(counters[Counter.txFrames], 1);
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['linearHeaderViolation', false]]);
  assert.is(tx.broken, false, 'not a ring error: no DEVICE_NEEDS_RESET');
  // The reset: what was posted meanwhile completes unsent, and the queue takes chains again.
  tx.linearHeaderRefusal = null;
  assert.is(tx.resume(), 2);
  assert.is(tx.stalled, false);
  assert.is(queue.usedIdx(), 4);
  assert.is(frames.length, 1, 'flushed chains are not sent');
  queue.makeAvailable(linear());
  assert.is(tx.processBurst(8), 1);
  assert.is(frames.length, 2);
  assert.is(queue.usedIdx(), 5);
  assert.is(tx.resume(), 0, 'resuming a queue that is not stalled does nothing');
  guest.close();
});

test('a gso_type other than GSO_NONE (no GSO feature is offered) is dropped and counted, the queue goes on', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  const tcp4 = header();
  tcp4[NetHeader.gsoType] = GsoType.tcpV4;
  const ecn = header();
  ecn[NetHeader.gsoType] = GsoType.none | GSO_ECN; // still a GSO request
  queue.makeAvailable(queue.addChain([{ length: HEADER + 60, data: new Uint8Array([...header(), ...frameBytes(60)]) }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER + 1400, data: new Uint8Array([...tcp4, ...frameBytes(1400)]) }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER, data: ecn }, { length: 60, data: frameBytes(60) }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER + 60, data: new Uint8Array([...header(), ...frameBytes(60)]) }]));
  assert.is(tx.processBurst(8), 4);
  assert.is(describeCounters(counters).errors.txGsoNotNegotiated, 2);
  assert.is(frames.length, 2, 'only the GSO_NONE frames go out');
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['txGsoNotNegotiated', false], ['txGsoNotNegotiated', false]]);
  assert.match(errors[0]!.detail, /head 1: gso_type 0x1, which no negotiated feature allows/);
  assert.is(tx.broken, false);
  assert.is(queue.usedIdx(), 4, 'the dropped chains are returned to the driver');
  guest.close();
});

test('NEEDS_CSUM offsets outside the frame are dropped and counted (txChecksumOutsideFrame); the last field that fits passes', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  const chain = (csumStart: number, csumOffset: number): void => {
    const bytes = new Uint8Array([...header(NetHeaderFlags.needsCsum, csumStart, csumOffset), ...frameBytes(64)]);
    queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  };
  chain(34, 6); // UDP checksum field inside a 64-byte frame
  chain(34, 29); // field at 63..64: one byte past the end
  chain(64, 0); // the sum starts past the end
  chain(0xffff, 0xffff);
  chain(62, 0); // the last 2 bytes: fits
  assert.is(tx.processBurst(8), 5);
  assert.is(describeCounters(counters).errors.txChecksumOutsideFrame, 3);
  assert.is(frames.length, 2);
  assert.equal(errors.map((e) => e.kind), ['txChecksumOutsideFrame', 'txChecksumOutsideFrame', 'txChecksumOutsideFrame']);
  assert.match(errors[0]!.detail, /head 1: NEEDS_CSUM with csum_start 34 and csum_offset 29 outside the 64-byte frame/);
  assert.is(queue.usedIdx(), 5);
  guest.close();
});

test('a frame larger than 64 KiB is dropped and counted (txFrameTooLarge), the queue goes on', () => {
  const { guest, queue, counters, frames, errors, tx } = setup();
  queue.makeAvailable(queue.addChain([{ length: HEADER + 60 }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER }, { length: 65537 }]));
  queue.makeAvailable(queue.addChain([{ length: HEADER + 65536 }]));
  assert.is(tx.processBurst(8), 3);
  assert.is(counters[Counter.txFrameTooLarge], 1);
  assert.equal(frames.map((f) => f.length), [60, 65536], 'the largest frame allowed still goes out');
  assert.is(describeCounters(counters).errors.txFrameTooLarge, 1);
  assert.equal(errors.map((e) => [e.kind, e.fatal]), [['txFrameTooLarge', false]]);
  assert.match(errors[0]!.detail, /head 1: a 65537-byte frame/);
  assert.is(tx.broken, false);
  assert.is(queue.usedIdx(), 3, 'the dropped chain is returned to the driver');
  guest.close();
});

test.run();
