import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace, type ByteSpace } from 'vfio-user-ts';
import { Counter, createCounters } from '../../device/counters.js';
import { queueErrorNames } from '../../device/queue-errors.js';
import { ReceiveQueue } from '../../device/receive-queue.js';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

const HEADER = 12;

function setup(mergeable: boolean, size = 16) {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, size);
  const counters = createCounters();
  const errors: string[] = [];
  const rx = new ReceiveQueue(guest.memory, queue.vring(), true, HEADER, mergeable, counters, { queueError: (_q, kind) => errors.push(queueErrorNames[kind]!) }, 0);
  return { guest, queue, counters, errors, rx };
}

function source(length: number): ByteSpace {
  return byteSpace(Uint8Array.from({ length }, (_, i) => (i * 13 + 5) & 0xff).buffer);
}

/** Posts a receive chain of one writable buffer and returns its address. */
function post(queue: FakeQueue, length: number): number {
  const gpa = queue.guest.alloc(length);
  queue.makeAvailable(queue.addChain([{ gpa, length, writable: true }]));
  return gpa;
}

test('a frame larger than one buffer spreads over several chains and num_buffers says how many', () => {
  const { guest, queue, counters, rx } = setup(true);
  const buffers = [post(queue, 100), post(queue, 100), post(queue, 100)];
  rx.beginBurst();
  assert.ok(rx.receive(source(250), 0, 250));
  rx.endBurst();
  assert.is(queue.usedIdx(), 3);
  assert.equal([queue.usedElement(0).length, queue.usedElement(1).length, queue.usedElement(2).length], [100, 100, 62]);
  const first = guest.read(buffers[0]!, 100);
  assert.is(first[10]! | (first[11]! << 8), 3, 'num_buffers');
  const got = new Uint8Array([...first.subarray(12), ...guest.read(buffers[1]!, 100), ...guest.read(buffers[2]!, 62)]);
  assert.equal([...got], [...new Uint8Array(source(250).view.buffer)]);
  assert.is(counters[Counter.rxFrames], 1);
  assert.is(counters[Counter.rxBuffers], 3);
  assert.is(counters[Counter.rxBytes], 250);
  guest.close();
});

test('without enough buffers nothing is consumed, and the frame fits once more are posted', () => {
  const { guest, queue, rx } = setup(true);
  post(queue, 100);
  rx.beginBurst();
  assert.is(rx.receive(source(150), 0, 150), false);
  rx.endBurst();
  assert.is(queue.usedIdx(), 0, 'the half-filled buffer was given back, not used');
  post(queue, 100);
  rx.beginBurst();
  assert.ok(rx.receive(source(150), 0, 150));
  rx.endBurst();
  assert.is(queue.usedIdx(), 2);
  guest.close();
});

test('checksum flags given with a frame go into its header, whole or split over buffers', () => {
  const { guest, queue, rx } = setup(true);
  const whole = post(queue, 100);
  const parts = [guest.alloc(7), guest.alloc(70)];
  queue.makeAvailable(
    queue.addChain([
      { gpa: parts[0]!, length: 7, writable: true },
      { gpa: parts[1]!, length: 70, writable: true },
    ]),
  );
  rx.beginBurst();
  assert.ok(rx.receive(source(60), 0, 60, 1, 34, 6));
  assert.ok(rx.receive(source(60), 0, 60, 2));
  rx.endBurst();
  // flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers (little-endian).
  assert.equal([...guest.read(whole, HEADER)], [1, 0, 0, 0, 0, 0, 34, 0, 6, 0, 1, 0]);
  assert.equal([...guest.read(parts[0]!, 7), ...guest.read(parts[1]!, 5)], [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  guest.close();
});

test('a header split over tiny buffers still gets num_buffers in the right bytes', () => {
  const { guest, queue, rx } = setup(true);
  const parts = [guest.alloc(7), guest.alloc(4), guest.alloc(64)];
  queue.makeAvailable(
    queue.addChain([
      { gpa: parts[0]!, length: 7, writable: true },
      { gpa: parts[1]!, length: 4, writable: true },
      { gpa: parts[2]!, length: 64, writable: true },
    ]),
  );
  rx.beginBurst();
  assert.ok(rx.receive(source(60), 0, 60));
  rx.endBurst();
  assert.is(guest.read(parts[1]!, 4)[3], 1, 'num_buffers low byte is header byte 10 = second buffer, offset 3');
  assert.is(guest.read(parts[2]!, 1)[0], 0, 'num_buffers high byte');
  assert.is(queue.usedElement(0).length, 72);
  guest.close();
});

test('without mergeable buffers a frame that does not fit is dropped and counted', () => {
  const { guest, queue, counters, errors, rx } = setup(false);
  post(queue, 50);
  rx.beginBurst();
  assert.ok(rx.receive(source(60), 0, 60), 'consumed (dropped)');
  rx.endBurst();
  assert.is(counters[Counter.rxBufferTooSmall], 1);
  assert.equal(errors, ['rxBufferTooSmall']);
  assert.equal(queue.usedElement(0), { id: 0, length: 0 });
  guest.close();
});

test('a device-readable buffer in a receive chain breaks the ring', () => {
  const { guest, queue, counters, errors, rx } = setup(true);
  queue.makeAvailable(queue.addChain([{ length: 100 }]));
  rx.beginBurst();
  assert.is(rx.receive(source(60), 0, 60), false);
  assert.ok(rx.broken);
  assert.is(counters[Counter.rxReadableBuffer], 1);
  assert.equal(errors, ['rxReadableBuffer']);
  guest.close();
});

test.run();
