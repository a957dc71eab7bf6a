// Inflight tracking of split rings (vhost-user INFLIGHT_SHMFD): heads are marked when taken and
// cleared when their used element is published; a Vring started on a region a killed backend
// left behind serves the heads it had taken and not completed again, exactly once.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCounters } from '../../device/counters.js';
import { ReceiveQueue } from '../../device/receive-queue.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import type { TxFrame } from '../../device/tx-frame.js';
import { Vring, type InflightArea } from '../../device/vring.js';
import { byteSpace, InflightSplit, inflightQueueBytes } from 'vfio-user-ts';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';
import { inflightHeader as header, inflightMark as markOf, setInflightHeaderField, setInflightMark } from '../support/inflight-region.js';

const HEADER = 12;

function region(size: number): InflightArea {
  return { buffer: new ArrayBuffer(inflightQueueBytes(size)), offset: 0 };
}

function ringOn(queue: FakeQueue, area: InflightArea, base = 0): Vring {
  const ring = Vring.create(queue.guest.memory, queue.addresses, false, base, area);
  if (typeof ring === 'string') throw new Error(ring);
  return ring;
}

/** A transmitq on `ring` whose consumer records each frame's first payload byte (its number). */
function sink(guest: FakeGuest, ring: Vring, seen: number[]): TransmitQueue {
  return new TransmitQueue(
    guest.memory,
    ring,
    true,
    HEADER,
    createCounters(),
    {
      transmitted(frame: TxFrame) {
        assert.ok(frame.linearize());
        seen.push(frame.linear[14]!);
      },
    },
    { queueError: () => {} },
    1,
  );
}

function addFrame(queue: FakeQueue, n: number): void {
  const bytes = new Uint8Array(HEADER + 60);
  bytes[HEADER + 14] = n;
  queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
}

test('inflightQueueBytes: header and 16 bytes per descriptor, in 64-byte units', () => {
  assert.is(inflightQueueBytes(256), 4160);
  assert.is(inflightQueueBytes(1), 64);
  assert.is(inflightQueueBytes(4), 128);
});

test('a fresh region is initialised; heads are marked when taken and cleared when published', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const area = region(8);
  const ring = ringOn(queue, area);
  assert.equal(ring.recovery, { fresh: true, resubmitted: 0, publishedUnrecorded: 0, baseGiven: 0, resumeAt: 0 });
  assert.equal(header(area), { version: 1, descNum: 8, lastBatchHead: 0, usedIdx: 0 });
  for (const head of [5, 2, 7]) queue.makeAvailable(head);
  assert.is(ring.takeHead(), 5);
  assert.is(ring.takeHead(), 2);
  assert.is(markOf(area, 5), 1);
  assert.is(markOf(area, 2), 1);
  ring.pushUsed(5, 0);
  assert.is(markOf(area, 5), 1, 'still inflight until published');
  ring.publishUsed();
  assert.is(markOf(area, 5), 0);
  assert.is(markOf(area, 2), 1);
  assert.equal(header(area), { version: 1, descNum: 8, lastBatchHead: 5, usedIdx: 1 });
  ring.takeHead();
  ring.untake(1);
  assert.is(markOf(area, 7), 0, 'a head given back is not inflight');
  guest.close();
});

test('killed after counting, before publishing: the burst is served again once, nothing twice', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 16);
  const area = region(16);
  const firstSeen: number[] = [];
  const first = sink(guest, ringOn(queue, area), firstSeen);
  for (let n = 0; n < 4; n++) addFrame(queue, n);
  assert.is(first.processBurst(256), 4);
  assert.equal(firstSeen, [0, 1, 2, 3]);
  assert.is(queue.usedIdx(), 4);
  // The next burst is taken and handed on, and the process dies before publishing it: take
  // the heads by hand the way processBurst does, without its publish.
  for (let n = 4; n < 7; n++) addFrame(queue, n);
  const dying = ringOn(queue, area, 4);
  for (let i = 0; i < 3; i++) dying.pushUsed(dying.takeHead(), 0);
  assert.is(queue.usedIdx(), 4);

  // The frontend says base 4 (or anything: QEMU restores used.idx); the device resumes at used.idx.
  const secondSeen: number[] = [];
  const ring = ringOn(queue, area, 7);
  assert.equal(ring.recovery, { fresh: false, resubmitted: 3, publishedUnrecorded: 0, baseGiven: 7, resumeAt: 4 });
  const second = sink(guest, ring, secondSeen);
  addFrame(queue, 7);
  assert.is(second.processBurst(256), 4);
  assert.equal(secondSeen, [4, 5, 6, 7], 'the unfinished burst once, then new work');
  assert.is(queue.usedIdx(), 8);
  assert.equal(header(area).usedIdx, 8);
  for (let head = 0; head < 16; head++) assert.is(markOf(area, head), 0, `head ${head} not inflight`);
  guest.close();
});

test('killed after publishing used.idx, before clearing the marks: those heads are done', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const area = region(8);
  for (let n = 0; n < 3; n++) addFrame(queue, n);
  const dying = ringOn(queue, area);
  const heads = [dying.takeHead(), dying.takeHead(), dying.takeHead()];
  for (const head of heads) dying.pushUsed(head, 0);
  // What publishUsed does up to the used.idx store, then death: marks and region used_idx stale.
  guest.setU32(queue.usedAddr + 4, heads[0]!);
  guest.setU32(queue.usedAddr + 12, heads[1]!);
  guest.setU32(queue.usedAddr + 20, heads[2]!);
  guest.setU16(queue.usedAddr + 2, 2); // two of the three were published
  const seen: number[] = [];
  const ring = ringOn(queue, area, 3);
  assert.equal(ring.recovery, { fresh: false, resubmitted: 1, publishedUnrecorded: 2, baseGiven: 3, resumeAt: 2 });
  assert.is(sink(guest, ring, seen).processBurst(256), 1);
  assert.equal(seen, [2]);
  guest.close();
});

test('the marks follow the heads the device took, not what the driver rewrites in the avail and used rings', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const area = region(8);
  const ring = ringOn(queue, area);
  for (const head of [5, 2, 7]) queue.makeAvailable(head);
  assert.is(ring.takeHead(), 5);
  assert.is(ring.takeHead(), 2);
  assert.is(ring.takeHead(), 7);
  // The frame did not fit after all: heads 2 and 7 are given back, after the driver rewrote
  // their avail slots (to heads 3 and 4, never taken).
  queue.setAvailSlot(1, 3);
  queue.setAvailSlot(2, 4);
  ring.untake(2);
  assert.is(markOf(area, 2), 0, 'head 2 given back');
  assert.is(markOf(area, 7), 0, 'head 7 given back');
  assert.is(markOf(area, 5), 1, 'head 5 still taken');
  // Head 5 completes; before the publish the driver rewrites the used element's id to 6.
  ring.pushUsed(5, 0);
  queue.setUsedId(0, 6);
  ring.publishUsed();
  assert.is(markOf(area, 5), 0, 'head 5 completed');
  assert.equal(header(area).lastBatchHead, 5, 'last_batch_head is the head the device completed');
  for (let head = 0; head < 8; head++) assert.is(markOf(area, head), 0, `head ${head} not inflight`);
  guest.close();
});

test('completion is in avail order whatever becomes of each chain (what recovery relies on without IN_ORDER)', () => {
  const guest = new FakeGuest();
  const txq = new FakeQueue(guest, 16);
  const txArea = region(16);
  const txRing = ringOn(txq, txArea);
  const seen: number[] = [];
  const tx = sink(guest, txRing, seen);
  const gso = new Uint8Array(HEADER + 60);
  gso[1] = 1;
  addFrame(txq, 0);
  txq.makeAvailable(txq.addChain([{ length: HEADER + 60, writable: true }])); // dropped: write-only
  txq.makeAvailable(txq.addChain([{ length: 4 }])); // dropped: header too short
  txq.makeAvailable(txq.addChain([{ length: gso.length, data: gso }])); // dropped: GSO
  addFrame(txq, 4);
  const availOrder = [0, 1, 2, 3, 4].map((slot) => guest.u16(txq.availAddr + 4 + 2 * slot));
  assert.is(tx.processBurst(256), 5);
  assert.equal([0, 1, 2, 3, 4].map((slot) => txq.usedElement(slot).id), availOrder, 'used ring in avail order');
  for (let head = 0; head < 16; head++) assert.is(markOf(txArea, head), 0);

  // Receive: a frame that needs three chains finds two, gives them back, and no head stays marked.
  const rxq = new FakeQueue(guest, 16);
  const rxArea = region(16);
  const rxRing = ringOn(rxq, rxArea);
  const rx = new ReceiveQueue(guest.memory, rxRing, true, HEADER, true, createCounters(), { queueError: () => {} }, 0);
  for (let i = 0; i < 2; i++) rxq.makeAvailable(rxq.addChain([{ length: 64, writable: true }]));
  rx.beginBurst();
  assert.is(rx.receive(byteSpace(new ArrayBuffer(150)), 0, 150), false);
  for (let head = 0; head < 16; head++) assert.is(markOf(rxArea, head), 0, `rx head ${head} given back`);
  rxq.makeAvailable(rxq.addChain([{ length: 64, writable: true }]));
  rx.beginBurst();
  assert.is(rx.receive(byteSpace(new ArrayBuffer(150)), 0, 150), true);
  rx.endBurst();
  assert.equal([0, 1, 2].map((slot) => rxq.usedElement(slot).id), [0, 1, 2].map((slot) => guest.u16(rxq.availAddr + 4 + 2 * slot)));
  guest.close();
});

test('a region that does not fit the ring, or out-of-order marks, are refused', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const small = { buffer: new ArrayBuffer(64), offset: 0 };
  assert.match(Vring.create(guest.memory, queue.addresses, false, 0, small) as string, /too small/);
  const area = region(8);
  ringOn(queue, area);
  setInflightHeaderField(area, InflightSplit.descNum, 4);
  assert.match(Vring.create(guest.memory, queue.addresses, false, 0, area) as string, /for 4 descriptors/);
  setInflightHeaderField(area, InflightSplit.descNum, 8);
  for (const head of [3, 4]) queue.makeAvailable(head);
  setInflightMark(area, 4, 1); // head 4 inflight, but slot 0 holds head 3
  assert.match(Vring.create(guest.memory, queue.addresses, false, 0, area) as string, /out of order/);
  guest.close();
});

test.run();
