/**
 * A driver's own queue reset (VIRTIO_F_RING_RESET), which a vhost-user frontend never tells the
 * backend about: the device sees the ring's indexes zeroed and starts the queue over, on both
 * queues, without taking the reset for a corrupt avail index.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace } from 'vfio-user-ts';
import { Counter, createCounters } from '../../device/counters.js';
import { queueErrorNames } from '../../device/queue-errors.js';
import { ReceiveQueue } from '../../device/receive-queue.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

const HEADER = 12;

function txSetup(followsResets: boolean) {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const ring = queue.vring(true);
  ring.followsDriverResets = followsResets;
  const counters = createCounters();
  const errors: string[] = [];
  const tx = new TransmitQueue(guest.memory, ring, true, HEADER, counters, { transmitted: () => undefined }, { queueError: (_q, kind) => errors.push(queueErrorNames[kind]!) }, 1);
  return { guest, queue, ring, counters, errors, tx };
}

function sendOne(queue: FakeQueue, headerGpa?: number): void {
  const frame = { length: 60, data: new Uint8Array(60).fill(7) };
  queue.makeAvailable(queue.addChain([{ length: HEADER, data: new Uint8Array(HEADER), gpa: headerGpa }, frame], { indirect: true }));
}

test('Vring: a zeroed used.idx is a reset only when RING_RESET was negotiated and something was published', () => {
  const { guest, queue, ring, tx } = txSetup(false);
  for (let i = 0; i < 3; i++) sendOne(queue);
  tx.processBurst(64);
  assert.is(queue.usedIdx(), 3);
  queue.resetRing();
  assert.is(ring.driverReset(), false, 'not negotiated: a rewritten used.idx is the driver corrupting its ring');
  ring.followsDriverResets = true;
  assert.is(ring.driverReset(), true);
  assert.is(ring.restartAfterDriverReset(), 0);
  assert.is(ring.driverReset(), false, 'after the restart the device agrees with the ring');
  assert.is(ring.lastAvailIdx, 0);
  guest.close();
});

test('transmitq: after a driver reset the device serves the ring from avail index 0 and notifies at once', () => {
  const { guest, queue, counters, errors, tx } = txSetup(true);
  for (let i = 0; i < 5; i++) sendOne(queue);
  assert.is(tx.processBurst(64), 5);
  queue.resetRing();
  sendOne(queue);
  sendOne(queue);
  // The driver asks for no interrupt (used_event far ahead), but the first publish after a
  // reset notifies anyway: its callback state is as new as the ring's.
  queue.setUsedEvent(100);
  tx.needsNotify = false;
  assert.is(tx.processBurst(64), 2, 'avail.idx 2 after a reset is 2 chains, not a jump back of 3');
  assert.is(tx.broken, false);
  assert.is(queue.usedIdx(), 2);
  assert.is(tx.needsNotify, true);
  assert.is(counters[Counter.driverQueueResets], 1);
  assert.is(counters[Counter.availIndexJump], 0);
  assert.is(counters[Counter.txFrames], 7);
  assert.equal(errors, ['driverQueueReset']);
  guest.close();
});

test('transmitq without RING_RESET: the same rewrite is an avail index jump and breaks the ring', () => {
  const { guest, queue, counters, tx } = txSetup(false);
  for (let i = 0; i < 5; i++) sendOne(queue);
  tx.processBurst(64);
  queue.resetRing();
  sendOne(queue);
  sendOne(queue);
  assert.is(tx.processBurst(64), 0);
  assert.is(tx.broken, true);
  assert.is(counters[Counter.availIndexJump], 1);
  assert.is(counters[Counter.driverQueueResets], 0);
  guest.close();
});

test('transmitq: chains whose header lies where the previous chain\'s did are counted (one shared header)', () => {
  const { guest, queue, counters, tx } = txSetup(true);
  const shared = guest.alloc(HEADER);
  for (let i = 0; i < 4; i++) sendOne(queue, shared);
  sendOne(queue);
  tx.processBurst(64);
  assert.is(counters[Counter.vnetHeaderSharedWithPrevious], 3, 'chains 2..4 share chain 1\'s header; chain 5 has its own');
  guest.close();
});

test('transmitq: a driver reset also ends a ring broken by a bad chain (the queue starts as new)', () => {
  const { guest, queue, counters, tx } = txSetup(true);
  sendOne(queue);
  tx.processBurst(64);
  // A header at an address outside guest memory, as 7.3's virtio_net posts from a modular build.
  queue.makeAvailable(queue.addChain([{ length: HEADER, gpa: 0x7fff0000 }, { length: 60, data: new Uint8Array(60) }], { indirect: true }));
  tx.processBurst(64);
  assert.is(tx.broken, true);
  assert.is(counters[Counter.chainErrors + 3], 1, 'bufferOutsideMemory');
  queue.resetRing();
  sendOne(queue);
  assert.is(tx.processBurst(64), 1);
  assert.is(tx.broken, false);
  assert.is(queue.usedIdx(), 1);
  guest.close();
});

test('transmitq: a ring that broke on its very first chain (nothing published) shows the reset in its zeroed kick suppression', () => {
  const { guest, queue, tx } = txSetup(true);
  queue.makeAvailable(queue.addChain([{ length: HEADER, gpa: 0x7fff0000 }, { length: 60, data: new Uint8Array(60) }], { indirect: true }));
  queue.makeAvailable(queue.addChain([{ length: HEADER, gpa: 0x7fff0000 }, { length: 60, data: new Uint8Array(60) }], { indirect: true }));
  tx.processBurst(64);
  assert.is(tx.broken, true);
  assert.is(queue.usedIdx(), 0);
  tx.processBurst(64);
  assert.is(tx.broken, true, 'nothing changed: still broken');
  assert.ok(queue.availEvent() !== 0, 'the broken ring parked its kicks');
  queue.resetRing();
  // The driver posts again before the device looks: avail.idx 2 is not behind anything.
  sendOne(queue);
  sendOne(queue);
  assert.is(tx.processBurst(64), 2);
  assert.is(tx.broken, false);
  assert.is(queue.usedIdx(), 2);
  guest.close();
});

function rxSetup() {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const ring = queue.vring(true);
  ring.followsDriverResets = true;
  const counters = createCounters();
  const errors: string[] = [];
  const rx = new ReceiveQueue(guest.memory, ring, true, HEADER, true, counters, { queueError: (_q, kind) => errors.push(queueErrorNames[kind]!) }, 0);
  return { guest, queue, ring, counters, errors, rx };
}

function post(queue: FakeQueue, length: number): number {
  const gpa = queue.guest.alloc(length);
  queue.makeAvailable(queue.addChain([{ gpa, length, writable: true }]));
  return gpa;
}

const frame = byteSpace(new Uint8Array(64).fill(9).buffer);

test('receiveq: after a driver reset the device fills the buffers posted since, from slot 0', () => {
  const { guest, queue, counters, errors, rx } = rxSetup();
  for (let i = 0; i < 3; i++) post(queue, 2048);
  rx.beginBurst();
  for (let i = 0; i < 3; i++) assert.ok(rx.receive(frame, 0, 64));
  rx.endBurst();
  assert.is(queue.usedIdx(), 3);
  queue.resetRing();
  const umemFrame = post(queue, 2048);
  assert.is(rx.beginBurst(), 1);
  assert.ok(rx.receive(frame, 0, 64));
  assert.is(rx.lastFrameAddress, umemFrame + HEADER, 'the frame starts right after the header in the posted buffer');
  rx.endBurst();
  assert.is(queue.usedIdx(), 1);
  assert.equal(queue.usedElement(0).length, HEADER + 64);
  assert.is(counters[Counter.driverQueueResets], 1);
  assert.equal(errors, ['driverQueueReset']);
  guest.close();
});

test('receiveq: a reset between placing frames and publishing them drops them instead of overwriting the fresh used.idx', () => {
  const { guest, queue, counters, rx } = rxSetup();
  for (let i = 0; i < 4; i++) post(queue, 2048);
  rx.beginBurst();
  assert.ok(rx.receive(frame, 0, 64));
  rx.endBurst();
  rx.beginBurst();
  assert.ok(rx.receive(frame, 0, 64));
  assert.ok(rx.receive(frame, 0, 64));
  queue.resetRing(); // the driver resets while the device holds two unpublished elements
  rx.endBurst();
  assert.is(queue.usedIdx(), 0, 'used.idx stays as the driver reset it');
  assert.is(counters[Counter.usedDroppedByQueueReset], 2);
  assert.is(counters[Counter.driverQueueResets], 1);
  post(queue, 2048);
  assert.is(rx.beginBurst(), 1);
  guest.close();
});
test.run();
