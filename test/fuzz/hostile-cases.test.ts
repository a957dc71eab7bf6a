/**
 * Every hostile pattern of the fuzzer as its own deterministic test, against one `zcnic device`
 * child process (the reflect port, so receive rings see frames): each ring case must move
 * exactly its error counter (and stop the ring, or not), deliver the frames accepted before the
 * error and publish their used elements (once per pattern with VIRTIO_F_IN_ORDER, the transmitq
 * publishing each burst as one element); each message case must get a REPLY_ACK failure (with
 * REPLY_ACK) or a disconnect (without) and be counted under its reason. Afterwards the device
 * must still serve a valid frontend, hold no more fds than before, and have logged within its
 * rate limits.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DescFlags, FeatureBit, featureMask } from 'vfio-user-ts';
import { trafficCheck } from '../../fuzz/fuzzer.js';
import { DEVICE_BURST, GUEST_BASE, GUEST_END, MAX_FRAME, RECEIVEQ, TRANSMITQ } from '../../fuzz/layout.js';
import { messageKind, messageKinds, type MessageCase } from '../../fuzz/message-cases.js';
import { runMessageCase } from '../../fuzz/message-runner.js';
import { Prng } from '../../fuzz/prng.js';
import { ringKinds } from '../../fuzz/ring-cases.js';
import { descWords, packedGenome, RingBuilder, type RingGenome } from '../../fuzz/ring-genome.js';
import type { Expectation } from '../../fuzz/ring-model.js';
import { compare, completions, expectCase, openRingSession, runRingCase, usedArea, writeCase, writtenCopy, type RingOutcome } from '../../fuzz/ring-runner.js';
import { difference, snapshot } from '../../fuzz/snapshot.js';
import { SpawnedTarget } from '../../fuzz/target.js';

const hostile = suite('hostile cases');
let target: SpawnedTarget;
let fdsBefore: number | null = null;

hostile.before(async () => {
  target = await SpawnedTarget.start();
  assert.equal(await target.request({ cmd: 'setPort', port: 'reflect' }), { ok: true });
  fdsBefore = target.openFds();
});

// A case that kills the device must not fail every later one too.
hostile.before.each(async () => {
  if ((await target.check()) === null) return;
  await target.restart();
  assert.equal(await target.request({ cmd: 'setPort', port: 'reflect' }), { ok: true });
  fdsBefore = target.openFds();
});

hostile.after(async () => {
  await target?.close();
});

/** Runs a ring case and checks the device against the rules; returns the outcome. */
async function ring(genome: RingGenome): Promise<RingOutcome & { actual: NonNullable<RingOutcome['actual']> }> {
  const outcome = await runRingCase(target, genome, { reflect: true });
  assert.ok(outcome.expected.certain, 'the case does not depend on timing');
  assert.equal(outcome.mismatches, [], `the device differs from the rules: ${outcome.mismatches.join('; ')}\n${JSON.stringify(genome)}`);
  assert.ok(outcome.actual, 'counters read');
  return outcome as RingOutcome & { actual: NonNullable<RingOutcome['actual']> };
}

// ---- rings: each generator, three seeds ---------------------------------------------------------

for (const kind of ringKinds) {
  for (const seed of [1, 2, 3]) {
    // Seeds 1 and 2 without IN_ORDER, seed 3 with it, whatever the generator drew.
    const inOrder = seed === 3;
    hostile(`ring ${kind.name} #${seed}${inOrder ? ' (IN_ORDER)' : ''}: ${kind.expect === 'none' ? 'no error' : `errors.${kind.expect}${kind.fatal ? ', DEVICE_NEEDS_RESET' : ', frame dropped'}`}`, async () => {
      const genome: RingGenome = { ...kind.build(new Prng(`hostile:${kind.name}:${seed}`)), inOrder };
      const outcome = await ring(genome);
      assert.is(outcome.expected.inOrder, inOrder, 'IN_ORDER negotiated as the case asks');
      if (kind.expect === 'none') {
        assert.equal(outcome.actual.errors, {});
        assert.ok(outcome.actual.txFrames + outcome.actual.rxFrames > 0, 'traffic moved');
      } else {
        assert.ok((outcome.expected.errors[kind.expect] ?? 0) >= 1, `the case holds its pattern: ${JSON.stringify(outcome.expected.errors)}`);
        assert.is(outcome.actual.errors[kind.expect], outcome.expected.errors[kind.expect], `errors.${kind.expect}`);
      }
      assert.is(outcome.actual.needsReset, kind.fatal, 'needsReset');
      assert.is(outcome.actual.txFrames, outcome.expected.txFrames, 'frames accepted before the error are delivered and counted');
      assert.is(outcome.txUsed, outcome.expected.txUsed, 'and their chains returned');
    });
  }
}

// ---- rings: the boundary values of the issue, spelled out ------------------------------------

function txWith(name: string, build: (b: RingBuilder) => void): RingGenome {
  const b = new RingBuilder(name, 'tx', 16);
  const valid = b.txFrame(60);
  b.publish(valid);
  build(b);
  return b.build();
}

function outsideBuffer(name: string, addrHi: number, addrLo: number, len: number): RingGenome {
  return txWith(name, (b) => {
    const head = b.takeDescriptors(1);
    b.setDescriptor(head, descWords(addrHi, addrLo, len, 0));
    b.publish(head);
  });
}

const boundaries: [string, RingGenome][] = [
  ['a buffer just past the end of guest memory', outsideBuffer('past-end', 0, GUEST_END, 1)],
  ['a buffer that starts inside and ends outside', outsideBuffer('straddle', 0, GUEST_END - 8, 16)],
  ['a buffer before the first region', outsideBuffer('before-start', 0, GUEST_BASE - 64, 64)],
  ['a buffer whose end wraps 2^64', outsideBuffer('wrap', 0xffffffff, 0xfffffff0, 0x20)],
  ['a length of 0xFFFFFFFF at a valid address', outsideBuffer('huge-length', 0, GUEST_BASE + 0x30000, 0xffffffff)],
  ['an address at 2^53', outsideBuffer('2^53', 0x200000, 0, 16)],
];
for (const [what, genome] of boundaries) {
  hostile(`ring boundary: ${what} is bufferOutsideMemory, the frame before it delivered`, async () => {
    const outcome = await ring(genome);
    assert.equal(outcome.actual.errors, { bufferOutsideMemory: 1 });
    assert.is(outcome.actual.txFrames, 1);
    assert.is(outcome.actual.needsReset, true);
  });
}

hostile('ring boundary: a frame of exactly 64 KiB passes, one byte more is txFrameTooLarge', async () => {
  const b = new RingBuilder('frame-sizes', 'tx', 16);
  b.publish(b.txFrame(MAX_FRAME), b.txFrame(MAX_FRAME + 1), b.txFrame(60));
  const outcome = await ring(b.build());
  assert.equal(outcome.actual.errors, { txFrameTooLarge: 1 });
  assert.is(outcome.actual.txFrames, 2);
  assert.is(outcome.actual.needsReset, false);
});

hostile('ring boundary: a receive chain broken after two placed frames: both published, then DEVICE_NEEDS_RESET', async () => {
  const b = new RingBuilder('rx-publish', 'rx', 16);
  const heads = [b.rxBuffers([2048]), b.rxBuffers([2048])];
  const bad = b.takeDescriptors(1);
  b.setDescriptor(bad, descWords(0, 0x10, 2048, DescFlags.write));
  b.publish(...heads, bad);
  b.feed(100, 200, 300);
  const outcome = await ring(b.build());
  assert.is(outcome.rxUsed, 2);
  assert.is(outcome.actual.rxFrames, 2);
  assert.is(outcome.actual.rxNoBuffers, 1);
  assert.equal(outcome.actual.errors, { bufferOutsideMemory: 1 });
});

// ---- rings under IN_ORDER: bursts as one used element -------------------------------------------

/** Two frames, a chain whose buffer lies at 2^53, a frame after it, in a ring of 16, negotiating IN_ORDER. */
function errorMidBurst(): RingGenome {
  const b = new RingBuilder('error-mid-burst', 'tx', 16);
  const frames = [b.txFrame(60), b.txFrame(70, 'split')];
  const bad = b.takeDescriptors(1);
  b.setDescriptor(bad, descWords(0x200000, 0, 64, 0));
  b.publish(...frames, bad, b.txFrame(80));
  return { ...b.build(), inOrder: true };
}

hostile('IN_ORDER, split: a chain that breaks a rule mid-burst: the two frames before it are one used element in slot 0 naming the second head, used.idx 2', async () => {
  const outcome = await ring(errorMidBurst());
  assert.equal(outcome.expected.txElements, [{ slot: 0, wrap: 0, id: 1, length: 0, chains: 2 }]);
  assert.is(outcome.txUsed, 2);
  assert.equal(outcome.actual.errors, { bufferOutsideMemory: 1 });
  assert.is(outcome.actual.txFrames, 2);
});

hostile('IN_ORDER, packed, from the ring\'s last slot: the same two frames (the second on lap 0) are one used descriptor in slot 15 with wrap counter 1', async () => {
  const outcome = await ring({ ...packedGenome(errorMidBurst(), 'error-mid-burst', 0x8000 | 15), inOrder: true });
  assert.equal(outcome.expected.txElements, [{ slot: 15, wrap: 1, id: 1, length: 0, chains: 2 }]);
  assert.is(outcome.txUsed, 2);
  assert.equal(outcome.actual.errors, { bufferOutsideMemory: 1 });
});

hostile(`IN_ORDER: 600 chains made available at once are bursts of ${DEVICE_BURST}, ${DEVICE_BURST} and 88 chains, one used element each, on split and packed rings`, async () => {
  const b = new RingBuilder('long-burst', 'tx', 1024);
  b.publish(...Array.from({ length: 600 }, (_, i) => b.txFrame(60 + (i % 7))));
  const split: RingGenome = { ...b.build(), inOrder: true };
  for (const g of [split, { ...packedGenome(split, 'long-burst', 0x8000 | 1000), inOrder: true }]) {
    const outcome = await ring(g);
    assert.equal(outcome.expected.txElements.map((u) => u.chains), [DEVICE_BURST, DEVICE_BURST, 600 - 2 * DEVICE_BURST], g.layout ?? 'split');
    assert.is(outcome.txUsed, 600);
    assert.is(outcome.actual.txFrames, 600);
  }
});

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs transmit case `g` as runRingCase does, until the device matches the rules; then judges the
 * same rings with a deliberately wrong model: the rules worked out as if IN_ORDER had not been
 * negotiated (one used element per chain). Returns what each found.
 */
async function judgedByWrongModel(g: RingGenome): Promise<{ right: string[]; wrong: string[] }> {
  const session = await openRingSession(target, g, 5000);
  try {
    const before = snapshot(await target.stats());
    const written = writtenCopy(session, g);
    writeCase(session, g);
    const view = { memory: written, queue: (index: number) => session.queue(index), features: session.features };
    const right = expectCase(view, g, true);
    const wrong = expectCase({ ...view, features: session.features & ~featureMask(FeatureBit.inOrder) }, g, true);
    const [txWritten, rxWritten] = [TRANSMITQ, RECEIVEQ].map((index) => {
      const area = usedArea(right.layout, session.queue(index));
      return written.slice(area.gpa, area.bytes);
    });
    const judge = async (e: Expectation): Promise<string[]> => {
      const actual = difference(before, snapshot(await target.stats()));
      const t = completions(session.memory, session.queue(TRANSMITQ), 'transmitq', e.layout, e.txElements, txWritten!);
      const r = completions(session.memory, session.queue(RECEIVEQ), 'receiveq', e.layout, e.rxElements, rxWritten!);
      return compare(e, actual, { txUsed: t.count, rxUsed: r.count, problems: [...t.problems, ...r.problems] });
    };
    session.kick(RECEIVEQ);
    session.kick(TRANSMITQ);
    const deadline = Date.now() + 2000;
    let found = await judge(right);
    while (found.length > 0 && Date.now() < deadline) {
      await pause(1);
      found = await judge(right);
    }
    return { right: found, wrong: await judge(wrong) };
  } finally {
    session.close();
  }
}

/** Three frames (one buffer, header and frame apart, one more buffer): heads 0, 1 and 3 of a ring of 16, negotiating IN_ORDER. */
function threeFrames(): RingGenome {
  const b = new RingBuilder('three', 'tx', 16);
  b.publish(b.txFrame(60), b.txFrame(100, 'split'), b.txFrame(200));
  return { ...b.build(), inOrder: true };
}

hostile('negative control, split: a model that predicts one used element per chain under IN_ORDER finds mismatches in the device\'s used ring', async () => {
  const { right, wrong } = await judgedByWrongModel(threeFrames());
  assert.equal(right, [], 'the right model');
  assert.equal(wrong, [
    'transmitq used slot 0 holds id 3 length 0, the rules say id 0 length 0',
    'transmitq used slot 1 holds id 0 length 0, the rules say id 1 length 0',
    'transmitq used slot 2 holds id 0 length 0, the rules say id 3 length 0',
  ]);
});

hostile('negative control, packed: a model that predicts one used element per chain under IN_ORDER finds mismatches in the device\'s ring', async () => {
  const { right, wrong } = await judgedByWrongModel({ ...packedGenome(threeFrames(), 'three', 0x8000 | 14), inOrder: true });
  assert.equal(right, [], 'the right model');
  assert.is(wrong[0], 'transmitq chains used: expected 3, device 0');
  assert.match(wrong[1]!, /^transmitq slot 14: the device wrote id 3 length 0 flags 0x8080, the rules say id 0 length 0 flags 0x8080$/);
});

// ---- cases a fuzz run found -------------------------------------------------------------------

/**
 * `zcnic fuzz --seconds 300 --seed 156198693`, case 20715 (chaos-rx), reported errors.availIndexJump
 * 1 and DEVICE_NEEDS_RESET where the rules said neither. The receive chain's one buffer (0x104000,
 * 924 bytes) is the transmitq's avail ring, and the reflected 1236-byte frame needs two chains in
 * a ring of one: the device writes the header and 912 bytes into the buffer, finds no second
 * chain and gives it back, and the transmitq then reads the header's zeros as avail.idx. The
 * device is right (the driver put a receive buffer over its own ring); the rules left out the
 * writes of a frame that was given back, so they took the case as certain.
 */
const FUZZ_156198693_CASE_20715: RingGenome = {
  name: 'chaos-rx',
  side: 'rx',
  size: 1,
  indirect: false,
  mergeable: true,
  version1: false,
  table: [[0, { addrLo: 1064960, addrHi: 0, len: 924, flags: 2, next: 0 }]],
  tables: [
    [
      { addrLo: 1194000, addrHi: 0, len: 1746, flags: 6, next: 0 },
      { addrLo: 1181472, addrHi: 0, len: 1555, flags: 2, next: 0 },
      { addrLo: 1179776, addrHi: 0, len: 329257122, flags: 4, next: 0 },
      { addrLo: 1183280, addrHi: 0, len: 16, flags: 1, next: 0 },
    ],
  ],
  heads: [0],
  availIdx: null,
  feed: [1236],
};

hostile('fuzz seed 156198693 case 20715 (chaos-rx): a frame given back after writing into the transmitq\'s avail ring is timing-dependent, not a mismatch', async () => {
  const outcome = await runRingCase(target, FUZZ_156198693_CASE_20715, { reflect: true });
  assert.is(outcome.expected.certain, false, 'the rules see the device write over the avail ring they read');
  assert.equal(outcome.mismatches, []);
  assert.is(await target.check(), null, 'the device is alive and answering');
});

// ---- messages: each generator, with and without REPLY_ACK -----------------------------------

for (const kind of messageKinds) {
  for (const ack of [true, false]) {
    hostile(`message ${kind.name} (${ack ? 'REPLY_ACK: a failure reply' : 'no REPLY_ACK: a disconnect'})`, async () => {
      const c: MessageCase = { ...kind.build(new Prng(`hostile:${kind.name}`)), ack };
      const outcome = await runMessageCase(target, c);
      assert.equal(outcome.mismatches, [], `${outcome.mismatches.join('; ')}\noutcomes ${outcome.outcomes.join(', ')}\n${JSON.stringify(c)}`);
      const rejected = c.steps.findIndex((s) => s.expect === 'reject');
      if (rejected >= 0 && c.steps[rejected]!.flags === undefined) assert.is(outcome.outcomes[rejected], ack ? 'refused' : 'disconnect');
      if (c.reason) {
        const counted = Object.entries(outcome.protocol ?? {}).filter(([k]) => new RegExp(c.reason!).test(k));
        assert.ok(counted.length >= 1, `counted under /${c.reason}/: ${JSON.stringify(outcome.protocol)}`);
      }
      assert.is(await target.check(), null, 'the device is alive and answering');
    });
  }
}

// ---- afterwards ----------------------------------------------------------------------------

hostile('a storm of 300 refusals is counted 300 times and logged within the rate limit', async () => {
  target.takeLog();
  const started = Date.now();
  const c: MessageCase = { ...messageKind('unknown-request').build(new Prng('storm')), ack: true };
  c.steps = Array.from({ length: 300 }, () => ({ ...c.steps[0]!, request: 99 }));
  const outcome = await runMessageCase(target, c);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(outcome.mismatches, []);
  assert.equal(outcome.protocol, { 'request N: unknown or unsupported request': 300 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const refusals = target.takeLog().filter((l) => /refused request 99/.test(l));
  // 20 lines a second (packages/vfio-user-ts/src/rate-limited-log.ts), then one line saying how many were left out.
  assert.ok(refusals.length <= 20 * (Math.ceil(seconds) + 1), `${refusals.length} log lines in ${seconds} s`);
});

hostile('a fresh valid frontend still moves an exact frame count; no fd was leaked', async () => {
  assert.equal(await trafficCheck(target, true, 64), []);
  // Our last disconnect is handled asynchronously: let the count settle.
  let fds = target.openFds();
  for (let i = 0; i < 50 && fdsBefore !== null && fds !== null && fds > fdsBefore; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    fds = target.openFds();
  }
  assert.ok(fdsBefore !== null && fds !== null && fds <= fdsBefore, `fds: ${fdsBefore} before, ${fds} after`);
});

hostile.run();
