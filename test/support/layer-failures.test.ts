import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { failedTests, uvuFailures, passedWithout } from './layer-failures.js';

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
