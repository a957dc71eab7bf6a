// The bench report: Gbit/s beside Mpps in every row, what each backend does per frame in the
// table itself, and the heap lines.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Measurement } from '../../bench/cases.js';
import type { HeapResult } from '../../bench/heap.js';
import { perFrameWork } from '../../bench/plan.js';
import { cellColumns, heapLine, markdownReport, markdownTable, rates, ratioOf, type Cell, type Row } from '../../bench/report.js';

function measurement(over: Partial<Measurement>): Measurement {
  return {
    peer: 'dpdk',
    direction: 'transmitq',
    frameSize: 1500,
    seconds: 2,
    packets: 8_000_000,
    bytes: 12_000_000_000,
    mpps: 4,
    gbps: 48,
    work: 'rxonly: copies the frame into an mbuf, frees it',
    peerPackets: null,
    finalFrontendPackets: 0,
    finalPeerPackets: null,
    contention: null,
    notes: [],
    ...over,
  };
}

const ok = (m: Measurement): Cell => ({ status: 'ok', measurement: m, runsMpps: [m.mpps] });

test('rates: Mpps from packets, Gbit/s from the bytes counted', () => {
  // 1500-byte frames: 4 Mpps is 48 Gbit/s of frame bytes.
  const r = rates(8_000_000, 8_000_000 * 1500, 2);
  assert.is(r.mpps, 4);
  assert.is(r.gbps, 48);
  // 64-byte frames at 10 Mpps: 5.12 Gbit/s.
  const s = rates(50_000_000, 50_000_000 * 64, 5);
  assert.is(s.mpps, 10);
  assert.ok(Math.abs(s.gbps - 5.12) < 1e-9);
  assert.throws(() => rates(1, 1, 0), /window of 0 s/);
});

test('cellColumns: Mpps and Gbit/s, or why there is none', () => {
  assert.equal(cellColumns(ok(measurement({ mpps: 4.1234, gbps: 49.4808 }))), ['4.12', '49.48']);
  assert.equal(cellColumns({ status: 'not run', reason: '--only dpdk' }), ['not run', '-']);
  // Others took CPU during the window: both figures are marked.
  const busy = measurement({ mpps: 2, gbps: 24, contention: { otherCores: 0.6, stealCores: 0 } });
  assert.equal(cellColumns(ok(busy)), ['2.00*', '24.00*']);
  assert.match(markdownTable([{ direction: 'transmitq', frameSize: 1500, dpdk: ok(busy), zcnic: ok(busy), ratio: 1 }]), /\n\n\\\* disturbed: /);
  assert.equal(cellColumns(ok(measurement({ contention: { otherCores: 0.01, stealCores: 0.02 } }))), ['4.00', '48.00']);
  assert.equal(cellColumns({ status: 'error', error: 'x' }), ['error', '-']);
});

test('markdownTable: every row has Gbit/s beside Mpps and says what each side does per frame', () => {
  const dpdk = ok(measurement({}));
  const zcnic = ok(
    measurement({ peer: 'zcnic', mpps: 3, gbps: 36, work: perFrameWork('transmitq', 'zcnic', 'copy') }),
  );
  const rows: Row[] = [
    { direction: 'transmitq', frameSize: 1500, dpdk, zcnic, ratio: ratioOf(dpdk, zcnic) },
    { direction: 'receiveq', frameSize: 64, dpdk: { status: 'error', error: 'boom' }, zcnic: { status: 'not run', reason: 'x' }, ratio: null },
  ];
  const lines = markdownTable(rows).split('\n');
  assert.is(lines.length, 4, 'no footnote when nothing was disturbed');
  const header = lines[0]!.split('|').map((s) => s.trim());
  assert.ok(header.includes('DPDK Mpps') && header.includes('DPDK Gbit/s'));
  assert.ok(header.includes('zcnic Mpps') && header.includes('zcnic Gbit/s'));
  const cols = lines[2]!.split('|').map((s) => s.trim());
  const at = (name: string): string => cols[header.indexOf(name)]!;
  assert.is(at('DPDK Mpps'), '4.00');
  assert.is(at('DPDK Gbit/s'), '48.00');
  assert.is(at('zcnic Mpps'), '3.00');
  assert.is(at('zcnic Gbit/s'), '36.00');
  assert.is(at('zcnic/DPDK'), '0.750');
  assert.match(at('DPDK backend, per frame'), /copies the frame into an mbuf/);
  assert.match(at('zcnic backend, per frame'), /copies the frame into scratch/);
  // A row that did not run still says what each side would do, from the plan.
  const failed = lines[3]!.split('|').map((s) => s.trim());
  assert.match(failed[header.indexOf('DPDK backend, per frame')]!, /^txonly: /);
  assert.match(failed[header.indexOf('zcnic backend, per frame')]!, /^gen: /);
  assert.is(failed[header.indexOf('DPDK Gbit/s')], '-');
  // Count-only sink: the table says the payload is never read.
  assert.match(markdownTable([{ ...rows[1]!, direction: 'transmitq' }], 'count'), /counts only, never reads the frame/);
});

function heapResult(over: Partial<HeapResult>): HeapResult {
  return {
    load: 'gen',
    seconds: 6,
    frameSize: 1500,
    frames: 18_000_000,
    copied: null,
    beforeBytes: 16 * 1048576,
    afterBytes: 17 * 1048576,
    minBytes: 15 * 1048576,
    maxBytes: 18 * 1048576,
    toleranceBytes: 1048576,
    datapathBeforeBytes: 6 * 1048576,
    datapathAfterBytes: 6.5 * 1048576,
    datapathMinBytes: 6 * 1048576,
    datapathMaxBytes: 7 * 1048576,
    collections: 3,
    collectionsPerSecond: 0.5,
    collectionsPerMillionFrames: 3 / 18,
    limits: { toleranceBytes: 1048576, collectionsPerSecond: 5, collectionsPerMillionFrames: 1 },
    flat: true,
    verdict: '',
    trendBytesPerMin: 0,
    mpps: 3,
    samples: [],
    ...over,
  };
}

test('heapLine: load, size, rate, GCs per second and per million frames, verdict', () => {
  const flat = heapLine({ status: 'ok', result: heapResult({}) });
  assert.match(flat, /^gen \(receiveq\), 1500 B, 6\.0 s at 3\.00 Mpps \(18\.0 M frames\)/);
  assert.match(flat, /3 GCs \(0\.50\/s, 0\.167 per M frames\)/);
  assert.match(flat, /FLAT$/);
  const bad = heapLine({
    status: 'ok',
    result: heapResult({ load: 'reflect', copied: '5 frames copied back', flat: false, verdict: '52.000 collections per million frames, limit 1' }),
  });
  assert.match(bad, /^reflect .*5 frames copied back.*NOT FLAT \(52\.000 collections per million frames, limit 1\)$/);
  assert.is(heapLine({ status: 'error', load: 'sink', frameSize: 64, error: 'no port\nmore' }), 'sink 64 B: error: no port');
});

test('markdownReport: the heap section lists every load', () => {
  const md = markdownReport({
    startedAt: 'a',
    finishedAt: 'b',
    host: { cpuModel: 'cpu', cpus: 2, kernel: 'k', node: 'v20', dpdk: 'd' },
    settings: { warmupSec: 1, seconds: 2, repeat: 1, zcnicCpus: '1', only: null, sinkWork: 'copy', packedRing: false, inOrder: true },
    rows: [],
    heap: [
      { status: 'ok', result: heapResult({ load: 'sink', frameSize: 64 }) },
      { status: 'ok', result: heapResult({}) },
      { status: 'ok', result: heapResult({ load: 'reflect' }) },
    ],
  });
  assert.match(md, /Rings: split, IN_ORDER \(virtio-user in_order=1\)\./);
  assert.match(md, /## zcnic heap under load/);
  assert.match(md, /- sink \(transmitq\), 64 B/);
  assert.match(md, /- gen \(receiveq\), 1500 B/);
  assert.match(md, /- reflect \(transmitq -> receiveq, frontend io loop\), 1500 B/);
  assert.match(md, /under 1 times per million frames/);
});

test.run();
