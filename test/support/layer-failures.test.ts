import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { failedTestDetails, failedTests, uvuFailures, passedWithout } from './layer-failures.js';

test('a zcnic run failure is named with its first diagnostic; passes and skips are not', () => {
  const tests = [
    { name: 'smoke', ok: true, skip: false, diagnostics: [] },
    { name: 'xdpsock', ok: false, skip: true, diagnostics: ['no AF_XDP'] },
    { name: 'msg-zerocopy', ok: false, skip: false, diagnostics: ['', 'payload 12 bytes off'] },
  ];
  assert.equal(failedTests(tests), ['msg-zerocopy: payload 12 bytes off']);
});

test('a selftest failure is judged by the zcnic verdict, not the reference', () => {
  const tests = [
    { name: 'ping.test_xdp_native_mb', zcnic: { verdict: 'fail', diagnostics: ['Command failed: socat'] } },
    { name: 'stats.check_down', zcnic: { verdict: 'pass', diagnostics: [] } },
    { name: 'psp', zcnic: { verdict: 'skip', diagnostics: [] } },
  ];
  assert.equal(failedTests(tests), ['ping.test_xdp_native_mb: Command failed: socat']);
});

test('the reason quoted is the MISMATCH line, not what the suite said it was running', () => {
  const tests = [
    { name: 'zc-proof-xsk', ok: false, diagnostics: ['xdpsock: ready mode=txonly', 'xdpsock -t -> status 0', 'MISMATCH zeroCopyProven: got 0.998, expected 1.000', 'zc-proof-xsk: 1 check(s) failed (see MISMATCH lines)'] },
    { name: 'quiet', ok: false, diagnostics: ['first words', 'second words'] },
  ];
  assert.equal(failedTests(tests), ['zc-proof-xsk: MISMATCH zeroCopyProven: got 0.998, expected 1.000', 'quiet: first words']);
});

test('the details of a failed test keep its last lines and say how many were left out', () => {
  const lines = Array.from({ length: 45 }, (_, i) => `line ${i}`);
  const details = failedTestDetails([{ name: 'long', ok: false, diagnostics: lines }, { name: 'fine', ok: true, diagnostics: ['x'] }]).split('\n');
  assert.equal(details[0], 'not ok long');
  assert.equal(details[1], '  # (5 earlier lines left out)');
  assert.equal(details[2], '  # line 5');
  assert.equal(details.at(-1), '  # line 44');
  assert.equal(details.length, 42);
});

test("uvu's FAIL lines are found through its colours, and nothing else is", () => {
  const output = 'ok\n\x1b[41m\x1b[1m FAIL \x1b[22m\x1b[49m \x1b[31m\x1b[1mvring\x1b[22m\x1b[39m  "wraps"\n    Expected 1\n  Total: 3\n';
  assert.equal(uvuFailures(output), ['FAIL vring "wraps"']);
  assert.equal(uvuFailures('  Total: 3\n  Passed: 3\n'), []);
});

test('passedWithout: a passed test whose device lacks a wanted feature is named; skipped and failed ones are not', () => {
  const tests = [
    { name: 'a', ok: true, deviceCounters: { features: ['RING_PACKED', 'IN_ORDER'] } },
    { name: 'b', ok: true, deviceCounters: { features: ['RING_PACKED'] } },
    { name: 'c', ok: true, deviceCounters: null },
    { name: 'd', ok: true, skip: true, deviceCounters: null },
    { name: 'e', ok: false, deviceCounters: null },
  ];
  assert.equal(passedWithout(tests, ['RING_PACKED', 'IN_ORDER']), ['b', 'c']);
  assert.equal(passedWithout(tests, []), []);
});

test.run();
