/**
 * VIRTIO_F_IN_ORDER: a transmitq whose ring completes in batches (Virtqueue.completeInBatches)
 * marks each burst used with one used element, the last chain's, on the split ring and on the
 * packed one; without it, one element per chain as before. The drivers here read the rings as an
 * IN_ORDER driver does (Linux's virtqueue_get_buf_ctx_*_in_order, DPDK's in-order cleanup): an
 * element completes every chain in flight up to the one it names. The negative controls run the
 * same assertion against a ring that does not batch and against a batch element naming the wrong
 * chain, and it fails on both.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCounters, describeCounters } from '../../device/counters.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import type { Virtqueue } from '../../device/virtqueue.js';
import { Vring } from '../../device/vring.js';
import { inflightQueueBytes } from 'vfio-user-ts';
import { FakeGuest, FakePackedQueue, FakeQueue, type FakeBuffer } from '../support/fake-driver.js';

const HEADER = 12;

/** A transmit chain: the virtio-net header alone, then the frame (two descriptors, or one indirect). */
function frameChain(i: number): FakeBuffer[] {
  return [
    { length: HEADER, data: new Uint8Array(HEADER) },
    { length: 60, data: new Uint8Array(60).fill(i) },
  ];
}

function transmitQueue(guest: FakeGuest, ring: Virtqueue) {
  const counters = createCounters();
  const tx = new TransmitQueue(guest.memory, ring, true, HEADER, counters, { transmitted: () => undefined }, { queueError: () => undefined }, 1);
  return { tx, counters };
}

/** What a driver read for one used element: the chain it names and how many chains it completed. */
interface UsedRead {
  readonly id: number;
  readonly length: number;
  readonly chains: number;
}

/**
 * A split ring's driver with IN_ORDER: reads the used element at its last used index, which
 * completes every chain in flight up to the head it names, and skips that many used slots.
 */
class InOrderSplitDriver {
  private lastUsed = 0;
  /** Heads made available and not yet used, oldest first. */
  private readonly inFlight: number[] = [];

  constructor(readonly queue: FakeQueue) {}

  post(buffers: FakeBuffer[], indirect = false): number {
    const head = this.queue.addChain(buffers, { indirect });
    this.queue.makeAvailable(head);
    this.inFlight.push(head);
    return head;
  }

  collect(): UsedRead[] {
    const reads: UsedRead[] = [];
    const usedIdx = this.queue.usedIdx();
    while (this.lastUsed !== usedIdx) {
      const { id, length } = this.queue.usedElement(this.lastUsed);
      const chains = this.inFlight.indexOf(id) + 1;
      if (chains === 0) throw new Error(`used element ${this.lastUsed} names head ${id}, which is not in flight`);
      if (chains > ((usedIdx - this.lastUsed) & 0xffff)) throw new Error(`used element ${this.lastUsed} completes ${chains} chains, past used.idx ${usedIdx}`);
      this.inFlight.splice(0, chains);
      this.lastUsed = (this.lastUsed + chains) & 0xffff;
      reads.push({ id, length, chains });
    }
    return reads;
  }
}

/** The assertion of the batched tests: one burst of `chains` chains came back as one used element naming `lastId`. */
function assertOneElement(reads: readonly UsedRead[], chains: number, lastId: number): void {
  // Plain Errors: assert.throws passes uvu's own assertion errors on (the negative controls).
  if (reads.length !== 1) throw new Error(`${reads.length} used elements for one burst, expected 1`);
  const [read] = reads as [UsedRead];
  if (read.chains !== chains || read.id !== lastId) throw new Error(`the used element completes ${read.chains} chains up to id ${read.id}, expected ${chains} up to ${lastId}`);
  if (read.length !== 0) throw new Error(`transmit used length ${read.length}`);
}

/** Split: bursts of 1 to 7 chains (direct and indirect) on a 16-entry ring, used.idx crossing 16 and wrapping the ring. */
function splitBursts(batched: boolean, check: (reads: UsedRead[], chains: number, lastHead: number) => void): { usedIdx: number; frames: number } {
  const guest = new FakeGuest();
  try {
    const queue = new FakeQueue(guest, 16);
    const ring = queue.vring(true);
    if (batched) ring.completeInBatches();
    const { tx, counters } = transmitQueue(guest, ring);
    const driver = new InOrderSplitDriver(queue);
    let sent = 0;
    for (const chains of [3, 1, 7, 5, 4, 6, 2]) {
      let lastHead = -1;
      for (let i = 0; i < chains; i++) lastHead = driver.post(frameChain(sent + i), (sent + i) % 3 === 0);
      assert.is(tx.processBurst(64), chains);
      sent += chains;
      check(driver.collect(), chains, lastHead);
    }
    return { usedIdx: queue.usedIdx(), frames: describeCounters(counters).transmitq.frames };
  } finally {
    guest.close();
  }
}

test('split, IN_ORDER: each burst is one used element, in the first chain\'s used slot, naming the last head; used.idx counts every chain', () => {
  const totals = splitBursts(true, (reads, chains, lastHead) => assertOneElement(reads, chains, lastHead));
  assert.equal(totals, { usedIdx: 28, frames: 28 });
});

test('split, IN_ORDER: the used slots of the other chains in a batch are not written', () => {
  const guest = new FakeGuest();
  try {
    const queue = new FakeQueue(guest, 8);
    for (let slot = 0; slot < 8; slot++) queue.setUsedId(slot, 0xdead);
    const ring = queue.vring();
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    const driver = new InOrderSplitDriver(queue);
    const heads = [0, 1, 2, 3].map((i) => driver.post(frameChain(i)));
    tx.processBurst(64);
    assert.is(queue.usedIdx(), 4);
    assert.equal(queue.usedElement(0), { id: heads[3]!, length: 0 });
    for (let slot = 1; slot < 8; slot++) assert.is(queue.usedElement(slot).id, 0xdead, `used slot ${slot}`);
  } finally {
    guest.close();
  }
});

test('split, without IN_ORDER: one used element per chain, as before', () => {
  const totals = splitBursts(false, (reads, chains) => {
    assert.is(reads.length, chains);
    assert.ok(reads.every((r) => r.chains === 1 && r.length === 0));
  });
  assert.equal(totals, { usedIdx: 28, frames: 28 });
});

test('split, negative controls: the batch assertion fails on a ring that does not batch, and on an element naming the first chain', () => {
  assert.throws(() => splitBursts(false, (reads, chains, lastHead) => assertOneElement(reads, chains, lastHead)), /3 used elements for one burst/);
  const guest = new FakeGuest();
  try {
    const queue = new FakeQueue(guest, 16);
    const ring = queue.vring();
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    const driver = new InOrderSplitDriver(queue);
    const heads = [0, 1, 2, 3, 4].map((i) => driver.post(frameChain(i)));
    tx.processBurst(64);
    // A device whose batch element named the first chain instead of the last.
    queue.setUsedId(0, heads[0]!);
    assert.throws(() => assertOneElement(driver.collect(), 5, heads[4]!), /not in flight|used elements for one burst|completes 1 chains/);
  } finally {
    guest.close();
  }
});

/** Packed: bursts of 1 to 7 chains of one (indirect) or two descriptors on a 16-slot ring, several laps. */
function packedBursts(batched: boolean, check: (queue: FakePackedQueue, chains: number, lastId: number) => void): { frames: number } {
  const guest = new FakeGuest();
  try {
    const queue = new FakePackedQueue(guest, 16);
    const ring = queue.ring(true);
    if (batched) ring.completeInBatches();
    const { tx, counters } = transmitQueue(guest, ring);
    let sent = 0;
    for (const chains of [3, 1, 7, 5, 4, 6, 2, 7, 7]) {
      let lastId = -1;
      for (let i = 0; i < chains; i++) lastId = queue.post(frameChain(sent + i), { indirect: (sent + i) % 3 === 0 });
      assert.is(tx.processBurst(64), chains);
      sent += chains;
      check(queue, chains, lastId);
    }
    return { frames: describeCounters(counters).transmitq.frames };
  } finally {
    guest.close();
  }
}

/** Everything the in-order driver finds used now. */
function takeAllInOrder(queue: FakePackedQueue): UsedRead[] {
  const reads: UsedRead[] = [];
  for (let read = queue.takeUsedInOrder(); read !== null; read = queue.takeUsedInOrder()) reads.push(read);
  return reads;
}

test('packed, IN_ORDER: each burst is one used descriptor naming the last buffer id; the driver skips the whole batch', () => {
  const totals = packedBursts(true, (queue, chains, lastId) => assertOneElement(takeAllInOrder(queue), chains, lastId));
  assert.equal(totals, { frames: 42 });
});

test('packed, IN_ORDER: only the batch\'s first slot is marked used; the other chains\' descriptors are left as the driver made them available', () => {
  const guest = new FakeGuest();
  try {
    const queue = new FakePackedQueue(guest, 16);
    const ring = queue.ring();
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    for (let i = 0; i < 3; i++) queue.post(frameChain(i));
    const availableFlags = [0, 1, 2, 3, 4, 5].map((slot) => queue.descriptorFlags(slot));
    tx.processBurst(64);
    assert.not.equal(queue.descriptorFlags(0), availableFlags[0], 'slot 0 carries the used element');
    for (let slot = 1; slot < 6; slot++) assert.is(queue.descriptorFlags(slot), availableFlags[slot], `slot ${slot} untouched`);
    assert.equal(takeAllInOrder(queue), [{ id: 2, length: 0, written: false, chains: 3 }]);
  } finally {
    guest.close();
  }
});

test('packed, without IN_ORDER: one used descriptor per chain, as before', () => {
  const totals = packedBursts(false, (queue, chains) => {
    let used = 0;
    while (queue.takeUsed() !== null) used++;
    assert.is(used, chains);
  });
  assert.equal(totals, { frames: 42 });
});

test('packed, negative controls: the batch assertion fails on a ring that does not batch, and on a descriptor naming the first chain', () => {
  assert.throws(() => packedBursts(false, (queue, chains, lastId) => assertOneElement(takeAllInOrder(queue), chains, lastId)), /3 used elements for one burst/);
  const guest = new FakeGuest();
  try {
    const queue = new FakePackedQueue(guest, 16);
    const ring = queue.ring();
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    const ids = [0, 1, 2, 3].map((i) => queue.post(frameChain(i)));
    tx.processBurst(64);
    // A device whose batch descriptor named the first buffer instead of the last.
    guest.setU16(queue.descAddr + 12, ids[0]!);
    assert.throws(() => assertOneElement(takeAllInOrder(queue), 4, ids[3]!), /completes 1 chains up to id 0/);
  } finally {
    guest.close();
  }
});

test('split, IN_ORDER: a batch across the 16-bit wrap of used.idx goes in the slot of its first chain', () => {
  const guest = new FakeGuest();
  try {
    const queue = new FakeQueue(guest, 16);
    queue.setUsedIdx(0xfffd);
    const ring = queue.vring(false, 0xfffd);
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    const heads = [0, 1, 2, 3, 4].map((i) => {
      const head = queue.addChain(frameChain(i));
      queue.setAvailSlot(0xfffd + i, head);
      return head;
    });
    queue.setAvailIdx(0x0002);
    assert.is(tx.processBurst(64), 5);
    assert.is(queue.usedIdx(), 0x0002);
    assert.equal(queue.usedElement(0xfffd), { id: heads[4]!, length: 0 }, 'in slot 13 (0xfffd & 15)');
  } finally {
    guest.close();
  }
});

test('split, IN_ORDER with an inflight region: one used element per chain, which its recovery reads back', () => {
  const guest = new FakeGuest();
  try {
    const queue = new FakeQueue(guest, 16);
    const ring = Vring.create(guest.memory, queue.addresses, false, 0, { buffer: new ArrayBuffer(inflightQueueBytes(16)), offset: 0 });
    if (typeof ring === 'string') throw new Error(ring);
    ring.completeInBatches();
    const { tx } = transmitQueue(guest, ring);
    const driver = new InOrderSplitDriver(queue);
    for (let i = 0; i < 4; i++) driver.post(frameChain(i));
    assert.is(tx.processBurst(64), 4);
    assert.equal(driver.collect().map((r) => r.chains), [1, 1, 1, 1]);
  } finally {
    guest.close();
  }
});

test.run();
