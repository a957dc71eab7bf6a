import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { counterDelta, NestedResults } from '../../harness/nested-results.js';
import type { TestRecord } from '../../harness/report.js';

const parent = (ok: boolean, skip = false): TestRecord => ({
  name: 'drivers/net:ping.py',
  suite: 'kselftest',
  ok,
  skip,
  skipReason: null,
  timeout: null,
  durationMs: 1000,
  metrics: {},
  deviceCounters: null,
  diagnostics: [],
});

/** The runner's output for one test, as the guest passes it on ("# " + line). */
const RUNNER = [
  'TAP version 13',
  '1..1',
  '# timeout set to 360',
  '# selftests: drivers/net: ping.py',
  '# TAP version 13',
  '# 1..3',
  '# ok 1 ping.test_v4',
  '# not ok 2 ping.test_v6',
  '# ok 3 ping.test_tcp # SKIP socat missing',
  '# # Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0',
  'ok 1 selftests: drivers/net: ping.py',
].map((l) => `# ${l}`);

test('nested results become records of their own, each with the counters since the one before', async () => {
  let frames = 0;
  const nested = new NestedResults('drivers/net:ping.py', 'kselftest', async () => ({ transmitq: { frames: (frames += 10) }, heap: { usedBytes: 5 } }));
  const used = RUNNER.map((l) => nested.line(l));
  // The runner's "# " lines (its own comments, and the test's KTAP it nests) go to the nested
  // reader, where the comments are only comments; the runner's own plan and result do not.
  assert.equal(used.filter(Boolean).length, 8);
  const records = await nested.records(parent(false));
  assert.equal(records.map((r) => r.name), ['drivers/net:ping.py/ping.test_v4', 'drivers/net:ping.py/ping.test_v6', 'drivers/net:ping.py/ping.test_tcp']);
  assert.equal(records.map((r) => [r.ok, r.skip]), [[true, false], [false, false], [true, true]]);
  assert.is(records[2]!.skipReason, 'socat missing');
  assert.equal(records.map((r) => (r.deviceCounters as { transmitq: { frames: number } }).transmitq.frames), [10, 10, 10]);
  // A gauge is not a sum: the later value stands.
  assert.equal((records[1]!.deviceCounters as { heap: unknown }).heap, { usedBytes: 5 });
});

test('a parent failure that no subtest explains stays a failure of its own; one they explain does not', async () => {
  const passing = RUNNER.filter((l) => !l.includes('not ok 2'));
  const unexplained = new NestedResults('p', 'kselftest', async () => null);
  for (const l of passing) unexplained.line(l);
  const records = await unexplained.records(parent(false));
  assert.is(records.length, 3);
  assert.is(records.at(-1)!.name, 'drivers/net:ping.py');
  assert.not.ok(records.at(-1)!.ok);

  const explained = new NestedResults('p', 'kselftest', async () => null);
  for (const l of RUNNER) explained.line(l);
  assert.is((await explained.records(parent(false))).length, 3);
});

test('a test without nested results is its own record', async () => {
  const none = new NestedResults('p', 'kselftest', async () => null);
  none.line('# SKIP: no such feature');
  assert.equal(await none.records(parent(true, true)), [parent(true, true)]);
});

test('counterDelta subtracts numbers at every depth and keeps what is not a sum', () => {
  assert.equal(counterDelta({ a: 5, b: { c: 7, d: 'x' }, features: ['v1'] }, { a: 2, b: { c: 3 }, features: [] }), { a: 3, b: { c: 4, d: 'x' }, features: ['v1'] });
  assert.equal(counterDelta({ a: 5 }, null), { a: 5 });
});

test.run();
