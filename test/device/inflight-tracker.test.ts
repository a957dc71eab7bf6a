// InflightTracker on its own, against a ring described by plain arrays: the region's layout as
// the protocol package defines it (InflightSplit), the order of marks and counters, recovery.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { INFLIGHT_SPLIT_VERSION, InflightSplit, inflightQueueBytes } from 'vfio-user-ts';
import { InflightTracker, type InflightArea, type RingAtStart } from '../../device/inflight-tracker.js';
import { inflightCounter as counter, inflightHeader, inflightMark as mark, setInflightHeaderField } from '../support/inflight-region.js';

const SIZE = 8;

function ring(overrides: Partial<RingAtStart> & { avail?: number[]; used?: number[] } = {}): RingAtStart {
  const avail = overrides.avail ?? [];
  const used = overrides.used ?? [];
  return {
    size: SIZE,
    usedIdx: 0,
    availIdx: avail.length,
    base: 0,
    usedHead: (index) => used[index % SIZE]!,
    availHead: (index) => avail[index % SIZE]!,
    ...overrides,
  };
}

function attach(area: InflightArea, at: RingAtStart): InflightTracker {
  const tracker = InflightTracker.attach(area, at);
  if (typeof tracker === 'string') throw new Error(tracker);
  return tracker;
}

test('attach: a fresh region gets the version, desc_num and used_idx at the protocol offsets', () => {
  const area = { buffer: new ArrayBuffer(2 * inflightQueueBytes(SIZE)), offset: inflightQueueBytes(SIZE) };
  const tracker = attach(area, ring({ usedIdx: 5, base: 9 }));
  assert.equal(tracker.recovery, { fresh: true, resubmitted: 0, publishedUnrecorded: 0, baseGiven: 9, resumeAt: 9 });
  assert.is(inflightHeader(area).version, INFLIGHT_SPLIT_VERSION);
  assert.is(inflightHeader(area).descNum, SIZE);
  assert.is(inflightHeader(area).usedIdx, 5);
  assert.is(new Uint8Array(area.buffer)[0], 0, 'the queue before it is untouched');
});

test('take counts in take order; publish clears marks, sets last_batch_head and used_idx; clearAll forgets all', () => {
  const area = { buffer: new ArrayBuffer(inflightQueueBytes(SIZE)), offset: 0 };
  const tracker = attach(area, ring());
  tracker.take(0, 6);
  tracker.take(1, 3);
  tracker.take(2, SIZE + 1); // out of range: never marked, and untake skips it
  assert.equal([mark(area, 6), mark(area, 3)], [1, 1]);
  assert.equal([counter(area, 6), counter(area, 3)], [1n, 2n]);
  tracker.untake(3, 1);
  tracker.pushUsed(0, 6);
  tracker.beforePublish(1);
  assert.is(inflightHeader(area).lastBatchHead, 6);
  assert.is(mark(area, 6), 1, 'inflight until published');
  tracker.published(0, 1);
  assert.equal([mark(area, 6), mark(area, 3)], [0, 1]);
  assert.is(inflightHeader(area).usedIdx, 1);
  tracker.clearAll();
  assert.is(mark(area, 3), 0);
  assert.is(inflightHeader(area).usedIdx, 0);
});

test('recovery: marked heads in counter order must be the avail slots from used.idx; the counter goes on', () => {
  const area = { buffer: new ArrayBuffer(inflightQueueBytes(SIZE)), offset: 0 };
  const dying = attach(area, ring());
  for (const [slot, head] of [[0, 4], [1, 1], [2, 7]] as const) dying.take(slot, head);
  dying.pushUsed(0, 4);
  dying.beforePublish(1);
  // Killed after used.idx 1 was stored, before the marks were cleared.
  const tracker = attach(area, ring({ usedIdx: 1, base: 3, avail: [4, 1, 7], used: [4] }));
  assert.equal(tracker.recovery, { fresh: false, resubmitted: 2, publishedUnrecorded: 1, baseGiven: 3, resumeAt: 1 });
  assert.equal([mark(area, 4), mark(area, 1), mark(area, 7)], [0, 0, 0], 'served again: marked when taken again');
  tracker.take(1, 1);
  assert.is(counter(area, 1), 4n);

  const other = { buffer: new ArrayBuffer(inflightQueueBytes(SIZE)), offset: 0 };
  const swapped = attach(other, ring());
  swapped.take(0, 2);
  swapped.take(1, 5);
  assert.match(InflightTracker.attach(other, ring({ avail: [5, 2] })) as string, /out of order/);
});

test('attach refuses a region of another version', () => {
  const area = { buffer: new ArrayBuffer(inflightQueueBytes(SIZE)), offset: 0 };
  setInflightHeaderField(area, InflightSplit.version, INFLIGHT_SPLIT_VERSION + 1);
  assert.match(InflightTracker.attach(area, ring()) as string, /version 2, expected 1/);
});

test.run();
