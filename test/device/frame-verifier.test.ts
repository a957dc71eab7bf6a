import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace } from 'vfio-user-ts';
import { createCounters, describeCounters } from '../../device/counters.js';
import { FrameVerifier } from '../../device/frame-verifier.js';
import { DEVICE_IP, GUEST_IP, parseMac, writeTestFrame } from '../../device/test-frame.js';

const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('02:00:00:00:00:01'), srcIp: GUEST_IP, dstIp: DEVICE_IP };

function run(sequence: Array<[flow: number, seq: number]>, corruptAt = -1) {
  const counters = createCounters();
  const verifier = new FrameVerifier(counters);
  const space = byteSpace(new ArrayBuffer(128));
  sequence.forEach(([flow, seq], i) => {
    writeTestFrame(space.view, 0, 100, addresses, flow, seq);
    if (i === corruptAt) space.view.setUint8(80, space.view.getUint8(80) ^ 1);
    verifier.check(space, 0, 100);
  });
  return describeCounters(counters).verification;
}

test('in order: all verified, no gaps', () => {
  assert.equal(run([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]), { verified: 5, corrupt: 0, duplicates: 0, outOfOrder: 0, gaps: 0, otherFrames: 0 });
});

test('a lost frame is a gap until it arrives late', () => {
  assert.is(run([[0, 0], [0, 2], [0, 3]]).gaps, 1);
  assert.equal(run([[0, 0], [0, 2], [0, 1]]), { verified: 3, corrupt: 0, duplicates: 0, outOfOrder: 1, gaps: 0, otherFrames: 0 });
});

test('duplicates and corrupt frames are counted, not verified', () => {
  assert.equal(run([[0, 0], [0, 1], [0, 1], [0, 0]]), { verified: 2, corrupt: 0, duplicates: 2, outOfOrder: 0, gaps: 0, otherFrames: 0 });
  assert.equal(run([[0, 0], [0, 1]], 1), { verified: 1, corrupt: 1, duplicates: 0, outOfOrder: 0, gaps: 0, otherFrames: 0 });
});

test('sequence numbers beyond the window slide it without false duplicates', () => {
  const v = run([[0, 0], [0, 70000], [0, 70001], [0, 4464]]);
  assert.is(v.duplicates, 0, 'seq 4464 (same slot as 70000) is late, not a duplicate');
  assert.is(v.outOfOrder, 1);
});

test('non-test frames are counted apart', () => {
  const counters = createCounters();
  const space = byteSpace(new ArrayBuffer(64));
  new FrameVerifier(counters).check(space, 0, 64);
  assert.is(describeCounters(counters).verification.otherFrames, 1);
});

test.run();
