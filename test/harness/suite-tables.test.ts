import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TestRecord } from '../../harness/report.js';
import { suiteTables } from '../../harness/suite-tables.js';

function record(suite: string, name: string, metrics: TestRecord['metrics']): TestRecord {
  return { name, suite, ok: true, skip: false, skipReason: null, timeout: null, durationMs: 1, metrics, deviceCounters: null, diagnostics: [] };
}

test('a rate table per size and mode, and a headline table per suite', () => {
  const tables = suiteTables({
    accel: 'tcg',
    accelReason: '',
    kernelRelease: '6.12',
    qemu: 'qemu-system-x86_64 on PATH',
    cpus: 1,
    bootSeconds: 5,
    suites: ['xsk-zc', 'cpumap'],
    startedAt: '',
    durationMs: 1,
    attempts: [],
    tests: [
      record('xsk-zc', 'rate-xsk-64', { 'rate.mode': 'xsk', 'rate.size': 64, 'rate.pps': 1000.4 }),
      record('xsk-zc', 'rate-afp-64', { 'rate.mode': 'af_packet', 'rate.size': 64, 'rate.pps': 500 }),
      record('xsk-zc', 'zc-proof-xsk', { zeroCopyProven: 1 }),
      record('cpumap', 'redirect-cpu', { mode: 'redirect-cpu', delivered: 40000, drops: 0, pps: 19802 }),
      record('smoke', 'link-up', {}),
    ],
  });
  assert.equal(tables[0], { title: 'packets per second by frame size and mode', columns: ['frame size', 'xsk', 'af_packet'], rows: [['64', '1000', '500']] });
  assert.equal(tables[1], { title: 'xsk-zc: headline metrics', columns: ['test', 'zeroCopyProven'], rows: [['zc-proof-xsk', '1']] });
  assert.equal(tables[2], { title: 'cpumap: headline metrics', columns: ['test', 'mode', 'delivered', 'drops', 'pps'], rows: [['redirect-cpu', 'redirect-cpu', '40000', '0', '19802']] });
  assert.is(tables.length, 3, 'no table for a suite without metrics');
});

test.run();
