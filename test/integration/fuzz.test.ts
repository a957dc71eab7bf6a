/**
 * A fixed-seed fuzz run (FUZZ_TEST_SECONDS, default 60 s, as the hardening issue asks) against a `zcnic device` child: no
 * crash, every case's errors counted as the rules say, valid traffic checks passing, every ring
 * error kind reached, on split rings and (but those of the split ring's own structure) on packed ones, and
 * every one also in cases that negotiated VIRTIO_F_IN_ORDER (on both layouts), whose transmitq publishes a
 * burst as one used element. Then a frontend nobody here wrote, DPDK testpmd's net_virtio_user, moves
 * an exact frame count through the same backend process.
 */
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzz } from '../../fuzz/fuzzer.js';
import { formatReport, type FuzzReport } from '../../fuzz/report.js';
import { ExternalTarget } from '../../fuzz/target.js';
import { scratchFolderPerTest, txonlyIntoSink } from '../support/integration.js';
import { ZcnicDevice } from '../../harness/device-process.js';
import { pidAlive, Testpmd } from '../../harness/dpdk/testpmd.js';

const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;
const SEED = 20240611;
const SECONDS = Number(process.env['FUZZ_TEST_SECONDS'] ?? 60);
/** Every counter in stats.errors a driver can reach (linearHeaderViolations needs --require-linear-header). */
const RING_KINDS = [
  'availIndexJump',
  'headOutOfRange',
  'nextOutOfRange',
  'chainTooLong',
  'bufferOutsideMemory',
  'indirectNotNegotiated',
  'indirectWithNext',
  'indirectBadLength',
  'indirectOutsideMemory',
  'nestedIndirect',
  'readableAfterWritable',
  'txWriteOnlyBuffer',
  'txHeaderTooShort',
  'txFrameTooLarge',
  'txGsoNotNegotiated',
  'txChecksumOutsideFrame',
  'rxReadableBuffer',
  'rxBufferTooSmall',
  'guestMemoryTruncated',
];

/** The ring kinds of the split ring's own structure (avail.idx, heads, next links): a packed ring has none. */
const SPLIT_ONLY_KINDS = ['availIndexJump', 'headOutOfRange', 'nextOutOfRange'];
const PACKED_RING_KINDS = RING_KINDS.filter((k) => !SPLIT_ONLY_KINDS.includes(k));

const fz = suite('fuzz');
const scratch = scratchFolderPerTest(fz, 'zcnic-it-fuzz-');

fz(`seed ${SEED}, ${SECONDS} s: no crash, every error counted; then testpmd txonly moves an exact count through the same backend`, async () => {
  const socket = join(scratch(), 'vhost.sock');
  const zc = await ZcnicDevice.start({ entry, socket, port: 'sink' });
  const target = await ExternalTarget.connect(socket);
  let report: FuzzReport;
  try {
    assert.ok(target.hasControl, 'the fuzzer reads the counters');
    report = await fuzz({ target, seed: SEED, seconds: SECONDS });
  } finally {
    await target.close();
  }
  const text = formatReport(report);
  assert.is(report.crashes.length, 0, text);
  assert.is(report.mismatchCount, 0, text);
  assert.is(report.traffic.failed, 0, text);
  assert.ok(report.traffic.passed >= 2, text);
  assert.ok(report.cases >= 500, `only ${report.cases} cases`);
  const ring = new Set(report.kinds.filter((k) => k.startsWith('ring:')).map((k) => k.slice(5)));
  assert.equal(RING_KINDS.filter((k) => !ring.has(k)), [], 'every ring error kind reached');
  assert.ok(report.packed.cases >= 100, `only ${report.packed.cases} packed cases`);
  const packed = new Set(report.packed.kinds.filter((k) => k.startsWith('ring:')).map((k) => k.slice(5)));
  assert.equal(PACKED_RING_KINDS.filter((k) => !packed.has(k)), [], 'every ring error kind a packed ring has reached on packed rings');
  assert.ok(report.inOrder.split >= 50, `only ${report.inOrder.split} split cases with IN_ORDER`);
  assert.ok(report.inOrder.packed >= 20, `only ${report.inOrder.packed} packed cases with IN_ORDER`);
  const inOrder = new Set(report.inOrder.kinds.filter((k) => k.startsWith('ring:')).map((k) => k.slice(5)));
  assert.equal(RING_KINDS.filter((k) => !inOrder.has(k)), [], 'every ring error kind reached with IN_ORDER');
  assert.ok(report.kinds.filter((k) => k.startsWith('protocol:')).length >= 30, text);
  assert.not.ok(zc.exited, 'the device is still running');

  // The fuzzer put the port back; start counting afresh for the valid frontend.
  const before = await zc.stats();
  assert.is(before.port, 'sink');
  assert.equal(await zc.request({ cmd: 'resetCounters' }), { ok: true });
  const tp = await Testpmd.start({ role: 'frontend', socket, forwardMode: 'txonly', txPktLen: 64 });
  const { sent, stats } = await txonlyIntoSink(zc, tp);
  assert.equal(stats.protocolErrors, {}, 'testpmd caused no refusal');
  assert.is(stats.needsReset, false);
  const pids = [zc.pid, tp.pid];
  await tp.close();
  const exit = await zc.stop();
  assert.is(exit.exitCode, 0);
  assert.is(exit.final?.transmitq.frames, sent, 'the exit line agrees');
  for (const pid of pids) assert.not.ok(pidAlive(pid), `pid ${pid} is gone`);
});

fz.run();
