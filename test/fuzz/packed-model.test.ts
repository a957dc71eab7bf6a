/**
 * The fuzzer's packed rings without a device: the genome (packedGenome, packedPosition), what
 * writeCase lays out in guest memory, what the rules (expectRings) expect of it, and how the
 * runner tells the device's used elements from the driver's descriptors (completions, compare).
 * The device is played here by writing the used elements the rules expect, or deliberately
 * wrong ones, into the ring: a wrong prediction or a wrong write must come out as a mismatch.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DescFlags, PackedDescFlags } from 'vfio-user-ts';
import { TRANSMITQ } from '../../fuzz/layout.js';
import { Prng } from '../../fuzz/prng.js';
import { ringKind, ringKinds } from '../../fuzz/ring-cases.js';
import { desc, packedGenome, packedPosition, RingBuilder, type RingGenome } from '../../fuzz/ring-genome.js';
import type { Expectation } from '../../fuzz/ring-model.js';
import { compare, completions } from '../../fuzz/ring-runner.js';
import { deltaOf, writeUsed, written } from '../support/fuzz-rings.js';

const AVAIL = PackedDescFlags.avail;
const USED = PackedDescFlags.used;

/** Three transmit frames (one buffer, header and frame apart, indirect) in a ring of 4 from `base`. */
function threeFrames(base: number): RingGenome {
  const b = new RingBuilder('three', 'tx', 4);
  b.publish(b.txFrame(60), b.txFrame(100, 'split'), b.txFrame(200, 'indirect'));
  return packedGenome(b.build(), 'three', base);
}

test('packedPosition: slots from the base round the ring, the wrap counter flipping at its end', () => {
  assert.equal([0, 1, 2, 3, 4].map((k) => packedPosition(0x8000 | 2, 4, k)), [
    { slot: 2, wrap: 1 },
    { slot: 3, wrap: 1 },
    { slot: 0, wrap: 0 },
    { slot: 1, wrap: 0 },
    { slot: 2, wrap: 0 },
  ]);
  assert.equal(packedPosition(3, 4, 1), { slot: 0, wrap: 1 }, 'a base on the wrap-0 lap');
  assert.equal(packedPosition(0x8000 | 9, 4, 0), { slot: 1, wrap: 1 }, 'a slot beyond the size is taken modulo it');
});

test('packedGenome: each chain in consecutive slots from the base, flagged on its lap, the head its id; a split avail.idx is refused', () => {
  const g = threeFrames(0x8000 | 2);
  assert.is(g.layout, 'packed');
  assert.equal(g.heads, [2, 3, 1]);
  const flags = new Map(g.table.map(([slot, d]) => [slot, d.flags]));
  assert.is(flags.get(2), AVAIL, 'one buffer, lap 1');
  assert.is(flags.get(3), AVAIL | DescFlags.next, 'the header, lap 1, NEXT');
  assert.is(flags.get(0), USED, 'the frame after the ring\'s end: lap 0');
  assert.is(flags.get(1), USED | DescFlags.indirect, 'indirect, lap 0');
  assert.equal(g.table.map(([, d]) => d.next), [0, 1, 1, 3], 'every descriptor carries its chain\'s head as the id');
  const b = new RingBuilder('jump', 'tx', 4);
  b.publish(b.txFrame(60));
  b.setAvailIdx(9);
  assert.throws(() => packedGenome(b.build(), 'jump', 0x8000), /avail\.idx/);
});

test('writeCase: packed descriptors (id at 12, flags at 14), the driver\'s event suppression; a truncation case\'s later chains stay unavailable (flags 0) until published', () => {
  const b = new RingBuilder('cut', 'tx', 4);
  b.publish(b.txFrame(60), b.txFrame(70));
  b.truncateAfter(1, 0x10000);
  const g = packedGenome(b.build(), 'cut', 0x8000);
  g.driverEvent = [0x8003, 2];
  const { memory, queue, publishRest } = written(g);
  const tx = queue(TRANSMITQ);
  const u16 = (slot: number, offset: number): number => memory.view.getUint16(memory.gpaToOffset(tx.descGpa + 16 * slot + offset), true);
  assert.equal([u16(0, 12), u16(0, 14), u16(1, 12), u16(1, 14)], [0, AVAIL, 1, 0]);
  assert.equal([memory.view.getUint16(memory.gpaToOffset(tx.availGpa), true), memory.view.getUint16(memory.gpaToOffset(tx.availGpa + 2), true)], [0x8003, 2]);
  publishRest();
  assert.is(u16(1, 14), AVAIL);
});

test('the rules: chains across the ring\'s end are taken, each used element in its chain\'s first slot with that lap\'s wrap counter and the chain\'s id', () => {
  const { expected } = written(threeFrames(0x8000 | 2));
  assert.ok(expected.certain);
  assert.equal(expected.errors, {});
  assert.is(expected.txFrames, 3);
  assert.equal(expected.txElements, [
    { slot: 2, wrap: 1, id: 0, length: 0, chains: 1 },
    { slot: 3, wrap: 1, id: 1, length: 0, chains: 1 },
    { slot: 1, wrap: 0, id: 3, length: 0, chains: 1 },
  ]);
});

test('the rules: a chain flagged for the wrong lap, or as used, is not available; nor is anything after it; no error', () => {
  for (const bits of [0, USED, AVAIL | USED]) {
    const g = threeFrames(0x8000);
    g.table.find(([slot]) => slot === g.heads[1])![1].flags = bits | DescFlags.next;
    const { expected } = written(g);
    assert.is(expected.txFrames, 1, `flags 0x${bits.toString(16)}`);
    assert.is(expected.txUsed, 1);
    assert.equal(expected.errors, {});
    assert.is(expected.needsReset, false);
  }
});

test('the rules: the wrap bits of a chain\'s later descriptors say nothing (the driver writes the first flags last)', () => {
  const g = threeFrames(0x8000);
  const second = g.table.find(([slot]) => slot === g.heads[1]! + 1)![1];
  second.flags = USED | AVAIL;
  assert.is(written(g).expected.txFrames, 3);
});

test('the rules: ids never offered come back as the chain\'s last descriptor names them', () => {
  const g = threeFrames(0x8000);
  g.table.find(([slot]) => slot === 1)![1].next = 0x7777; // the header of the split chain: not its id
  g.table.find(([slot]) => slot === 2)![1].next = 0xffff; // its last descriptor
  g.table.find(([slot]) => slot === 3)![1].next = 0; // the indirect chain: a repeat of the first id
  assert.equal(written(g).expected.txElements.map((u) => u.id), [0, 0xffff, 0]);
});

test('the rules: a chain whose NEXT goes round the whole ring is chainTooLong; one reaching slots of earlier chains is uncertain', () => {
  const loop = ringKind('packed-tx-loop').build(new Prng('loop'));
  const e = written(loop).expected;
  assert.ok(e.certain);
  assert.equal(e.errors, { chainTooLong: 1 });
  assert.is(e.needsReset, true);
  // Two frames, then NEXT on every slot after them: the chain comes round into the frames' slots.
  const b = new RingBuilder('reuse', 'tx', 4);
  b.publish(b.txFrame(60), b.txFrame(60));
  const g = packedGenome(b.build(), 'reuse', 0x8000);
  g.table.push([2, desc(0x140000, 12, AVAIL | DescFlags.next, 9)], [3, desc(0x140100, 60, AVAIL | DescFlags.next, 9)]);
  g.heads.push(2);
  assert.is(written(g).expected.certain, false);
});

test('the rules: a receive frame over packed chains, each used element with the bytes written into it', () => {
  const b = new RingBuilder('rx', 'rx', 8, { mergeable: true });
  b.publish(b.rxBuffers([12 + 40]), b.rxBuffers([100]), b.rxBuffers([2048]));
  b.feed(120, 60);
  const { expected } = written(packedGenome(b.build(), 'rx', 0x8000 | 6));
  assert.ok(expected.certain);
  assert.is(expected.rxFrames, 2);
  assert.equal(expected.rxElements, [
    { slot: 6, wrap: 1, id: 0, length: 52, chains: 1 },
    { slot: 7, wrap: 1, id: 1, length: 80, chains: 1 },
    { slot: 0, wrap: 0, id: 2, length: 72, chains: 1 },
  ]);
});

test('every packed generator builds packed genomes whose expectation holds its own pattern', () => {
  const packed = ringKinds.filter((k) => k.layout === 'packed');
  assert.ok(packed.length >= 30, `${packed.length} packed generators`);
  for (const kind of packed) {
    for (const seed of [1, 2, 3]) {
      const g = kind.build(new Prng(`packed-model:${kind.name}:${seed}`));
      assert.is(g.layout, 'packed', kind.name);
      const { expected } = written(g);
      // A truncation's own kind is the runner's to add (finishTruncation), not the rules'.
      if (!expected.certain || g.truncate) continue;
      if (kind.expect === 'none') assert.equal(expected.errors, {}, `${kind.name} #${seed}`);
      else assert.ok((expected.errors[kind.expect] ?? 0) >= 1, `${kind.name} #${seed}: ${JSON.stringify(expected.errors)}`);
      assert.is(expected.needsReset, kind.fatal, `${kind.name} #${seed}`);
    }
  }
});

test('completions and compare: the elements the rules expect match; a wrong id, a stray element, a wrong prediction are mismatches (negative controls)', () => {
  const { memory, queue, expected, ring } = written(threeFrames(0x8000 | 2));
  const tx = queue(TRANSMITQ);
  const progress = (): { txUsed: number; rxUsed: number; problems: string[] } => {
    const c = completions(memory, tx, 'transmitq', 'packed', expected.txElements, ring);
    return { txUsed: c.count, rxUsed: 0, problems: c.problems };
  };
  assert.equal(compare(expected, deltaOf(expected), progress()), ['transmitq chains used: expected 3, device 0'], 'nothing written yet');
  writeUsed(memory, tx, 'packed', expected.txElements);
  assert.equal(compare(expected, deltaOf(expected), progress()), [], 'a device that did what the rules say');

  const wrongPrediction: Expectation = { ...expected, errors: { chainTooLong: 1 }, txFrames: 2 };
  assert.equal(compare(wrongPrediction, deltaOf(expected), progress()), ['transmitq.frames: expected 2, device 3', 'errors.chainTooLong: expected 1, device 0']);

  writeUsed(memory, tx, 'packed', [{ ...expected.txElements[1]!, id: 42 }]);
  const wrongId = compare(expected, deltaOf(expected), progress());
  assert.is(wrongId[0], 'transmitq chains used: expected 3, device 1');
  assert.match(wrongId[1]!, /transmitq slot 3: the device wrote id 42 length 0 flags 0x8080, the rules say id 1 length 0 flags 0x8080/);
  writeUsed(memory, tx, 'packed', [expected.txElements[1]!, { slot: 0, wrap: 0, id: 5, length: 0, chains: 1 }]);
  assert.equal(compare(expected, deltaOf(expected), progress()), ['transmitq slot 0: the device wrote id 5 length 0 flags 0x0, the rules say nothing']);
});

test.run();
