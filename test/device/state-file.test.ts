// The state file (--state): a restart continues from the commit marked published, so a kill
// between committing a burst and publishing it cannot count the burst twice, and counts what
// the ring's used.idx moved since as completed elsewhere.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COUNTER_COUNT, Counter } from '../../device/counters.js';
import { StateFile } from '../../device/datapath/state-file.js';
import { FrameVerifier, MAX_FLOWS } from '../../device/frame-verifier.js';
import { parseMac, writeTestFrame } from '../../device/test-frame.js';
import type { ByteSpace } from 'vfio-user-ts';

function counters(frames: number): Float64Array {
  const c = new Float64Array(COUNTER_COUNT);
  c[Counter.txFrames] = frames;
  c[Counter.testFramesVerified] = frames;
  return c;
}

test('restore takes the commit marked published; used.idx past it was completed elsewhere', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-state-'));
  try {
    const path = join(dir, 'state');
    const first = new StateFile(path);
    assert.is(first.restore(0), null, 'a fresh file has no commit');
    first.commit(10, counters(10), null);
    first.markPublished();
    first.commit(20, counters(20), (into) => into.fill(-1).set([19], 0));
    first.close();
    // Killed after committing used.idx 20 and before publishing it: the mark names 10.
    const second = new StateFile(path);
    const back = second.restore(10)!;
    assert.is(back.usedIdx, 10);
    assert.is(back.counters[Counter.txFrames], 10);
    assert.is(back.flows, null);
    assert.is(back.completedElsewhere, 0);
    // The frontend completed 20 chains itself (those of the unpublished burst among them).
    const past = second.restore(30)!;
    assert.is(past.counters[Counter.txFrames], 10);
    assert.is(past.completedElsewhere, 20);
    // Even when used.idx happens to equal the unpublished commit's, that commit is not taken.
    assert.is(second.restore(20)!.counters[Counter.txFrames], 10);
    assert.is(second.restore(5), null, 'the ring behind the published commit: another ring');
    // The new process commits next to the marked commit, never over it, until its own mark.
    second.commit(40, counters(40), null);
    assert.is(second.restore(40)!.usedIdx, 10, 'not marked yet');
    second.markPublished();
    assert.is(second.restore(40)!.counters[Counter.txFrames], 40);
    second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a published burst is continued from, not counted as completed elsewhere', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-state-'));
  try {
    const path = join(dir, 'state');
    const device = new StateFile(path);
    device.commit(10, counters(10), null);
    device.markPublished();
    device.commit(20, counters(20), (into) => into.fill(-1).set([19], 0));
    device.markPublished();
    device.close();
    // Killed after publishing used.idx 20; the frontend then completed 10 chains itself. The
    // old accounting took the commit at 10 and counted 20 as completed elsewhere.
    const next = new StateFile(path);
    const restored = next.restore(30)!;
    assert.is(restored.usedIdx, 20);
    assert.is(restored.counters[Counter.txFrames], 20);
    assert.is(restored.flows![0], 19);
    assert.is(restored.flows!.length, MAX_FLOWS);
    assert.is(restored.completedElsewhere, 10);
    next.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a verifier continued from saved flows counts a number at or below the highest as a duplicate', () => {
  const c = new Float64Array(COUNTER_COUNT);
  const verifier = new FrameVerifier(c);
  const saved = new Float64Array(MAX_FLOWS).fill(-1);
  saved[0] = 41;
  verifier.loadFlows(saved);
  const out = new Float64Array(MAX_FLOWS);
  verifier.saveFlows(out);
  assert.is(out[0], 41);
  assert.is(out[1], -1);
  const view = new DataView(new ArrayBuffer(128));
  const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('52:54:00:00:00:01'), srcIp: 1, dstIp: 2 };
  const send = (seq: number) => {
    writeTestFrame(view, 0, 128, addresses, 0, seq);
    verifier.check({ view } as unknown as ByteSpace, 0, 128);
  };
  send(41);
  assert.is(c[Counter.testFramesDuplicate], 1, 'seq 41 was counted before the restart');
  send(42);
  assert.is(c[Counter.testFramesVerified], 1);
  assert.is(c[Counter.testFrameGaps], 0);
});

test.run();
