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
  ring.publishUsed(); // the first publish after start always notifies (see below)
  queue.setUsedEvent(3);
  ring.pushUsed(0, 0);
  assert.is(ring.publishUsed(), false, 'used idx 1 -> 2 does not cross event 3');
  ring.pushUsed(1, 0);
  ring.pushUsed(2, 0);
  assert.is(ring.publishUsed(), true, 'used idx 2 -> 4 crosses event 3');
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

test('the first publish after a (re)start notifies whatever used_event or NO_INTERRUPT say', () => {
  const guest = new FakeGuest();
  // A driver left used_event at 3 for a used.idx 4 its previous device published without a call.
  const evented = new FakeQueue(guest, 8);
  evented.setUsedIdx(4);
  evented.setUsedEvent(3);
  const ring = evented.vring(true, 4);
  ring.pushUsed(0, 0);
  assert.is(ring.publishUsed(), true, 'used idx 4 -> 5 does not cross 3, but the driver may be waiting');
  ring.pushUsed(1, 0);
  assert.is(ring.publishUsed(), false, 'then suppression is trusted again');
  const plain = new FakeQueue(guest, 8);
  plain.setAvailFlags(1);
  const flagged = plain.vring(false);
  flagged.pushUsed(0, 0);
  assert.is(flagged.publishUsed(), true, 'NO_INTERRUPT left set by a driver waiting for the dead device');
  flagged.pushUsed(1, 0);
  assert.is(flagged.publishUsed(), false);
  guest.close();
});

test('at start, a ring with completions a predecessor published asks for one notification; a fresh one does not', () => {
  const guest = new FakeGuest();
  const fresh = new FakeQueue(guest, 8).vring(true);
  assert.is(fresh.notifyOnStart(), false);
  const restarted = new FakeQueue(guest, 8);
  restarted.setUsedIdx(6);
  restarted.setUsedEvent(5);
  const ring = restarted.vring(true, 6);
  assert.is(ring.notifyOnStart(), true);
  ring.pushUsed(0, 0);
  assert.is(ring.publishUsed(), false, 'notified at start: the next publish follows used_event (5, already passed)');
  guest.close();
});

test('used_event across the 16-bit wrap of used.idx', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  queue.setUsedIdx(65534);
  const ring = queue.vring(true, 65534);
  ring.pushUsed(0, 0);
  ring.publishUsed(); // 65534 -> 65535, the forced first notification
  queue.setUsedEvent(0);
  ring.pushUsed(1, 0);
  assert.is(ring.publishUsed(), false, '65535 -> 0 does not cross event 0 (it is crossed when used.idx passes 0)');
  ring.pushUsed(2, 0);
  assert.is(ring.publishUsed(), true, '0 -> 1 crosses event 0');
  queue.setUsedEvent(65535);
  ring.pushUsed(3, 0);
  ring.pushUsed(4, 0);
  assert.is(ring.publishUsed(), false, 'event 65535 lies behind 1 -> 3 (half the index space away)');
  const wrapping = new FakeQueue(guest, 8);
  wrapping.setUsedIdx(65533);
  const w = wrapping.vring(true, 65533);
  w.pushUsed(0, 0);
  w.publishUsed();
  wrapping.setUsedEvent(65535);
  for (let i = 0; i < 3; i++) w.pushUsed(i, 0);
  assert.is(w.publishUsed(), true, '65534 -> 1 crosses event 65535 across the wrap');
  assert.is(wrapping.usedIdx(), 1);
  wrapping.setUsedEvent(1);
  for (let i = 0; i < 3; i++) w.pushUsed(i, 0);
  assert.is(w.publishUsed(), true, '1 -> 4 crosses event 1');
  guest.close();
});

test('avail_event across the 16-bit wrap of the avail index', () => {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, 8);
  queue.setAvailIdx(1);
  const ring = queue.vring(true, 65534);
  assert.is(ring.availableCount(), 3, '65534, 65535 and 0 are available');
  ring.takeHead();
  ring.takeHead();
  ring.enableKicks();
  assert.is(queue.availEvent(), 0, 'kick when the driver makes index 0 (past 65535) available');
  ring.takeHead();
  ring.enableKicks();
  assert.is(queue.availEvent(), 1);
  ring.disableKicks();
  assert.is(queue.availEvent(), 0x8001, 'parked half the index space away, modulo 2^16');
  const high = new FakeQueue(guest, 8);
  high.setAvailIdx(0);
  const parked = high.vring(true, 0x9000);
  parked.disableKicks();
  assert.is(high.availEvent(), 0x1000, '0x9000 + 0x8000 wraps to 0x1000');
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
