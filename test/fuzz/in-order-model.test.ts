/**
 * The fuzzer's rules under VIRTIO_F_IN_ORDER, without a device: the transmitq publishes each
 * burst as one used element (the last chain's id and length, in the place of the burst's first
 * chain, completing all of them), a burst ends at a broken chain, at the device's burst size and
 * where the driver waited before publishing more; the receiveq keeps one element per chain. The
 * device is played by writing used elements into the rings; the negative controls judge those
 * rings with a deliberately wrong model (one element per chain under IN_ORDER), and a device
 * that does not batch, or batches into the wrong slot, with the right one: each must come out as
 * mismatches. And a run must plan such cases, on both layouts, hostile ones among them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FeatureBit, featureMask, hasFeature } from 'vfio-user-ts';
import { CasePlanner } from '../../fuzz/fuzzer.js';
import { DEVICE_BURST, TRANSMITQ } from '../../fuzz/layout.js';
import { ringKinds } from '../../fuzz/ring-cases.js';
import { descWords, packedGenome, RingBuilder, type RingGenome } from '../../fuzz/ring-genome.js';
import type { Expectation, UsedElement } from '../../fuzz/ring-model.js';
import { expectCase, genomeFeatures, writeCase } from '../../fuzz/ring-runner.js';
import { guest, judgeRings, usedAreas, writeUsed, written, type WrittenCase } from '../support/fuzz-rings.js';

const SEED = 20240611;

/** Three transmit frames (one buffer, header and frame apart, indirect): heads 0, 1 and 3 of a ring of 8. */
function threeFrames(inOrder: boolean): RingGenome {
  const b = new RingBuilder('three', 'tx', 8);
  b.publish(b.txFrame(60), b.txFrame(100, 'split'), b.txFrame(200, 'indirect'));
  return { ...b.build(), inOrder };
}

/** Two frames, a chain whose buffer lies outside guest memory, a frame after it: heads 0, 1, 2, 3. */
function errorAfterTwo(): RingGenome {
  const b = new RingBuilder('error-after-two', 'tx', 8);
  const frames = [b.txFrame(60), b.txFrame(70)];
  const bad = b.takeDescriptors(1);
  b.setDescriptor(bad, descWords(0x200000, 0, 64, 0));
  b.publish(...frames, bad, b.txFrame(80));
  return { ...b.build(), inOrder: true };
}

/** The rules for `c`'s genome as if IN_ORDER had not been negotiated: the wrong model of the negative controls. */
function withoutInOrder(c: WrittenCase, g: RingGenome): Expectation {
  const features = genomeFeatures(g) & ~featureMask(FeatureBit.inOrder);
  return expectCase({ memory: c.memory, queue: c.queue, features }, g, true);
}

test('split, IN_ORDER: a burst is one element in the used slot of its first chain, naming the last head; used.idx counts every chain', () => {
  const { expected } = written(threeFrames(true));
  assert.ok(expected.certain);
  assert.is(expected.inOrder, true);
  assert.is(expected.txUsed, 3);
  assert.equal(expected.txElements, [{ slot: 0, wrap: 0, id: 3, length: 0, chains: 3 }]);
  assert.equal(written(threeFrames(false)).expected.txElements, [
    { slot: 0, wrap: 0, id: 0, length: 0, chains: 1 },
    { slot: 1, wrap: 0, id: 1, length: 0, chains: 1 },
    { slot: 2, wrap: 0, id: 3, length: 0, chains: 1 },
  ], 'without IN_ORDER: one element per chain');
});

test('packed, IN_ORDER: a burst across the ring\'s end is one element in its first chain\'s slot, with that lap\'s wrap counter', () => {
  // From slot 6 of 8 on the wrap-1 lap: chains at 6, 7 and 0 (lap 0), 1 to 2.
  const b = new RingBuilder('across', 'tx', 8);
  b.publish(b.txFrame(60), b.txFrame(60), b.txFrame(60), b.txFrame(100, 'split'));
  const g: RingGenome = { ...packedGenome(b.build(), 'across', 0x8000 | 6), inOrder: true };
  const { expected } = written(g);
  assert.ok(expected.certain);
  assert.is(expected.txUsed, 4);
  assert.equal(expected.txElements, [{ slot: 6, wrap: 1, id: 3, length: 0, chains: 4 }]);
});

test('IN_ORDER: a chain that breaks a rule ends the burst; the chains before it are one element, it and what follows never completed', () => {
  const split = written(errorAfterTwo()).expected;
  assert.equal(split.errors, { bufferOutsideMemory: 1 });
  assert.is(split.needsReset, true);
  assert.is(split.txFrames, 2);
  assert.is(split.txUsed, 2);
  assert.equal(split.txElements, [{ slot: 0, wrap: 0, id: 1, length: 0, chains: 2 }]);
  const packed = written({ ...packedGenome(errorAfterTwo(), 'error-after-two', 0x8000 | 7), inOrder: true }).expected;
  assert.equal(packed.errors, { bufferOutsideMemory: 1 });
  assert.equal(packed.txElements, [{ slot: 7, wrap: 1, id: 1, length: 0, chains: 2 }]);
});

test('IN_ORDER: a truncation case\'s chains before the cut are a burst of their own (the driver waits for them)', () => {
  const b = new RingBuilder('cut', 'tx', 8);
  b.publish(b.txFrame(60), b.txFrame(61), b.txFrame(62), b.txFrame(63), b.txFrame(64));
  b.truncateAfter(2, 0x10000);
  const g: RingGenome = { ...b.build(), inOrder: true };
  const { memory, queue } = guest(g.size);
  const session = { memory, queue, features: genomeFeatures(g) };
  writeCase(session, g)();
  assert.equal(expectCase(session, g, true).txElements, [
    { slot: 0, wrap: 0, id: 1, length: 0, chains: 2 },
    { slot: 2, wrap: 0, id: 4, length: 0, chains: 3 },
  ]);
});

test(`IN_ORDER: a burst takes at most ${DEVICE_BURST} chains`, () => {
  // One valid chain, head 0, and avail.idx 600: the avail slots after the first hold head 0 too.
  const b = new RingBuilder('long', 'tx', 1024);
  b.publish(b.txFrame(60));
  b.setAvailIdx(600);
  const { expected } = written({ ...b.build(), inOrder: true });
  assert.is(expected.txUsed, 600);
  assert.equal(expected.txElements, [
    { slot: 0, wrap: 0, id: 0, length: 0, chains: DEVICE_BURST },
    { slot: DEVICE_BURST, wrap: 0, id: 0, length: 0, chains: DEVICE_BURST },
    { slot: 2 * DEVICE_BURST, wrap: 0, id: 0, length: 0, chains: 600 - 2 * DEVICE_BURST },
  ]);
});

test('IN_ORDER: the receiveq keeps one element per chain, each with its own length; the transmitq that fed it is one element', () => {
  const b = new RingBuilder('rx', 'rx', 8, { mergeable: true });
  b.publish(b.rxBuffers([2048]), b.rxBuffers([2048]), b.rxBuffers([2048]));
  b.feed(100, 200, 300);
  const { expected } = written({ ...b.build(), inOrder: true });
  assert.ok(expected.certain);
  assert.equal(expected.rxElements, [
    { slot: 0, wrap: 0, id: 0, length: 112, chains: 1 },
    { slot: 1, wrap: 0, id: 1, length: 212, chains: 1 },
    { slot: 2, wrap: 0, id: 2, length: 312, chains: 1 },
  ]);
  assert.equal(expected.txElements, [{ slot: 0, wrap: 0, id: 2, length: 0, chains: 3 }]);
});

test('negative control, split: a wrong model (one element per chain under IN_ORDER) finds mismatches in a device\'s batched used ring; so does the right model in a ring that does not batch, or batches into the last slot', () => {
  const g = threeFrames(true);
  const batched = written(g);
  const before = usedAreas(batched);
  const tx = batched.queue(TRANSMITQ);
  const wrong = withoutInOrder(batched, g);
  assert.is(wrong.txElements.length, 3, 'the wrong model predicts an element per chain');
  writeUsed(batched.memory, tx, 'split', batched.expected.txElements);
  assert.equal(judgeRings(batched, batched.expected, before), [], 'the right model: no mismatch');
  assert.equal(judgeRings(batched, wrong, before), [
    'transmitq used slot 0 holds id 3 length 0, the rules say id 0 length 0',
    'transmitq used slot 1 holds id 0 length 0, the rules say id 1 length 0',
    'transmitq used slot 2 holds id 0 length 0, the rules say id 3 length 0',
  ]);

  const perChain = written(g);
  writeUsed(perChain.memory, perChain.queue(TRANSMITQ), 'split', wrong.txElements);
  assert.equal(judgeRings(perChain, perChain.expected, before), [
    'transmitq used slot 0 holds id 0 length 0, the rules say id 3 length 0',
    'transmitq used slot 1 holds id 1 length 0, the rules say nothing (as the driver left it)',
    'transmitq used slot 2 holds id 3 length 0, the rules say nothing (as the driver left it)',
  ]);

  const lastSlot = written(g);
  const element: UsedElement = { ...lastSlot.expected.txElements[0]!, slot: 2 };
  writeUsed(lastSlot.memory, lastSlot.queue(TRANSMITQ), 'split', [element]);
  assert.equal(judgeRings(lastSlot, lastSlot.expected, before), [
    'transmitq used slot 0 holds id 0 length 0, the rules say id 3 length 0',
    'transmitq used slot 2 holds id 3 length 0, the rules say nothing (as the driver left it)',
  ]);
});

test('negative control, packed: a wrong model finds mismatches in a device\'s batched ring; the right one in a ring that does not batch', () => {
  const g: RingGenome = { ...packedGenome(threeFrames(true), 'three', 0x8000 | 6), inOrder: true };
  const batched = written(g);
  const before = usedAreas(batched);
  const wrong = withoutInOrder(batched, g);
  writeUsed(batched.memory, batched.queue(TRANSMITQ), 'packed', batched.expected.txElements);
  assert.equal(judgeRings(batched, batched.expected, before), []);
  const found = judgeRings(batched, wrong, before);
  assert.is(found[0], 'transmitq chains used: expected 3, device 0');
  assert.match(found[1]!, /^transmitq slot 6: the device wrote id 3 length 0 flags 0x8080, the rules say id 0 length 0 flags 0x8080$/);

  const perChain = written(g);
  writeUsed(perChain.memory, perChain.queue(TRANSMITQ), 'packed', wrong.txElements);
  const notBatched = judgeRings(perChain, perChain.expected, before);
  assert.is(notBatched[0], 'transmitq chains used: expected 3, device 0');
  assert.match(notBatched.join('\n'), /transmitq slot 7: the device wrote id 1 length 0 flags 0x8080, the rules say nothing/);
});

test('a run plans IN_ORDER cases on both layouts, every pattern that breaks a chain among them; genomeFeatures asks for the bit', () => {
  const planner = new CasePlanner(SEED, true, false);
  const planned = Array.from({ length: 400 }, (_, i) => planner.plan(i, null));
  const rings = planned.flatMap((p) => (p.type === 'ring' ? [p.genome.ring] : []));
  const inOrder = rings.filter((g) => g.inOrder === true);
  assert.ok(inOrder.filter((g) => g.layout !== 'packed').length >= 40, 'split');
  assert.ok(inOrder.filter((g) => g.layout === 'packed').length >= 20, 'packed');
  for (const g of rings) assert.is(hasFeature(genomeFeatures(g), FeatureBit.inOrder), g.inOrder === true, g.name);
  const breaking = new Set(ringKinds.filter((k) => k.fatal).map((k) => k.expect));
  const reached = new Set(inOrder.map((g) => ringKinds.find((k) => k.name === g.name)?.expect));
  assert.equal([...breaking].filter((kind) => !reached.has(kind)), [], 'every chain error kind in an IN_ORDER case');
});

test.run();
