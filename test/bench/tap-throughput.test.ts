// The tap bench's arithmetic: medians over the passing samples only, ratios against QEMU's, and
// a failed sample shown with its reason rather than as a figure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, tapMarkdown, tapRows, type TapNic, type TapReport, type TapSample } from '../../bench/tap-throughput.js';

function sample(nic: TapNic, direction: 'tcp-tx' | 'tcp-rx', gbitPerSecond: number | null, round = 1): TapSample {
  return { nic, round, direction, gbitPerSecond, retransmits: gbitPerSecond === null ? null : 0, guestCpuPercent: null, driverKicks: { tx: null, rx: null }, nicInterrupts: null, otherCores: 0.1, failure: gbitPerSecond === null ? 'failed: iperf3 did not finish' : null };
}

test('median of odd and even counts, none for no values', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([]), null);
});

test('rows: medians per NIC and direction, ratios against QEMU, failed samples left out', () => {
  const rows = tapRows([
    sample('zcnic', 'tcp-tx', 1.2),
    sample('zcnic', 'tcp-tx', 1.0, 2),
    sample('zcnic', 'tcp-tx', null, 3),
    sample('qemu', 'tcp-tx', 1.0),
    sample('qemu', 'tcp-rx', 2.0),
    sample('zcnic', 'tcp-rx', 3.0),
  ]);
  const tx = rows.find((r) => r.direction === 'tcp-tx')!;
  assert.is(tx.median.zcnic, 1.1);
  assert.ok(Math.abs(tx.ratio! - 1.1) < 1e-9);
  assert.is(tx.verifyingRatio, null, 'no verifying sample: no ratio');
  const rx = rows.find((r) => r.direction === 'tcp-rx')!;
  assert.is(rx.ratio, 1.5);
});

test('no QEMU figure: no ratio (never a division by a missing reference)', () => {
  const [tx] = tapRows([sample('zcnic', 'tcp-tx', 1), sample('qemu', 'tcp-tx', null)]);
  assert.is(tx!.ratio, null);
});

test('the markdown lists every sample, a failure with its reason', () => {
  const samples = [sample('zcnic', 'tcp-tx', null), sample('qemu', 'tcp-tx', 1)];
  const report: TapReport = { startedAt: 'T0', finishedAt: 'T1', kernelRelease: '6.12', accel: 'tcg', cpus: 1, qemu: 'q', seconds: 10, rounds: 1, rows: tapRows(samples), samples, failed: 1 };
  const md = tapMarkdown(report);
  assert.match(md, '| 1 | zcnic | tcp-tx | - | - | - | - / - | - | 0.10 | failed: iperf3 did not finish |');
  assert.match(md, '| guest → peer | - | 1.000 | - |');
});

test.run();
