// The packed ring (device/packed-ring.ts) and its chain walk against a driver that lays the ring
// out as Linux's virtio_ring does (test/support/fake-driver.ts, FakePackedQueue): valid traffic
// over many laps of both wrap counters, and the hostile cases the split ring's tests also cover.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace, DescFlags, PackedEventFlags } from 'vfio-user-ts';
import { Counter, createCounters } from '../../device/counters.js';
import { ChainError, chainErrorNames, DescriptorChain } from '../../device/descriptor-chain.js';
import { PackedRing } from '../../device/packed-ring.js';
import { queueErrorNames } from '../../device/queue-errors.js';
import { ReceiveQueue } from '../../device/receive-queue.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import { Prng } from '../../fuzz/prng.js';
import { FakeGuest, FakePackedQueue } from '../support/fake-driver.js';

function setup(size = 8, options: { indirect?: boolean; eventIdx?: boolean } = {}) {
  const guest = new FakeGuest();
  const queue = new FakePackedQueue(guest, size);
  const ring = queue.ring(options.eventIdx ?? false);
  const chain = new DescriptorChain(guest.memory, ring, options.indirect ?? true);
  return { guest, queue, ring, chain };
}

test('a chain of consecutive descriptors: counted by its first flags, walked to the id in its last', () => {
  const { guest, queue, ring, chain } = setup();
  assert.is(ring.availableCount(), 0, 'nothing posted');
  const id = queue.post([{ length: 12 }, { length: 100 }, { length: 1500, writable: true }], { id: 77 });
  queue.post([{ length: 60 }], { id: 5 });
  assert.is(ring.availableCount(), 2);
  assert.is(ring.take(chain), ChainError.none);
  assert.is(chain.head, id);
  assert.is(chain.ringDescriptors, 3);
  assert.equal([...chain.length.subarray(0, chain.count)], [12, 100, 1500]);
  assert.is(chain.readableBytes, 112);
  assert.is(chain.writableBytes, 1500);
  assert.is(ring.availableCount(), 1, 'the second chain starts at slot 3');
  assert.is(ring.take(chain), ChainError.none);
  assert.is(chain.head, 5);
  guest.close();
});

test('used elements are written in place only at publish, the first at its chain\'s first slot', () => {
  const { guest, queue, ring, chain } = setup();
  queue.post([{ length: 10 }, { length: 20 }], { id: 3 });
  queue.post([{ length: 30, writable: true }], { id: 9 });
  assert.is(ring.availableCount(), 2);
  ring.take(chain);
  ring.pushUsed(chain.head, 0);
  ring.take(chain);
  ring.pushUsed(chain.head, 30);
  assert.is(queue.takeUsed(), null, 'nothing visible before the publish');
  assert.is(ring.publishUsed(), true, 'the first publish notifies');
  assert.equal(queue.takeUsed(), { id: 3, length: 0, written: false });
  assert.equal(queue.takeUsed(), { id: 9, length: 30, written: true }, 'found at slot 2, after the 2-descriptor chain');
  assert.is(queue.takeUsed(), null);
  assert.is(ring.publishedUsedIdx, 2);
  guest.close();
});

test('many laps of a ring whose chains do not divide its size: both wrap counters flip in step', () => {
  const { guest, queue, ring, chain } = setup(8);
  let completed = 0;
  for (let round = 0; round < 40; round++) {
    const posted = [queue.post([{ length: 1 }, { length: 2 }, { length: 3 }]), queue.post([{ length: 4 }])];
    assert.is(ring.availableCount(), 2, `round ${round}`);
    for (let i = 0; i < 2; i++) {
      assert.is(ring.take(chain), ChainError.none, `round ${round}`);
      assert.is(chain.head, posted[i]);
      ring.pushUsed(chain.head, 0);
    }
    ring.publishUsed();
    for (const id of posted) {
      assert.equal(queue.takeUsed()?.id, id, `round ${round}`);
      completed++;
    }
    assert.is(ring.availableCount(), 0);
  }
  assert.is(completed, 80);
  // 40 rounds of 4 descriptors: 160 slots, 20 laps of 8; the base says slot 0, wrap counter 1.
  assert.is(ring.resumeBase, 0x80008000);
  guest.close();
});

test('a chain that wraps round the ring\'s end is walked across it', () => {
  const { guest, queue, ring, chain } = setup(4);
  queue.post([{ length: 1 }, { length: 1 }, { length: 1 }]);
  ring.availableCount();
  ring.take(chain);
  ring.pushUsed(chain.head, 0);
  ring.publishUsed();
  queue.takeUsed();
  const id = queue.post([{ length: 5 }, { length: 6 }, { length: 7 }]);
  assert.is(ring.availableCount(), 1);
  assert.is(ring.take(chain), ChainError.none);
  assert.is(chain.head, id);
  assert.equal([...chain.length.subarray(0, chain.count)], [5, 6, 7], 'slots 3, 0 and 1');
  assert.is(ring.resumeBase & 0xffff, 2, 'slot 2 of the second lap: wrap counter 0');
  guest.close();
});

test('descriptors of the wrong lap, or still used, are not available', () => {
  const { guest, queue, ring } = setup(4);
  queue.setDescriptor(0, 0x100000, 10, 1, queue.availBits(0));
  assert.is(ring.availableCount(), 0, 'AVAIL and USED both clear: the second lap\'s pattern');
  queue.setDescriptor(0, 0x100000, 10, 1, queue.availBits(1) | queue.availBits(0));
  assert.is(ring.availableCount(), 0, 'AVAIL and USED both set: a used descriptor');
  queue.setDescriptor(0, 0x100000, 10, 1, queue.availBits(1));
  assert.is(ring.availableCount(), 1);
  guest.close();
});

test('slots the device holds, taken and not yet used, are not counted again (a driver posting over them)', () => {
  const { guest, queue, ring, chain } = setup(4);
  queue.post([{ length: 1 }]);
  queue.post([{ length: 1 }]);
  assert.is(ring.availableCount(), 2);
  ring.take(chain);
  ring.take(chain);
  for (let i = 0; i < 3; i++) queue.post([{ length: 1 }]);
  assert.is(ring.availableCount(), 2, 'slots 2 and 3; slot 0 of the next lap is still the device\'s');
  guest.close();
});

test('a chain whose NEXT flags go round the whole ring is a chain longer than the queue', () => {
  const { guest, queue, ring, chain } = setup(4);
  for (let slot = 0; slot < 4; slot++) queue.setDescriptor(slot, 0x100000, 10, 1, DescFlags.next | queue.availBits());
  assert.is(ring.availableCount(), 1, 'counted, so that its walk fails and is reported');
  assert.is(ring.take(chain), ChainError.chainTooLong);
  guest.close();
});

test('buffers outside guest memory: beyond the end, wrapping 2^64, huge lengths', () => {
  const cases: Array<[number, number]> = [
    [0x100000 + (4 << 20) - 4, 8],
    [0x10, 8],
    [2 ** 64 - 4096, 8192],
    [0x100000, 0xffffffff],
  ];
  for (const [addr, length] of cases) {
    const { guest, queue, ring, chain } = setup();
    queue.setDescriptor(0, addr, length, 1, queue.availBits());
    assert.is(ring.availableCount(), 1);
    assert.is(ring.take(chain), ChainError.bufferOutsideMemory, `0x${addr.toString(16)}+${length}`);
    assert.is(chain.errorAddress, addr);
    guest.close();
  }
});

test('a readable buffer after a writable one is refused', () => {
  const { guest, queue, ring, chain } = setup();
  queue.post([{ length: 10, writable: true }, { length: 10 }]);
  ring.availableCount();
  assert.is(ring.take(chain), ChainError.readableAfterWritable);
  guest.close();
});

test('a packed indirect table: one ring descriptor, the id in it, buffers one after another', () => {
  const { guest, queue, ring, chain } = setup();
  const id = queue.post([{ length: 12 }, { length: 60 }, { length: 200, writable: true }], { indirect: true, id: 42 });
  queue.post([{ length: 8 }], { id: 43 });
  assert.is(ring.availableCount(), 2);
  assert.is(ring.take(chain), ChainError.none);
  assert.is(chain.head, id);
  assert.is(chain.indirect, true);
  assert.is(chain.ringDescriptors, 1);
  assert.equal([...chain.length.subarray(0, chain.count)], [12, 60, 200]);
  assert.equal([...chain.writable.subarray(0, chain.count)], [0, 0, 1]);
  assert.is(ring.take(chain), ChainError.none);
  assert.is(chain.head, 43, 'the next chain starts right after the indirect descriptor');
  guest.close();
});

test('indirect rules: negotiated, no NEXT with it, whole descriptors, inside memory, not nested, not larger than the queue', () => {
  const cases: Array<{ name: string; expect: number; indirect?: boolean; write: (queue: FakePackedQueue, table: number) => void }> = [
    { name: 'not negotiated', expect: ChainError.indirectNotNegotiated, indirect: false, write: (q, t) => q.setDescriptor(0, t, 16, 1, DescFlags.indirect | q.availBits()) },
    { name: 'with NEXT', expect: ChainError.indirectWithNext, write: (q, t) => q.setDescriptor(0, t, 16, 1, DescFlags.indirect | DescFlags.next | q.availBits()) },
    { name: 'length not whole descriptors', expect: ChainError.indirectBadLength, write: (q, t) => q.setDescriptor(0, t, 24, 1, DescFlags.indirect | q.availBits()) },
    { name: 'empty', expect: ChainError.indirectBadLength, write: (q, t) => q.setDescriptor(0, t, 0, 1, DescFlags.indirect | q.availBits()) },
    { name: 'more descriptors than the queue size', expect: ChainError.indirectBadLength, write: (q, t) => q.setDescriptor(0, t, 16 * 9, 1, DescFlags.indirect | q.availBits()) },
    { name: 'outside memory', expect: ChainError.indirectOutsideMemory, write: (q) => q.setDescriptor(0, 0x10, 16, 1, DescFlags.indirect | q.availBits()) },
    {
      name: 'nested',
      expect: ChainError.nestedIndirect,
      write: (q, t) => {
        q.setDescriptor(0, t, 16, 0, DescFlags.indirect, t);
        q.setDescriptor(0, t, 16, 1, DescFlags.indirect | q.availBits());
      },
    },
    {
      name: 'a buffer outside memory inside the table',
      expect: ChainError.bufferOutsideMemory,
      write: (q, t) => {
        q.setDescriptor(0, 0x100000, 10, 0, 0, t);
        q.setDescriptor(1, 2 ** 40, 10, 0, 0, t);
        q.setDescriptor(0, t, 32, 1, DescFlags.indirect | q.availBits());
      },
    },
  ];
  for (const c of cases) {
    const { guest, queue, ring, chain } = setup(8, { indirect: c.indirect ?? true });
    c.write(queue, guest.alloc(16 * 16, 16));
    assert.is(ring.availableCount(), 1, c.name);
    assert.is(ring.take(chain), c.expect, `${c.name}: ${queueErrorNames[c.expect]}`);
    guest.close();
  }
});

test('untake gives chains back and unpushUsed forgets their used elements (a frame that did not fit)', () => {
  const { guest, queue, ring, chain } = setup();
  const a = queue.post([{ length: 100, writable: true }, { length: 100, writable: true }]);
  const b = queue.post([{ length: 100, writable: true }]);
  assert.is(ring.availableCount(), 2);
  ring.take(chain);
  ring.pushUsed(chain.head, 200);
  ring.take(chain);
  ring.untake(2);
  ring.unpushUsed(1);
  assert.is(ring.publishUsed(), false, 'nothing to publish');
  assert.is(queue.takeUsed(), null);
  assert.is(ring.availableCount(), 2, 'both available again');
  ring.take(chain);
  assert.is(chain.head, a);
  ring.pushUsed(a, 1);
  ring.take(chain);
  assert.is(chain.head, b);
  ring.pushUsed(b, 2);
  ring.publishUsed();
  assert.equal(queue.takeUsed(), { id: a, length: 1, written: true });
  assert.equal(queue.takeUsed(), { id: b, length: 2, written: true });
  guest.close();
});

test('the driver\'s event suppression: ENABLE notifies, DISABLE does not, DESC when its slot is used, across the wrap', () => {
  const { guest, queue, ring, chain } = setup(4, { eventIdx: true });
  const complete = (count: number): boolean => {
    for (let i = 0; i < count; i++) queue.post([{ length: 1 }]);
    assert.is(ring.availableCount(), count);
    for (let i = 0; i < count; i++) {
      ring.take(chain);
      ring.pushUsed(chain.head, 0);
    }
    const notify = ring.publishUsed();
    for (let i = 0; i < count; i++) assert.ok(queue.takeUsed());
    return notify;
  };
  queue.setDriverEvent(PackedEventFlags.disable);
  assert.is(complete(1), true, 'the first publish after a start notifies whatever the driver says');
  assert.is(complete(1), false, 'DISABLE');
  queue.setDriverEvent(PackedEventFlags.enable);
  assert.is(complete(1), true, 'ENABLE');
  // The driver is at slot 3 of lap 1; it asks for slot 1 of the next lap (wrap counter 0).
  queue.setDriverEvent(PackedEventFlags.desc, 1);
  assert.is(complete(1), false, 'slot 3 used: not yet');
  assert.is(complete(1), false, 'slot 0 (lap 2) used: not yet');
  assert.is(complete(2), true, 'slots 1 and 2 used: slot 1 is among them');
  queue.setDriverEvent(PackedEventFlags.desc, queue.usedOffWrap);
  assert.is(complete(1), true, 'the very next slot (3, wrap 0)');
  assert.is(complete(1), false, 'an event already passed is not seen again');
  guest.close();
});

test('DESC is ignored without EVENT_IDX (the flag is reserved then)', () => {
  const { guest, queue, ring, chain } = setup(4, { eventIdx: false });
  queue.setDriverEvent(PackedEventFlags.desc, 0);
  for (let round = 0; round < 2; round++) {
    queue.post([{ length: 1 }]);
    ring.availableCount();
    ring.take(chain);
    ring.pushUsed(chain.head, 0);
    assert.is(ring.publishUsed(), round === 0, `round ${round}`);
  }
  guest.close();
});

test('the device\'s event suppression: DISABLE while busy, ENABLE, or DESC at its next slot with EVENT_IDX', () => {
  for (const eventIdx of [false, true]) {
    const { guest, queue, ring, chain } = setup(4, { eventIdx });
    ring.disableKicks();
    assert.is(queue.deviceEvent().flags, PackedEventFlags.disable);
    for (let i = 0; i < 5; i++) {
      queue.post([{ length: 1 }]);
      ring.availableCount();
      ring.take(chain);
      ring.pushUsed(chain.head, 0);
      ring.publishUsed();
    }
    ring.enableKicks();
    if (eventIdx) assert.equal(queue.deviceEvent(), { flags: PackedEventFlags.desc, offWrap: 1 }, 'slot 1, wrap counter 0');
    else assert.is(queue.deviceEvent().flags, PackedEventFlags.enable);
    guest.close();
  }
});

test('the base: slot and wrap counter in, the same out in both halves; bad ones refused', () => {
  const guest = new FakeGuest();
  const queue = new FakePackedQueue(guest, 8);
  const ring = queue.ring(false, 5);
  assert.is(ring.resumeBase, 0x00050005, 'slot 5, wrap counter 0');
  assert.is(ring.notifyOnStart(), true, 'a restarted ring notifies once');
  assert.is(queue.ring(false, 0x8000).notifyOnStart(), false, 'a fresh one does not');
  assert.match(String(PackedRing.create(guest.memory, queue.addresses, false, 8, false)), /outside the 8-descriptor ring/);
  assert.match(String(PackedRing.create(guest.memory, queue.addresses, false, 0x8000, true)), /inflight region for a packed ring is not supported/);
  assert.match(String(PackedRing.create(guest.memory, { ...queue.addresses, usedAddr: 0x10 }, false, 0x8000, false)), /device area .* outside guest memory/);
  assert.match(String(PackedRing.create(guest.memory, { ...queue.addresses, descAddr: queue.descAddr + 8 }, false, 0x8000, false)), /not aligned/);
  guest.close();
});

test('a transmitq over a packed ring: frames sent, a bad chain counted as on a split ring and the ring stopped', () => {
  const guest = new FakeGuest();
  const queue = new FakePackedQueue(guest, 16);
  const counters = createCounters();
  const errors: string[] = [];
  let frames = 0;
  const tx = new TransmitQueue(guest.memory, queue.ring(), true, 12, counters, { transmitted: () => frames++ }, { queueError: (_q, kind) => errors.push(queueErrorNames[kind]!) }, 1);
  for (let i = 0; i < 3; i++) queue.post([{ length: 12, data: new Uint8Array(12) }, { length: 60 }]);
  queue.post([{ gpa: 0x10, length: 72 }], { id: 99 });
  queue.post([{ length: 72 }], { id: 7 });
  assert.is(tx.processBurst(64), 3, 'three frames; the ring stops at the bad chain');
  assert.is(frames, 3);
  assert.is(counters[Counter.txFrames], 3);
  assert.is(counters[Counter.chainErrors + ChainError.bufferOutsideMemory - 1], 1);
  assert.equal(errors, ['bufferOutsideMemory']);
  assert.is(tx.broken, true);
  for (let i = 0; i < 3; i++) assert.ok(queue.takeUsed(), `frame ${i} completed`);
  assert.is(queue.takeUsed(), null, 'the bad chain is never completed');
  guest.close();
});

test('a receiveq over a packed ring: a frame over mergeable buffers, given back whole when they run out', () => {
  const guest = new FakeGuest();
  const queue = new FakePackedQueue(guest, 8);
  const counters = createCounters();
  const rx = new ReceiveQueue(guest.memory, queue.ring(), true, 12, true, counters, { queueError: () => undefined }, 0);
  const frame = byteSpace(new Uint8Array(1500).fill(0xab).buffer);
  const first = [queue.post([{ length: 1000, writable: true }]), queue.post([{ length: 1000, writable: true }])];
  assert.is(rx.beginBurst(), 2);
  assert.is(rx.receive(frame, 0, 1500), true);
  rx.endBurst();
  assert.equal(queue.takeUsed(), { id: first[0]!, length: 1000, written: true });
  assert.equal(queue.takeUsed(), { id: first[1]!, length: 512, written: true });
  const short = queue.post([{ length: 100, writable: true }]);
  assert.is(rx.receive(frame, 0, 1500), false, 'one 100-byte buffer cannot hold it');
  rx.endBurst();
  assert.is(queue.takeUsed(), null, 'nothing completed');
  const long = queue.post([{ length: 2000, writable: true }]);
  assert.is(rx.beginBurst(), 2, 'the buffer given back is available again');
  assert.is(rx.receive(frame, 0, 1500), true);
  rx.endBurst();
  assert.equal(queue.takeUsed(), { id: short, length: 100, written: true });
  assert.equal(queue.takeUsed(), { id: long, length: 1412, written: true });
  assert.is(counters[Counter.rxFrames], 2);
  assert.is(counters[Counter.rxBuffers], 4);
  guest.close();
});

test('seeded traffic: chains of random lengths, direct or indirect, completed in batches over many laps, each id back once and in order', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const prng = new Prng(seed);
    const size = 2 << prng.int(5);
    const { guest, queue, ring, chain } = setup(size);
    const posted: Array<{ id: number; bytes: number; slots: number }> = [];
    let free = size;
    let completed = 0;
    for (let step = 0; step < 300; step++) {
      // Post as the driver would: only into slots it has back.
      while (free > 0 && prng.chance(0.7)) {
        const indirect = prng.chance(0.3);
        const count = 1 + prng.int(Math.min(4, indirect ? size : free));
        const buffers = Array.from({ length: count }, () => ({ length: 1 + prng.int(64), writable: true }));
        const id = queue.post(buffers, { indirect });
        const slots = indirect ? 1 : count;
        posted.push({ id, bytes: buffers.reduce((n, b) => n + b.length, 0), slots });
        free -= slots;
      }
      let chains = ring.availableCount();
      assert.ok(chains >= 0 && chains <= size, `seed ${seed}: ${chains} available`);
      // The device takes a random part of them and completes them with their byte counts.
      chains = prng.int(chains + 1);
      for (let i = 0; i < chains; i++) {
        assert.is(ring.take(chain), ChainError.none, `seed ${seed} step ${step}`);
        ring.pushUsed(chain.head, chain.writableBytes);
      }
      ring.publishUsed();
      // Everything taken is published: the used position has caught up with the avail one.
      assert.is(ring.resumeBase >>> 16, ring.resumeBase & 0xffff, `seed ${seed} step ${step}: used and avail positions`);
      for (let used = queue.takeUsed(); used !== null; used = queue.takeUsed()) {
        const expected = posted.shift()!;
        assert.equal({ id: used.id, length: used.length }, { id: expected.id, length: expected.bytes }, `seed ${seed} step ${step}`);
        completed++;
        free += expected.slots;
      }
    }
    assert.ok(completed > 100, `seed ${seed}: ${completed} completed`);
    guest.close();
  }
});

test('seeded hostile rings: random descriptors and tables never throw; every chain is sent, refused and counted, or breaks the ring once', () => {
  // Each flag with its own odds: mostly available (AVAIL without USED on lap 1), short chains,
  // now and then indirect, writable, used, or pointing outside memory.
  const odds: Array<[number, number]> = [[DescFlags.next, 0.3], [DescFlags.write, 0.05], [DescFlags.indirect, 0.1], [1 << 7, 0.9], [1 << 15, 0.1]];
  const seen = { broken: 0, frames: 0, refused: 0 };
  for (let seed = 1; seed <= 50; seed++) {
    const prng = new Prng(`hostile ${seed}`);
    const guest = new FakeGuest();
    const size = 2 << prng.int(4);
    const queue = new FakePackedQueue(guest, size);
    const tables = Array.from({ length: 4 }, () => guest.alloc(16 * 8, 16));
    const address = (): number => (prng.chance(0.9) ? 0x100000 + prng.int(2 << 20) : prng.pick([0x10, 2 ** 40, 2 ** 64 - 4096]));
    const randomDescriptor = (slot: number, table?: number): void => {
      const flags = odds.reduce((f, [bit, p]) => (prng.chance(p) ? f | bit : f), 0);
      const indirect = (flags & DescFlags.indirect) !== 0;
      const addr = indirect && prng.chance(0.9) ? tables[prng.int(4)]! : address();
      const length = indirect ? 16 * prng.int(10) : prng.chance(0.9) ? 12 + prng.int(100) : prng.pick([0, 1, 0xffffffff]);
      queue.setDescriptor(slot, addr, length, prng.int(0x10000), flags, table);
    };
    for (const table of tables) for (let i = 0; i < 8; i++) randomDescriptor(i, table);
    for (let slot = 0; slot < size; slot++) randomDescriptor(slot);
    const counters = createCounters();
    let fatal = 0;
    let frames = 0;
    const tx = new TransmitQueue(guest.memory, queue.ring(), prng.chance(0.8), 12, counters, { transmitted: () => frames++ }, { queueError: (_q, _kind, isFatal) => (fatal += isFatal ? 1 : 0) }, 1);
    let taken = 0;
    for (let burst = 0; burst < 4; burst++) taken += tx.processBurst(64);
    const chainErrors = counters.subarray(Counter.chainErrors, Counter.chainErrors + chainErrorNames.length - 1).reduce((n, v) => n + v, 0);
    assert.is(fatal, chainErrors, `seed ${seed}: one report per broken ring`);
    assert.ok(chainErrors <= 1, `seed ${seed}: the ring stops at its first bad chain`);
    assert.is(tx.broken, chainErrors === 1, `seed ${seed}`);
    assert.is(counters[Counter.txFrames], frames, `seed ${seed}`);
    assert.is(tx.ring.publishedUsedIdx, taken, `seed ${seed}: every chain taken and not broken is completed`);
    seen.broken += chainErrors;
    seen.frames += frames;
    seen.refused += taken - frames;
    guest.close();
  }
  // The seeds reach all three outcomes.
  assert.ok(seen.broken > 5 && seen.frames > 5 && seen.refused > 5, JSON.stringify(seen));
});

test('a driver\'s queue reset (RING_RESET): seen in the zeroed device area, even after a kick rewrote it, and followed', () => {
  for (const eventIdx of [false, true]) {
    const { guest, queue, ring, chain } = setup(8, { eventIdx });
    ring.enableKicks();
    for (let i = 0; i < 3; i++) queue.post([{ length: 1 }, { length: 1 }]);
    ring.availableCount();
    ring.take(chain);
    ring.pushUsed(chain.head, 0);
    ring.publishUsed();
    ring.take(chain);
    ring.pushUsed(chain.head, 0);
    queue.resetRing();
    assert.is(ring.driverReset(), false, 'not followed without RING_RESET');
    ring.followsDriverResets = true;
    assert.is(ring.driverReset(), true, `eventIdx ${eventIdx}`);
    ring.disableKicks();
    assert.is(ring.driverReset(), true, 'still seen after the kick handler wrote over it');
    assert.is(ring.restartAfterDriverReset(), 1, 'the used element not yet published is dropped');
    assert.is(ring.driverReset(), false);
    const id = queue.post([{ length: 7 }], { id: 300 });
    assert.is(ring.availableCount(), 1, 'the ring starts over at slot 0, wrap counter 1');
    ring.take(chain);
    assert.is(chain.head, id);
    ring.pushUsed(chain.head, 0);
    assert.is(ring.publishUsed(), true, 'the first publish after the reset notifies');
    assert.equal(queue.takeUsed(), { id, length: 0, written: false });
    ring.enableKicks();
    assert.is(ring.driverReset(), false, 'the device\'s own writes never look like a reset');
    guest.close();
  }
});

test.run();
