import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AttemptRecord, RunResults, TestRecord } from '../../harness/report.js';
import { testRecord } from '../support/test-records.js';
import { filesToRetry, mergeRetry, selftestFileOf } from '../../harness/selftest-retry.js';

const rec = testRecord;
const boot = (attempt: number): AttemptRecord => ({ attempt, startedAt: '', durationMs: 1, bootSeconds: 3, problem: null, emulatorFault: null, retried: false, tests: [] });
const run = (tests: TestRecord[]): RunResults => ({ tests, attempts: [boot(1)] }) as unknown as RunResults;

test('a result belongs to its runner file, whose target may hold slashes', () => {
  assert.is(selftestFileOf('drivers/net:ping.py/ping.test_default_v4'), 'drivers/net:ping.py');
  assert.is(selftestFileOf('drivers/net/hw:csum.py/csum.ipv4_rx'), 'drivers/net/hw:csum.py');
  assert.is(selftestFileOf('drivers/net:queues.py'), 'drivers/net:queues.py');
});

test('only files with a failed result are retried, each once, in the order they ran', () => {
  const first = run([rec('drivers/net:ping.py/a', 'pass'), rec('drivers/net:ping.py/b', 'fail'), rec('drivers/net:ping.py/c', 'fail'), rec('drivers/net:stats.py/d', 'skip'), rec('drivers/net:gro.py', 'fail')]);
  assert.equal(filesToRetry(first), ['drivers/net:ping.py', 'drivers/net:gro.py']);
  assert.equal(filesToRetry(run([rec('drivers/net:stats.py/d', 'skip'), rec('drivers/net:ping.py/a', 'pass')])), []);
});

test("the retry's verdicts replace the retried file's and keep its first attempt; the rest stays", () => {
  const first = run([rec('drivers/net:ping.py/a', 'pass'), rec('drivers/net:ping.py/b', 'fail', 'socat timed out'), rec('drivers/net:stats.py/d', 'fail', 'stays')]);
  const retry = run([rec('drivers/net:ping.py/a', 'pass'), rec('drivers/net:ping.py/b', 'pass')]);
  const merged = mergeRetry(first, retry, ['drivers/net:ping.py']);
  assert.equal(merged.results.tests.map((t) => [t.name, t.ok]), [['drivers/net:ping.py/a', true], ['drivers/net:ping.py/b', true], ['drivers/net:stats.py/d', false]]);
  assert.equal(merged.firstAttempts.get('drivers/net:ping.py/b'), { verdict: 'fail', diagnostics: ['socat timed out'] });
  assert.equal(merged.firstAttempts.get('drivers/net:ping.py/a'), { verdict: 'pass', diagnostics: [] });
  assert.is(merged.firstAttempts.has('drivers/net:stats.py/d'), false);
  // Both boots stay, numbered as they ran, the first marked as booted again.
  assert.equal(merged.results.attempts.map((a) => [a.attempt, a.retried]), [[1, true], [2, false]]);
});

test('a result the retry never reached fails; one only the retry gave is kept', () => {
  const first = run([rec('drivers/net:xdp.py/a', 'fail'), rec('drivers/net:xdp.py/b', 'pass')]);
  const retry = run([rec('drivers/net:xdp.py/a', 'pass'), rec('drivers/net:xdp.py/c', 'pass')]);
  const merged = mergeRetry(first, retry, ['drivers/net:xdp.py']);
  assert.equal(merged.results.tests.map((t) => [t.name, t.ok, t.diagnostics[0]]), [['drivers/net:xdp.py/a', true, 'why'], ['drivers/net:xdp.py/b', false, 'not reported by the retry'], ['drivers/net:xdp.py/c', true, 'why']]);
  assert.equal(merged.firstAttempts.get('drivers/net:xdp.py/c'), { verdict: 'absent', diagnostics: [] });
});

test.run();
