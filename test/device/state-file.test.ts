// The state file (--state): a restart continues from the newest commit whose used.idx the ring
// shows, so a kill between committing a burst and publishing it cannot count the burst twice.
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

test('restore takes the newest commit the ring published, else the one before', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-state-'));
  try {
    const path = join(dir, 'state');
    const first = new StateFile(path);
    assert.is(first.restore(0), null, 'a fresh file has no commit');
    first.commit(10, counters(10), null);
    first.commit(20, counters(20), (into) => into.fill(-1).set([19], 0));
    first.close();
    // Killed after committing used.idx 20 and before publishing it: the ring shows 10.
    const second = new StateFile(path);
    const back = second.restore(10)!;
    assert.is(back.usedIdx, 10);
    assert.is(back.counters[Counter.txFrames], 10);
    assert.is(back.flows, null);
    // Had it published, the newest commit is taken, with the verifier's flows.
    const newest = second.restore(20)!;
    assert.is(newest.counters[Counter.txFrames], 20);
    assert.is(newest.flows![0], 19);
    assert.is(newest.flows!.length, MAX_FLOWS);
    // used.idx past both commits (QEMU dropped chains itself while the device was gone): the
    // older one, since the newest may never have been published; the rest completed elsewhere.
    const past = second.restore(30)!;
    assert.is(past.counters[Counter.txFrames], 10);
    assert.is(past.completedElsewhere, 20);
    assert.is(second.restore(15)!.completedElsewhere, 5, 'the newest (20) is ahead: not published');
    assert.is(second.restore(5), null, 'both commits ahead of the ring: another ring');
    // The next commit overwrites the older slot (10), never the newest.
    second.commit(30, counters(30), null);
    assert.is(second.restore(20)!.counters[Counter.txFrames], 20);
    assert.is(second.restore(10), null);
    second.close();
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
