import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEVICE_IP, GUEST_IP, ipv4SumWithoutIdAndChecksum, parseMac, patchTestFrameSeq, setTestFrameSeq, TestFrameVerdict, verifyTestFrame, writeTestFrame } from '../../device/test-frame.js';

const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('02:00:00:00:00:01'), srcIp: DEVICE_IP, dstIp: GUEST_IP };

test('a written frame verifies and carries flow and seq', () => {
  for (const length of [60, 64, 1514]) {
    const view = new DataView(new ArrayBuffer(length + 8));
    writeTestFrame(view, 8, length, addresses, 3, 2 ** 40 + 7);
    const result = { flow: -1, seq: -1 };
    assert.is(verifyTestFrame(view, 8, length, result), TestFrameVerdict.verified);
    assert.equal(result, { flow: 3, seq: 2 ** 40 + 7 });
  }
});

test('a template patched to another seq with the same low byte verifies as that seq', () => {
  const view = new DataView(new ArrayBuffer(128));
  writeTestFrame(view, 0, 128, addresses, 0, 5);
  setTestFrameSeq(view, 0, 5 + 256 * 9);
  const result = { flow: -1, seq: -1 };
  assert.is(verifyTestFrame(view, 0, 128, result), TestFrameVerdict.verified);
  assert.is(result.seq, 5 + 256 * 9);
});

test('the incremental patch gives the same frame as a full rewrite, across identification wraps', () => {
  const patched = new DataView(new ArrayBuffer(64));
  const fresh = new DataView(new ArrayBuffer(64));
  writeTestFrame(patched, 0, 64, addresses, 0, 7);
  const sum = ipv4SumWithoutIdAndChecksum(patched, 14);
  for (const seq of [7, 263, 0xffff + 7 - 0xff, 65543, 2 ** 33 + 7]) {
    if ((seq & 0xff) !== 7) continue;
    patchTestFrameSeq(patched, 0, seq, sum);
    writeTestFrame(fresh, 0, 64, addresses, 0, seq);
    assert.equal(new Uint8Array(patched.buffer), new Uint8Array(fresh.buffer), `seq ${seq}`);
  }
});

test('any changed byte makes it corrupt; other traffic is not a test frame', () => {
  const view = new DataView(new ArrayBuffer(100));
  const result = { flow: 0, seq: 0 };
  for (const at of [16, 24, 38, 50, 58, 99]) {
    writeTestFrame(view, 0, 100, addresses, 0, 1);
    view.setUint8(at, view.getUint8(at) ^ 0x40);
    assert.is(verifyTestFrame(view, 0, 100, result), TestFrameVerdict.corrupt, `byte ${at}`);
  }
  writeTestFrame(view, 0, 100, addresses, 0, 1);
  assert.is(verifyTestFrame(view, 0, 99, result), TestFrameVerdict.corrupt, 'truncated');
  view.setUint16(12, 0x86dd);
  assert.is(verifyTestFrame(view, 0, 100, result), TestFrameVerdict.notATestFrame);
  assert.throws(() => writeTestFrame(view, 0, 59, addresses, 0, 0), /at least 60/);
  assert.throws(() => parseMac('52:54:00:12:34'), /not a MAC/);
});

test.run();
