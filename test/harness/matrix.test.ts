import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chainShapes, matrixAsOneRun, matrixHtml, matrixJson, matrixRows, matrixTable, rateSeries, type KernelRun } from '../../harness/matrix.js';
import type { RunResults, TestRecord } from '../../harness/report.js';

function rec(suite: string, name: string, over: Partial<TestRecord> = {}): TestRecord {
  return { name, suite, ok: true, skip: false, skipReason: null, timeout: null, durationMs: 10, metrics: {}, deviceCounters: null, diagnostics: [], ...over };
}

const shapes = (two: number, indirect: number) => ({ chainShapes: { descriptorsPerChain: { 1: 0, 2: two }, indirect } });

function run(kernel: string, release: string, tests: TestRecord[]): KernelRun {
  const results: RunResults = { accel: 'tcg', accelReason: '', kernelRelease: release, qemu: 'qemu-system-x86_64 on PATH', cpus: 1, bootSeconds: 5, suites: ['xdpsock'], startedAt: '', durationMs: 1000, tests, attempts: [] };
  return { kernel, results, problem: null };
}

const old = run('6.12', '6.12.117+deb12-amd64', [
  rec('xdpsock', 'txonly-skb-64', { metrics: { 'rate.mode': 'txonly-skb', 'rate.size': 64, 'rate.pps': 90956 }, deviceCounters: shapes(100000, 100000) }),
  rec('xdpsock', 'txonly-skb-1500', { metrics: { 'rate.mode': 'txonly-skb', 'rate.size': 1500, 'rate.pps': 13853 }, deviceCounters: shapes(40000, 40000) }),
  rec('xsk-zc', 'zc-bind', { skip: true, skipReason: 'virtio_net on 6.12 has no XSK zero-copy' }),
]);
const now = run('7.3', '7.3.4+deb13-amd64', [
  rec('xdpsock', 'txonly-skb-64', { metrics: { 'rate.mode': 'txonly-skb', 'rate.size': 64, 'rate.pps': 111213 }, deviceCounters: shapes(100000, 100000) }),
  rec('xdpsock', 'txonly-skb-1500', { metrics: { 'rate.mode': 'txonly-skb', 'rate.size': 1500, 'rate.pps': 108617 }, deviceCounters: shapes(0, 40000) }),
  rec('xsk-zc', 'zc-bind', { metrics: { zeroCopyProven: 1 } }),
]);

test('chain shapes: nested counters flattened, zeros left out', () => {
  assert.equal(chainShapes(shapes(5, 0)), { 'descriptorsPerChain.2': 5 });
  assert.equal(chainShapes(null), {});
});

test('rows: a column per kernel; speed alone is no difference, a shape or verdict is', () => {
  const rows = matrixRows([old, now]);
  assert.equal(rows.map((r) => [r.test, r.differs]), [['txonly-skb-64', false], ['txonly-skb-1500', true], ['zc-bind', true]]);
  assert.equal(rows[2]!.cells.map((c) => c?.verdict), ['SKIP virtio_net on 6.12 has no XSK zero-copy', 'ok']);
  const table = matrixTable([old, now]);
  assert.match(table, '6.12 (6.12.117+deb12-amd64)');
  assert.match(table, /≠ xdpsock\/txonly-skb-1500/);
  assert.match(table, /^  xdpsock\/txonly-skb-64/m);
  assert.match(table, '5 passed, 0 failed, 1 skipped over 2 kernel(s); 2 test(s) differ');
});

test('JSON: a kernels array, each with its own tests and counts', () => {
  const j = matrixJson([old, now]);
  assert.equal([j.passed, j.failed, j.skipped], [5, 0, 1]);
  assert.equal(j.kernels.map((k) => [k.kernel, k.kernelRelease, k.tests.length, k.skipped]), [['6.12', '6.12.117+deb12-amd64', 3, 1], ['7.3', '7.3.4+deb13-amd64', 3, 0]]);
  assert.equal(matrixAsOneRun([old, now]).tests.map((t) => t.suite), ['6.12/xdpsock', '6.12/xdpsock', '6.12/xsk-zc', '7.3/xdpsock', '7.3/xdpsock', '7.3/xsk-zc']);
});

test('HTML: self-contained, and its charts hold the measured numbers', () => {
  const html = matrixHtml([old, now]);
  assert.not.match(html, /<(?:script|link)\b|src=|href=/i);
  assert.equal(rateSeries([old, now]).map((s) => s.mode), ['txonly-skb']);
  // Every measured rate is a point of its kernel's line, at its frame size.
  for (const [kernel, size, pps] of [['6.12', 64, 90956], ['6.12', 1500, 13853], ['7.3', 64, 111213], ['7.3', 1500, 108617]] as const) {
    const line = new RegExp(`data-kernel="${kernel.replace('.', '\\.')}">[\\s\\S]*?data-size="${size}" data-pps="${pps}"`);
    assert.match(html, line, `${kernel} ${size} B ${pps} pps`);
  }
  // Chain shapes per kernel: bars carrying the totals.
  assert.match(html, 'data-kernel="6.12" data-shape="descriptorsPerChain.2" data-count="140000"');
  assert.match(html, 'data-kernel="7.3" data-shape="descriptorsPerChain.2" data-count="100000"');
  assert.match(html, 'data-kernel="7.3" data-shape="indirect" data-count="140000"');
  assert.match(html, '≠ xsk-zc/zc-bind');
});

test.run();
