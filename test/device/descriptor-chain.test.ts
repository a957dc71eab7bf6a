import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChainError, DescriptorChain } from '../../device/descriptor-chain.js';
import { DescFlags } from 'vfio-user-ts';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

function setup(size = 8, indirect = true) {
  const guest = new FakeGuest();
  const queue = new FakeQueue(guest, size);
  const ring = queue.vring();
  const chain = new DescriptorChain(guest.memory, ring, indirect);
  return { guest, queue, chain };
}

test('resolves a plain chain: readable then writable buffers, with lengths and regions', () => {
  const { guest, queue, chain } = setup();
  const head = queue.addChain([{ length: 12 }, { length: 100 }, { length: 1500, writable: true }]);
  assert.is(chain.resolve(head), ChainError.none);
  assert.is(chain.count, 3);
  assert.is(chain.readableBytes, 112);
  assert.is(chain.writableBytes, 1500);
  assert.equal([...chain.length.subarray(0, 3)], [12, 100, 1500]);
  assert.equal([...chain.writable.subarray(0, 3)], [0, 0, 1]);
  assert.is(chain.indirect, false);
  guest.close();
});

test('1-byte fragments and zero-length buffers are fine', () => {
  const { guest, queue, chain } = setup(32);
  const head = queue.addChain([...Array.from({ length: 20 }, () => ({ length: 1 })), { length: 0 }]);
  assert.is(chain.resolve(head), ChainError.none);
  assert.is(chain.count, 21);
  assert.is(chain.readableBytes, 20);
  guest.close();
});

test('follows an indirect table', () => {
  const { guest, queue, chain } = setup();
  const head = queue.addChain([{ length: 12 }, { length: 60 }, { length: 8 }], { indirect: true });
  assert.is(chain.resolve(head), ChainError.none);
  assert.is(chain.count, 3);
  assert.is(chain.indirect, true);
  assert.is(chain.readableBytes, 80);
  guest.close();
});

test('a loop is caught as a chain longer than the queue', () => {
  const { guest, queue, chain } = setup(4);
  const buf = guest.alloc(64);
  queue.setDescriptor(0, buf, 8, DescFlags.next, 1);
  queue.setDescriptor(1, buf, 8, DescFlags.next, 0);
  assert.is(chain.resolve(0), ChainError.chainTooLong);
  guest.close();
});

test('a self-loop inside an indirect table is caught too', () => {
  const { guest, queue, chain } = setup(4);
  const table = guest.alloc(32);
  const buf = guest.alloc(64);
  queue.setDescriptor(0, buf, 8, DescFlags.next, 0, table);
  queue.setDescriptor(0, table, 32, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.chainTooLong);
  guest.close();
});

test('head and next outside the table', () => {
  const { guest, queue, chain } = setup(4);
  assert.is(chain.resolve(4), ChainError.headOutOfRange);
  queue.setDescriptor(0, guest.alloc(8), 8, DescFlags.next, 9);
  assert.is(chain.resolve(0), ChainError.nextOutOfRange);
  assert.is(chain.errorDescriptor, 0);
  guest.close();
});

test('buffers outside guest memory: beyond the end, wrapping 2^64, huge lengths', () => {
  const { guest, queue, chain } = setup(4);
  for (const [addr, len] of [
    [0x100000 + (4 << 20) - 4, 8],
    [2 ** 64 - 8, 16],
    [0x100000, 0xffffffff],
    [0, 16],
  ] as const) {
    queue.setDescriptor(0, addr, len, 0, 0);
    assert.is(chain.resolve(0), ChainError.bufferOutsideMemory, `addr 0x${addr.toString(16)} len ${len}`);
    assert.is(chain.errorLength, len);
  }
  guest.close();
});

test('a readable buffer after a writable one is refused', () => {
  const { guest, queue, chain } = setup();
  const head = queue.addChain([{ length: 8, writable: true }, { length: 8 }]);
  assert.is(chain.resolve(head), ChainError.readableAfterWritable);
  guest.close();
});

test('indirect rules: negotiated, no NEXT with it, whole descriptors, inside memory, not nested', () => {
  const { guest, queue, chain } = setup(8, true);
  const table = guest.alloc(64);
  const buf = guest.alloc(64);
  queue.setDescriptor(0, buf, 8, 0, 0, table);
  queue.setDescriptor(0, table, 16, DescFlags.indirect | DescFlags.next, 1);
  assert.is(chain.resolve(0), ChainError.indirectWithNext);
  queue.setDescriptor(0, table, 24, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.indirectBadLength);
  queue.setDescriptor(0, table, 0, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.indirectBadLength);
  queue.setDescriptor(0, 0x10, 16, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.indirectOutsideMemory);
  queue.setDescriptor(0, table, 16, DescFlags.indirect, 0, table);
  queue.setDescriptor(0, table, 16, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.nestedIndirect);
  const strict = new DescriptorChain(guest.memory, queue.vring(), false);
  queue.setDescriptor(0, buf, 8, 0, 0, table);
  assert.is(strict.resolve(0), ChainError.indirectNotNegotiated);
  assert.is(chain.resolve(0), ChainError.none);
  guest.close();
});

test('an indirect table larger than the queue is refused', () => {
  const { guest, queue, chain } = setup(4);
  const table = guest.alloc(16 * 8);
  queue.setDescriptor(0, table, 16 * 8, DescFlags.indirect, 0);
  assert.is(chain.resolve(0), ChainError.indirectBadLength);
  guest.close();
});

test.run();
