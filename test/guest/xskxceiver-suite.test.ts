/**
 * The xskxceiver suite (guest/suites/xskxceiver.sh), run by the host's sh and awk: its
 * translation of test_xsk.sh's output into nested KTAP (xskxceiver_nest) and what the harness
 * makes of it (harness/nested-results.ts), and its verdicts, with stand-ins for the host's
 * programs and the harness. The samples are xskxceiver's own words on Debian's 7.3.4, cut short.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NestedResults } from '../../harness/nested-results.js';
import type { TestRecord } from '../../harness/report.js';

// Compiled to dist/test/guest/; the suites stay in the source tree.
const SUITES_DIR = fileURLToPath(new URL('../../../guest/suites', import.meta.url));
const SUITE = join(SUITES_DIR, 'xskxceiver.sh');
const ENV = { PATH: process.env['PATH'] ?? '', ZCNIC_SUITES_DIR: SUITES_DIR };

const TEST_XSK_OUTPUT = [
  'PREREQUISITES: [ PASS ]',
  '1..4',
  'ok 1 PASS: DRV SEND_RECEIVE',
  '# [is_frag_valid] expected pkt_nb [1], got pkt_nb [3]',
  'not ok 2 FAIL: DRV TOO_MANY_FRAGS',
  '# DRV Resize pkt with bpf_xdp_adjust_tail() not supported',
  'ok 3 # SKIP SKIP: DRV XDP_ADJUST_TAIL_GROW_MULTI_BUFF',
  'ok 4 # SKIP SKIP: DRV TEARDOWN',
  '# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:2 error:0',
  'XSK_SELFTESTS_eth0_SOFTIRQ: [ FAIL ]',
  '1..2',
  'not ok 1 FAIL: DRV BUSY-POLL SEND_RECEIVE -- Unexpected returned value (7)',
  'not ok 2 [prog_tests/test_xsk.c:testapp_validate_traffic:1830]: ERROR: 22/"Invalid argument"',
  'test_xsk.sh: exit status 1',
];

function nest(lines: readonly string[]): string[] {
  const r = spawnSync('sh', ['-c', `. "${SUITE}"; xskxceiver_nest`], { input: `${lines.join('\n')}\n`, encoding: 'utf8', env: ENV });
  assert.is(r.status, 0, r.stderr);
  return r.stdout.trimEnd().split('\n');
}

test('xskxceiver results become nested KTAP: numbered on across both runs, named RUN/TEST', () => {
  const results = nest(TEST_XSK_OUTPUT).filter((l) => /^# # (not )?ok /.test(l));
  assert.equal(results, [
    '# # ok 1 softirq/SEND_RECEIVE',
    '# # not ok 2 softirq/TOO_MANY_FRAGS',
    '# # ok 3 softirq/XDP_ADJUST_TAIL_GROW_MULTI_BUFF # SKIP DRV Resize pkt with bpf_xdp_adjust_tail() not supported',
    '# # ok 4 softirq/TEARDOWN # SKIP xskxceiver gave no reason',
    '# # not ok 5 busy-poll/SEND_RECEIVE',
    '# # not ok 6 busy-poll/ERROR',
  ]);
});

test('everything else is a nested diagnostic, the failures\' details included', () => {
  const out = nest(TEST_XSK_OUTPUT);
  assert.ok(out.every((l) => l.startsWith('# # ')));
  for (const said of ['# # # [is_frag_valid] expected pkt_nb [1], got pkt_nb [3]', '# # # Unexpected returned value (7)', '# # # [prog_tests/test_xsk.c:testapp_validate_traffic:1830]: ERROR: 22/"Invalid argument"', '# # # busy-poll: xskxceiver plans 2 tests', '# # # test_xsk.sh: exit status 1']) {
    assert.ok(out.includes(said), said);
  }
});

test('the harness records each as a result of its own under the mode\'s test, with its reason and details', async () => {
  const nested = new NestedResults('drv-mode', 'xskxceiver', async () => null);
  for (const line of nest(TEST_XSK_OUTPUT)) nested.line(line);
  const parent: TestRecord = { name: 'drv-mode', suite: 'xskxceiver', ok: false, skip: false, skipReason: null, timeout: null, durationMs: 1, metrics: {}, deviceCounters: null, diagnostics: [] };
  const records = await nested.records(parent);
  assert.equal(
    records.map((r) => [r.name, r.ok && !r.skip ? 'pass' : r.skip ? 'skip' : 'fail']),
    [
      ['drv-mode/softirq/SEND_RECEIVE', 'pass'],
      ['drv-mode/softirq/TOO_MANY_FRAGS', 'fail'],
      ['drv-mode/softirq/XDP_ADJUST_TAIL_GROW_MULTI_BUFF', 'skip'],
      ['drv-mode/softirq/TEARDOWN', 'skip'],
      ['drv-mode/busy-poll/SEND_RECEIVE', 'fail'],
      ['drv-mode/busy-poll/ERROR', 'fail'],
    ],
  );
  assert.is(records[2]!.skipReason, 'DRV Resize pkt with bpf_xdp_adjust_tail() not supported');
  assert.ok(records[1]!.diagnostics.some((d) => d.includes('expected pkt_nb [1], got pkt_nb [3]')), records[1]!.diagnostics.join('\n'));
});

/**
 * Runs one mode's test the way /init does (common.sh and the suite sourced, KTAP on fd 3, here
 * stdout), with test_xsk.sh's OUTPUT standing in for the host's run, the NIC's negotiated
 * FEATURES (one character per bit) and the kernel's log lines during the test; the verdict is
 * /init's: exit status 0 ok, 4 skip (reason in the skip file), else not ok.
 */
function runMode(mode: string, output: readonly string[], o: { features?: string; kernelLog?: string[]; kallsyms?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-xskxceiver-test-'));
  try {
    // The suite reads /sys/class/net/IFACE/device/features: IFACE climbs back out of /sys.
    mkdirSync(join(dir, 'nic', 'device'), { recursive: true });
    writeFileSync(join(dir, 'nic', 'device', 'features'), `${o.features ?? '0'.repeat(64)}\n`);
    writeFileSync(join(dir, 'output'), `${output.join('\n')}\n`);
    writeFileSync(join(dir, 'kernel.log'), (o.kernelLog ?? []).map((l) => `${l}\n`).join(''));
    writeFileSync(join(dir, 'kallsyms'), o.kallsyms ?? '');
    const stubs = [
      `zcnic_ctl() { echo ok; }`,
      `host_run() { cat "${join(dir, 'output')}"; }`,
      // Nothing before the test; the test's lines after.
      `dmesg() { [ -e "${join(dir, 'started')}" ] && cat "${join(dir, 'kernel.log')}"; touch "${join(dir, 'started')}"; }`,
      `grep() { if [ "$3" = /proc/kallsyms ]; then command grep "$1" "$2" "${join(dir, 'kallsyms')}"; else command grep "$@"; fi; }`,
      `uname() { echo 7.3.4+deb13-amd64; }`,
      `set_hugepages() { echo 0; }`,
    ].join('\n');
    const script = `exec 3>&1; . "${join(SUITES_DIR, 'lib', 'common.sh')}"; . "${SUITE}"; ${stubs}\ntest_${mode}_mode`;
    const env = { ...ENV, ZCNIC_IFACE: `../../..${dir}/nic`, ZCNIC_XSKXCEIVER_DIR: '/xsk', ZCNIC_SKIP_FILE: join(dir, 'skip'), TMPDIR: dir };
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env });
    const skipReason = r.status === 4 ? readFileSync(join(dir, 'skip'), 'utf8').trim() : null;
    return { status: r.status, ktap: r.stdout, skipReason };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PASSING = ['1..1', 'ok 1 PASS: SKB SEND_RECEIVE', '1..1', 'ok 1 PASS: SKB BUSY-POLL SEND_RECEIVE', 'test_xsk.sh: exit status 0'];

test('a mode passes when every result passed and test_xsk.sh exited 0', () => {
  const r = runMode('skb', PASSING);
  assert.is(r.status, 0, r.ktap);
  assert.match(r.ktap, '# # ok 2 busy-poll/SEND_RECEIVE');
  assert.match(r.ktap, '# # ok 3 kernel-log');
});

test('a failed result fails the mode even when xskxceiver exits 0 (it counts only tests that set test->fail)', () => {
  const r = runMode('drv', ['1..2', 'ok 1 PASS: DRV SEND_RECEIVE', 'not ok 2 FAIL: DRV TOO_MANY_FRAGS', 'test_xsk.sh: exit status 0']);
  assert.is(r.status, 1);
  assert.match(r.ktap, '# test_xsk.sh -m drv: exit status 0; failed: softirq/TOO_MANY_FRAGS');
});

test('a kernel warning or BUG during the test fails it, naming it and the failed results', () => {
  const r = runMode('skb', PASSING, { kernelLog: ['[   16.734174] BUG: Bad page state in process xskxceiver  pfn:04902', '[   16.734217] page dumped because: page_pool leak'] });
  assert.is(r.status, 1);
  assert.match(r.ktap, '# the kernel complained during the test: [   16.734174] BUG: Bad page state in process xskxceiver');
  // A nested result of its own: the harness drops a parent whose nested results explain it.
  assert.match(r.ktap, '# # # [   16.734174] BUG: Bad page state in process xskxceiver  pfn:04902\n# # not ok 3 kernel-log\n');
});

const ZC_UNSUPPORTED = ['PREREQUISITES: [ PASS ]', '# Error: zero-copy mode not supported.', 'test_xsk.sh: exit status 1'];
/** The features file with ACCESS_PLATFORM (bit 33) and RING_RESET (bit 40) set. */
const ZC_FEATURES = [...'0'.repeat(64)].map((c, bit) => (bit === 33 || bit === 40 ? '1' : c)).join('');

test('zero-copy unsupported on a NIC without the features: SKIP with xskxceiver\'s words and what the NIC lacks', () => {
  const r = runMode('zc', ZC_UNSUPPORTED);
  assert.is(r.status, 4, r.ktap);
  assert.match(r.skipReason ?? '', /^xskxceiver: zero-copy mode not supported: the NIC did not negotiate VIRTIO_F_ACCESS_PLATFORM .*; nor VIRTIO_F_RING_RESET: .*\(zcnic run --xsk-zero-copy\)$/);
});

test('zero-copy unsupported on a 7.3 kernel and a NIC with both features is a failure', () => {
  const r = runMode('zc', ZC_UNSUPPORTED, { features: ZC_FEATURES });
  assert.is(r.status, 1);
  assert.match(r.ktap, 'xskxceiver: zero-copy mode not supported, on kernel 7.3.4');
});

test('zero-copy on a modular virtio_net with the static xsk_hdr: SKIP naming the driver bug, before xskxceiver runs', () => {
  const r = runMode('zc', PASSING, { features: ZC_FEATURES, kallsyms: 'ffffffffc0a1b690 b xsk_hdr\t[virtio_net]\n' });
  assert.is(r.status, 4, r.ktap);
  assert.match(r.skipReason ?? '', /^kernel 7\.3\.4\+deb13: virtio_net is a module and its AF_XDP zero-copy transmit DMA-maps the module's static xsk_hdr .*, so xskxceiver's zero-copy frames/);
  assert.not.match(r.ktap, '# # ok');
  const builtIn = runMode('zc', PASSING, { features: ZC_FEATURES, kallsyms: 'ffffffff8a1b690 b xsk_hdr\n' });
  assert.is(builtIn.status, 0, builtIn.ktap);
});

test.run();
