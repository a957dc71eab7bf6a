// What each bench session runs, the proof that a copying sink copied, and the heap verdict.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { heapVerdict } from '../../bench/heap.js';
import {
  copyShortfall,
  framesInspected,
  heapCaseSpec,
  parseHeapLoads,
  perFrameWork,
  REFLECT_BURSTS,
  sessionPlan,
} from '../../bench/plan.js';

test('sessionPlan: transmitq pairs DPDK rxonly with the copying sink by default', () => {
  const spec = { direction: 'transmitq' as const, frameSize: 1500 };
  assert.equal(sessionPlan(spec, 'dpdk', 'copy'), {
    frontend: { mode: 'txonly', txPktLen: 1500 },
    dpdk: { mode: 'rxonly' },
  });
  assert.equal(sessionPlan(spec, 'zcnic', 'copy'), {
    frontend: { mode: 'txonly', txPktLen: 1500 },
    zcnic: { port: 'sink', verify: true },
  });
  assert.equal(sessionPlan(spec, 'zcnic', 'count').zcnic, { port: 'sink', verify: false });
});

test('sessionPlan: receiveq pairs DPDK txonly with the generator at the same size', () => {
  const spec = { direction: 'receiveq' as const, frameSize: 64 };
  assert.equal(sessionPlan(spec, 'dpdk', 'copy'), { frontend: { mode: 'rxonly' }, dpdk: { mode: 'txonly', txPktLen: 64 } });
  assert.equal(sessionPlan(spec, 'zcnic', 'copy'), {
    frontend: { mode: 'rxonly' },
    zcnic: { port: 'gen', verify: false, genSize: 64 },
  });
});

test('sessionPlan: reflect is an io loop seeded with tx_first, zcnic only', () => {
  const spec = heapCaseSpec('reflect', 1500);
  assert.equal(sessionPlan(spec, 'zcnic', 'copy'), {
    frontend: { mode: 'io', txPktLen: 1500, txFirstBursts: REFLECT_BURSTS },
    zcnic: { port: 'reflect', verify: false },
  });
  assert.throws(() => sessionPlan(spec, 'dpdk', 'copy'), /needs the zcnic device/);
});

test('perFrameWork: the table names the copy on both sides', () => {
  assert.match(perFrameWork('transmitq', 'dpdk', 'copy'), /copies the frame into an mbuf/);
  assert.match(perFrameWork('transmitq', 'zcnic', 'copy'), /copies the frame into scratch/);
  assert.match(perFrameWork('transmitq', 'zcnic', 'count'), /never reads/);
  assert.match(perFrameWork('receiveq', 'dpdk', 'copy'), /copies the frame into the buffer/);
  assert.match(perFrameWork('receiveq', 'zcnic', 'copy'), /copies the frame into the buffer/);
});

const stats = (frames: number, other: number, verify = true) => ({
  verify,
  transmitq: { frames, bytes: frames * 1500 },
  verification: { verified: 2, corrupt: 1, duplicates: 1, outOfOrder: 1, gaps: 0, otherFrames: other },
});

test('framesInspected / copyShortfall: every transmitq frame must have gone through the verifier', () => {
  // Out-of-order frames are also counted verified: not twice.
  assert.is(framesInspected(stats(100, 96)), 100);
  assert.is(copyShortfall(stats(100, 96)), null);
  assert.match(copyShortfall(stats(100, 95)) ?? '', /inspected 99 of 100/);
  assert.match(copyShortfall(stats(100, 96, false)) ?? '', /verification off/);
});

test('parseHeapLoads / heapCaseSpec', () => {
  assert.equal(parseHeapLoads('sink:64, gen:1500,reflect:1500'), [
    { load: 'sink', frameSize: 64 },
    { load: 'gen', frameSize: 1500 },
    { load: 'reflect', frameSize: 1500 },
  ]);
  assert.throws(() => parseHeapLoads('tap:64'), /sink\|gen\|reflect/);
  assert.throws(() => parseHeapLoads('gen:10'), /60\.\.9000/);
  assert.equal(heapCaseSpec('sink', 64), { direction: 'transmitq', frameSize: 64 });
  assert.equal(heapCaseSpec('gen', 1500), { direction: 'receiveq', frameSize: 1500 });
  assert.equal(heapCaseSpec('reflect', 1500), { direction: 'transmitq', frameSize: 1500, reflect: true });
});

const limits = { toleranceBytes: 1048576, collectionsPerSecond: 5, collectionsPerMillionFrames: 1 };

test('heapVerdict: flat without per-frame garbage, at any frame count', () => {
  // Measured: sink 64 B, 27.4 M frames in 6 s, 5 collections.
  assert.is(heapVerdict(-1.4 * 1048576, 5, 6, 27_400_000, limits), '');
  // Ten times the frames, same garbage: still flat.
  assert.is(heapVerdict(0, 5, 60, 274_000_000, limits), '');
});

test('heapVerdict: per-frame garbage fails on collections per frame even at a low rate', () => {
  // Measured: gen 1500 B, 19.5 M frames in 6 s, 534 collections (one view object per copy).
  assert.match(heapVerdict(0.7 * 1048576, 534, 6, 19_500_000, limits), /27\.385 collections per million frames/);
  // One object per frame at 0.1 Mpps: few collections a second, but per frame it shows.
  const slow = heapVerdict(0, 16, 60, 6_000_000, limits);
  assert.not.match(slow, /collections\/s/);
  assert.match(slow, /2\.667 collections per million frames/);
});

test('heapVerdict: growth beyond the tolerance and an idle run fail', () => {
  assert.match(heapVerdict(4.33 * 1048576, 0, 6, 6_700_000, limits), /grew 4\.33 MiB, over 1\.00 MiB/);
  assert.match(heapVerdict(0, 0, 6, 0, limits), /no frames moved/);
});

test.run();
