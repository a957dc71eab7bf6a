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

test("seed 001's table: a row per TSO state the test measured, none without those metrics", () => {
  const run = (metrics: TestRecord['metrics']): ReturnType<typeof suiteTables> =>
    suiteTables({ accel: 'tcg', accelReason: '', kernelRelease: '6.12', qemu: 'q', cpus: 1, bootSeconds: 3, suites: ['msg-zerocopy'], startedAt: '', durationMs: 1, attempts: [], tests: [record('msg-zerocopy', 'cpu-per-gib', metrics)] });
  const both = run({
    'cpuSecondsPerGiB.tsoOn.msgZerocopy': 40,
    'cpuSecondsPerGiB.tsoOn.copy': 60,
    'cpuRatio.tsoOn': 0.667,
    'gbitPerSecond.tsoOn.msgZerocopy': 1.5,
    'gbitPerSecond.tsoOn.copy': 1.1,
    'cpuSecondsPerGiB.tsoOff.msgZerocopy': 50,
    'cpuSecondsPerGiB.tsoOff.copy': 48,
    'cpuRatio.tsoOff': 1.042,
    'gbitPerSecond.tsoOff.msgZerocopy': 0.4,
    'gbitPerSecond.tsoOff.copy': 0.45,
  });
  assert.equal(both[0]?.rows, [
    ['TSO on', '40', '60', '0.667', '1.5', '1.1'],
    ['TSO off', '50', '48', '1.042', '0.4', '0.45'],
  ]);
  assert.equal(run({ 'cpuSecondsPerGiB.tsoOff.msgZerocopy': 50, 'cpuSecondsPerGiB.tsoOff.copy': 48 })[0]?.rows, [['TSO off', '50', '48', '', '', '']]);
  assert.is(run({ bytesVerified: 1 }).some((t) => t.title.includes('seed 001')), false);
});

test.run();
