import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Vring } from '../../device/vring.js';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

test('counts available heads once per read, across the 16-bit wrap', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  queue.setAvailIdx(65534);
  const ring = queue.vring(false, 65533);
  assert.is(ring.availableCount(), 1);
  queue.setAvailIdx(2);
  assert.is(ring.availableCount(), 5, 'avail.idx wrapped from 65535 to 0');
  guest.close();
});

test('an avail index more than the queue size ahead is reported, not trusted', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const ring = queue.vring();
  queue.setAvailIdx(9);
  assert.is(ring.availableCount(), -1);
  queue.setAvailIdx(8);
  assert.is(ring.availableCount(), 8);
  guest.close();
});

test('used elements are invisible until published, then published at once', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 4);
  const ring = queue.vring();
  ring.pushUsed(3, 100);
  ring.pushUsed(1, 200);
  assert.is(queue.usedIdx(), 0);
  ring.publishUsed();
  assert.is(queue.usedIdx(), 2);
  assert.equal(queue.usedElement(0), { id: 3, length: 100 });
  assert.equal(queue.usedElement(1), { id: 1, length: 200 });
  ring.pushUsed(2, 5);
  ring.unpushUsed(1);
  assert.is(ring.publishUsed(), false, 'nothing left to publish');
  assert.is(queue.usedIdx(), 2);
  guest.close();
});

test('without EVENT_IDX the driver is notified unless it set NO_INTERRUPT', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 4);
  const ring = queue.vring(false);
  ring.pushUsed(0, 0);
  assert.is(ring.publishUsed(), true);
  queue.setAvailFlags(1);
  ring.pushUsed(1, 0);
  assert.is(ring.publishUsed(), false);
  guest.close();
});

test('with EVENT_IDX the driver is notified only when used_event is crossed', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  const ring = queue.vring(true);
  queue.setUsedEvent(2);
  ring.pushUsed(0, 0);
  assert.is(ring.publishUsed(), false, 'used idx 0 -> 1 does not cross event 2');
  ring.pushUsed(1, 0);
  ring.pushUsed(2, 0);
  assert.is(ring.publishUsed(), true, 'used idx 1 -> 3 crosses event 2');
  ring.pushUsed(3, 0);
  assert.is(ring.publishUsed(), false, 'event already passed');
  guest.close();
});

test('kick suppression: flags without EVENT_IDX, avail_event with it', () => {
  const guest = new FakeGuest();
  const q1 = new FakeQueue(guest, 8);
  const plain = q1.vring(false);
  plain.disableKicks();
  assert.is(q1.usedFlags(), 1);
  plain.enableKicks();
  assert.is(q1.usedFlags(), 0);
  const q2 = new FakeQueue(guest, 8);
  q2.setAvailIdx(3);
  const evented = q2.vring(true, 0);
  evented.takeHead();
  evented.takeHead();
  evented.enableKicks();
  assert.is(q2.availEvent(), 2, 'kick when the driver makes index 2 available');
  evented.disableKicks();
  assert.is(q2.availEvent(), 0x8002, 'parked half the index space away');
  guest.close();
});

test('create refuses bad sizes, misalignment and rings outside memory', () => {
  const guest = new FakeGuest();
  const q = new FakeQueue(guest, 8);
  assert.match(Vring.create(guest.memory, { ...q.addresses, size: 6 }, false, 0) as string, /power of two/);
  assert.match(Vring.create(guest.memory, { ...q.addresses, descAddr: q.descAddr + 8 }, false, 0) as string, /aligned/);
  assert.match(Vring.create(guest.memory, { ...q.addresses, usedAddr: 0x40 }, false, 0) as string, /used ring/);
  assert.match(Vring.create(guest.memory, { ...q.addresses, descAddr: 2 ** 40 }, false, 0) as string, /descriptor table/);
  guest.close();
});

test.run();
