/**
 * The kernel-msg-zerocopy suite (guest/suites/kernel-msg-zerocopy.sh), run by the host's sh with
 * stand-ins for the host's programs and the harness: its verdicts on msg_zerocopy's exit status
 * and words (the samples are its own lines) and on the device's counters.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

// Compiled to dist/test/guest/; the suites stay in the source tree.
const SUITES_DIR = fileURLToPath(new URL('../../../guest/suites', import.meta.url));

const KNOWS_Z = 'msg_zerocopy: unknown cfg_test no-such-test';
const ZERO_COPY = { said: 'tx=120 (7 MB) txc=120 zc=y', status: 0 };
const COPIED = { said: 'serr: ee_code: 0 != expected 1\ntx=118 (7 MB) txc=118 zc=n', status: 1 };
const COPIES_EXPECTED = { said: 'tx=118 (7 MB) txc=118 zc=n', status: 0 };
const WIRE = 'transmitq_frames=5400 remoteNic_receiveq_frames=5100 remoteNic_receiveq_bytes=7900000';

interface Host {
  /** What `msg_zerocopy -4 -Z 1 no-such-test` prints. */
  probe?: string;
  /** The sender's lines and exit status with -Z 1 and with -Z 0. */
  z1?: { said: string; status: number };
  z0?: { said: string; status: number };
  /** The device's answer to the stats request. */
  stats?: string;
}

/**
 * Runs one test the way /init does (common.sh and the suite sourced, KTAP on fd 3, here stdout);
 * the verdict is /init's: exit status 0 ok, 4 skip (reason in the skip file), else not ok.
 */
function runTest(name: string, host: Host = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-mzc-test-'));
  try {
    const file = (n: string, text: string): string => {
      writeFileSync(join(dir, n), `${text}\n`);
      return join(dir, n);
    };
    chmodSync(file('msg_zerocopy', ''), 0o755);
    const z1 = host.z1 ?? ZERO_COPY;
    const z0 = host.z0 ?? COPIES_EXPECTED;
    const stubs = `
nic_pair_setup() { NIC_PAIR_LOCAL_IF=eth0; }
zcnic_ctl() { cat "${file('stats', host.stats ?? WIRE)}"; }
uname() { echo 6.1.0-57-amd64; }
host_run() {
	case " $* " in
	*" ss "*) echo 'UNCONN 0 0 192.0.3.2:8000 0.0.0.0:*' ;;
	*" no-such-test "*) cat "${file('probe', host.probe ?? KNOWS_Z)}" >&2; return 1 ;;
	*" -r "*) echo 'rx=110 (7 MB)' >&2 ;;
	*" -Z 1 "*) cat "${file('z1', z1.said)}" >&2; return ${z1.status} ;;
	*" -Z 0 "*) cat "${file('z0', z0.said)}" >&2; return ${z0.status} ;;
	*" ethtool -k "*) echo 'scatter-gather: on' ;;
	*" ethtool -K "*) echo "$*" >>"${join(dir, 'ethtool.log')}" ;;
	esac
}
MZC_TX_OUT=${join(dir, 'tx.out')}
MZC_RX_OUT=${join(dir, 'rx.out')}`;
    const script = `exec 3>&1; . "${join(SUITES_DIR, 'lib', 'common.sh')}"; . "${join(SUITES_DIR, 'kernel-msg-zerocopy.sh')}"; ${stubs}\ntest_${name.replace(/-/g, '_')}`;
    const env = { PATH: process.env['PATH'] ?? '', ZCNIC_SUITES_DIR: SUITES_DIR, ZCNIC_HOSTROOT: '', ZCNIC_MSG_ZEROCOPY_DIR: dir, ZCNIC_SKIP_FILE: join(dir, 'skip') };
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env });
    const skipReason = r.status === 4 ? readFileSync(join(dir, 'skip'), 'utf8').trim() : null;
    const ethtool = (() => {
      try {
        return readFileSync(join(dir, 'ethtool.log'), 'utf8');
      } catch {
        return '';
      }
    })();
    return { status: r.status, ktap: r.stdout, skipReason, ethtool };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('zero-copy: -Z 1 exits 0 with zc=y, completions read, frames on both NICs: ok, with its figures', () => {
  for (const name of ['tcp-ipv4', 'tcp-ipv6', 'udp-ipv4', 'udp-ipv6']) {
    const r = runTest(name);
    assert.is(r.status, 0, r.ktap);
    assert.match(r.ktap, '# zcnic-metric sent=120');
    assert.match(r.ktap, '# zcnic-metric wireFrames=5400');
  }
});

test('zero-copy: a completion that says COPIED fails the test, saying so', () => {
  const r = runTest('tcp-ipv4', { z1: COPIED });
  assert.is(r.status, 1);
  assert.match(r.ktap, '# msg_zerocopy -Z 1 exited 1: a completion said the kernel copied (ee_code: 0 != expected 1)');
});

test('zero-copy: no completion read, nothing checked: fails', () => {
  const r = runTest('udp-ipv4', { z1: { said: 'tx=120 (0 MB) txc=0 zc=y', status: 0 } });
  assert.is(r.status, 1);
  assert.match(r.ktap, 'read no completion (txc=0)');
});

test('zero-copy: the device must have seen the frames: none on NIC 2, or fewer bytes than received, fails', () => {
  const none = runTest('tcp-ipv4', { stats: 'transmitq_frames=5400 remoteNic_receiveq_frames=0 remoteNic_receiveq_bytes=0' });
  assert.is(none.status, 1);
  assert.match(none.ktap, "# NIC 2's receiveq counted no frame");
  const short = runTest('tcp-ipv4', { stats: 'transmitq_frames=5400 remoteNic_receiveq_frames=10 remoteNic_receiveq_bytes=15000' });
  assert.is(short.status, 1);
  assert.match(short.ktap, "fewer than the receiver's 7 MB");
});

test('a msg_zerocopy without -Z: SKIP saying so; one that does not run at all: a failure', () => {
  const old = runTest('tcp-ipv4', { probe: "msg_zerocopy: invalid option -- 'Z'\nmsg_zerocopy: Usage: msg_zerocopy [options] <test>" });
  assert.is(old.status, 4, old.ktap);
  assert.match(old.skipReason ?? '', /^msg_zerocopy of kernel 6\.1\.0-57-amd64 has no -Z: /);
  const broken = runTest('tcp-ipv4', { probe: 'chroot: failed to run command: No such file or directory' });
  assert.is(broken.status, 1);
  assert.match(broken.ktap, '# msg_zerocopy did not run: chroot: failed');
});

test('negative control: with sg off, -Z 1 fails with COPIED and -Z 0 passes: ok, and sg is back on', () => {
  const r = runTest('sg-off-copies-tcp', { z1: COPIED });
  assert.is(r.status, 0, r.ktap);
  assert.equal(r.ethtool.trim().split('\n'), ['ethtool -K eth0 sg off', 'ethtool -K eth0 sg on']);
});

test('negative control: a -Z 1 that still passes with sg off fails the control, and sg is back on all the same', () => {
  const r = runTest('sg-off-copies-udp', { z1: ZERO_COPY });
  assert.is(r.status, 1);
  assert.match(r.ktap, "with scatter-gather off, msg_zerocopy -Z 1 exited 0 without saying 'ee_code: 0 != expected 1'");
  assert.equal(r.ethtool.trim().split('\n'), ['ethtool -K eth0 sg off', 'ethtool -K eth0 sg on']);
});

const SOME_ZERO_COPY = { said: 'serr: ee_code: 1 != expected 0\nserr: ee_code: 0 != expected 1\ntx=570 (35 MB) txc=570 zc=n', status: 1 };

test('negative control: -Z 0 failing with sg off fails the UDP control', () => {
  const r = runTest('sg-off-copies-udp', { z1: COPIED, z0: SOME_ZERO_COPY });
  assert.is(r.status, 1);
  assert.match(r.ktap, 'with scatter-gather off, msg_zerocopy -Z 0 exited 1');
});

test('negative control: over TCP, -Z 0 failing with sg off (software GSO\'s unflagged copies) is only said', () => {
  const r = runTest('sg-off-copies-tcp', { z1: COPIED, z0: SOME_ZERO_COPY });
  assert.is(r.status, 0, r.ktap);
  assert.match(r.ktap, '# msg_zerocopy -Z 0 exited 1: some TCP completions say zero-copy');
});

test.run();
