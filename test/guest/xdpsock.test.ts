/**
 * Builds guest/xdpsock with its build.sh and runs it on a veth pair inside a private network
 * namespace: txonly → rxdrop, txonly → l2fwd → back, native XDP, the zero-copy error, and
 * --umem-map. Needs root, iproute2, gcc and the static libxdp/libbpf/libelf/zlib libraries;
 * when one is missing the test fails and says what is missing (it never skips quietly).
 *
 * The receivers get rings and umems large enough to hold the whole 10000-frame burst, so
 * counts are exact even when the receiving process is not scheduled while the sender runs
 * (on a busy 2-core machine it often is not, and a 2048-entry RX ring then overflows).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const COUNT = 10000;
/** Per process: a run that works takes well under a second. */
const PROCESS_TIMEOUT_MS = 9000;
/** Enough RX ring and umem for the whole burst (fill ring = 2 * ring). */
const BIG_RX = ['--ring', '16384', '--frames', '16384', '-f', '2048'];
/** txonly --rx splits its umem in two halves. */
const BIG_TXRX = ['--ring', '16384', '--frames', '32768', '-f', '2048'];

type Summary = Record<string, string | number | boolean>;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json: Summary | undefined;
}

interface Started {
  ready: Promise<void>;
  done: Promise<Run>;
}

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'guest', 'xdpsock', 'build.sh'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find guest/xdpsock/build.sh above the test file');
    dir = up;
  }
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (AF_XDP, netns and /proc/self/pagemap need it)');
  for (const tool of ['ip', 'gcc']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) missing.push(`${tool} in PATH`);
  }
  return missing;
}

const root = findRoot();
const ns = `zcx-test-${process.pid}`;
let workDir = '';
let bin = '';
const children = new Set<ReturnType<typeof spawn>>();

function deleteNetns(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  spawnSync('ip', ['netns', 'del', ns]);
}

// Last resort if the runner dies between setup and cleanup.
process.on('exit', () => {
  deleteNetns();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function createNetns(): void {
  deleteNetns();
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['-n', ns, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1']);
  for (const dev of ['veth0', 'veth1']) {
    // No IPv6 router/neighbour noise on the wire (xdpsock would count it as rxForeign).
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
}

async function withNetns(body: () => Promise<void>): Promise<void> {
  ensureBuilt();
  createNetns();
  try {
    await body();
  } finally {
    deleteNetns();
  }
}

function start(iface: string, args: string[]): Started {
  const child = spawn('ip', ['netns', 'exec', ns, bin, '-i', iface, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  let onReady: () => void = () => {};
  let onNotReady: (e: Error) => void = () => {};
  const ready = new Promise<void>((res, rej) => {
    onReady = res;
    onNotReady = rej;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.includes('xdpsock: ready')) onReady();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), PROCESS_TIMEOUT_MS);
  const done = new Promise<Run>((res) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      onNotReady(new Error(`xdpsock ${args.join(' ')} exited (${code ?? signal}) before it was ready:\n${stderr}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      let json: Summary | undefined;
      try {
        json = line ? (JSON.parse(line) as Summary) : undefined;
      } catch {
        json = undefined;
      }
      res({ code, signal, stdout, stderr, json });
    });
  });
  ready.catch(() => {}); // the test awaits it when it matters
  return { ready, done };
}

function summary(run: Run, what: string): Summary {
  assert.ok(run.json, `${what}: no JSON summary (exit ${run.code ?? run.signal})\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run.json;
}

function expectExit0(run: Run, what: string): void {
  assert.is(run.code, 0, `${what} exited ${run.code ?? run.signal}:\n${run.stderr}\n${run.stdout}`);
}

function expectCounts(s: Summary, expected: Summary, what: string): void {
  for (const [k, v] of Object.entries(expected)) assert.is(s[k], v, `${what}: ${k} is ${String(s[k])}, expected ${String(v)}`);
}

const cleanRx = { rxCorrupt: 0, rxForeign: 0, rxDuplicate: 0, rxOutOfOrder: 0, rxGaps: 0, rxDropped: 0, rxRingFull: 0, rxInvalid: 0 };

/**
 * Checks the prerequisites and builds xdpsock once. Called from each test rather than from
 * test.before: uvu 0.5 swallows an exception thrown by a before hook, so a missing
 * prerequisite would pass as "0 / 5" without a word.
 */
function ensureBuilt(): void {
  if (bin) return;
  const missing = missingPrerequisites();
  if (missing.length) throw new Error(`the xdpsock veth test needs ${missing.join(', ')}`);
  workDir = mkdtempSync(join(tmpdir(), 'zcx-xdpsock-'));
  sh(join(root, 'guest', 'xdpsock', 'build.sh'), [join(workDir, 'xdpsock')]);
  bin = join(workDir, 'xdpsock');
}

test.after(() => {
  deleteNetns();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = '';
});

test('generic XDP: txonly sends 10000 test frames, rxdrop verifies exactly 10000', async () => {
  await withNetns(async () => {
    const rx = start('veth1', ['-S', '-r', '-C', String(COUNT), '-d', '6', '-w', ...BIG_RX]);
    await rx.ready;
    const tx = start('veth0', ['-S', '-t', '-C', String(COUNT), '-s', '64']);
    const [t, r] = [await tx.done, await rx.done];
    expectExit0(t, 'txonly');
    expectExit0(r, 'rxdrop');
    const ts = summary(t, 'txonly');
    const rs = summary(r, 'rxdrop');
    expectCounts(ts, { mode: 'txonly', xdpMode: 'skb', txFrames: COUNT, txCompleted: COUNT, txBytes: COUNT * 64, txInvalid: 0 }, 'txonly');
    expectCounts(rs, { mode: 'rxdrop', xdpMode: 'skb', rxFrames: COUNT, rxVerified: COUNT, rxBytes: COUNT * 64, rxFlows: 1, ...cleanRx }, 'rxdrop');
  });
});

test('generic XDP: l2fwd reflects every frame and the sender verifies them all', async () => {
  await withNetns(async () => {
    const fwd = start('veth1', ['-S', '-l', '-C', String(COUNT), '-d', '6', '-w', ...BIG_RX]);
    await fwd.ready;
    const tx = start('veth0', ['-S', '-t', '--rx', '-C', String(COUNT), '-d', '6', '-w', ...BIG_TXRX]);
    const [t, f] = [await tx.done, await fwd.done];
    expectExit0(t, 'txonly --rx');
    expectExit0(f, 'l2fwd');
    const ts = summary(t, 'txonly --rx');
    const fs = summary(f, 'l2fwd');
    expectCounts(fs, { mode: 'l2fwd', rxFrames: COUNT, rxVerified: COUNT, txFrames: COUNT, txCompleted: COUNT, ...cleanRx }, 'l2fwd');
    expectCounts(ts, { txFrames: COUNT, txCompleted: COUNT, rxFrames: COUNT, rxVerified: COUNT, ...cleanRx }, 'txonly --rx');
  });
});

test('native XDP on veth: 1514-byte frames, every byte verified', async () => {
  await withNetns(async () => {
    const rx = start('veth1', ['-N', '-r', '-C', String(COUNT), '-d', '6', '-w', ...BIG_RX]);
    await rx.ready;
    const tx = start('veth0', ['-N', '-t', '-C', String(COUNT), '-s', '1514', '-f', '2048']);
    const [t, r] = [await tx.done, await rx.done];
    expectExit0(t, 'txonly');
    expectExit0(r, 'rxdrop');
    expectCounts(summary(t, 'txonly'), { xdpMode: 'native', txFrames: COUNT, txCompleted: COUNT }, 'txonly');
    expectCounts(summary(r, 'rxdrop'), { xdpMode: 'native', rxFrames: COUNT, rxVerified: COUNT, rxBytes: COUNT * 1514, ...cleanRx }, 'rxdrop');
  });
});

test('zero-copy on veth fails with a clear message and exit status 1', async () => {
  await withNetns(async () => {
    const r = await start('veth1', ['-z', '-r', '-d', '1']).done;
    assert.is(r.code, 1, `exit ${r.code ?? r.signal}: ${r.stderr}`);
    assert.match(r.stderr, /xsk_socket__create: .*\(EOPNOTSUPP\): zero-copy not supported by veth1/);
    assert.is(r.stdout, '');
  });
});

test('--umem-map lists the physical address of every umem page', async () => {
  await withNetns(async () => {
    const map = join(workDir, 'umem.map');
    const r = await start('veth1', ['-S', '-r', '-d', '0.2', '--frames', '256', '--umem-map', map]).done;
    expectExit0(r, 'rxdrop --umem-map');
    const lines = readFileSync(map, 'utf8').trim().split('\n');
    assert.is(lines.length, 256, 'one line per 4 KiB page of a 256 x 4096-byte umem');
    const phys = new Set<bigint>();
    lines.forEach((line, i) => {
      const m = /^([0-9a-f]+) ([0-9a-f]+)$/.exec(line);
      assert.ok(m, `bad line ${i}: ${line}`);
      assert.is(BigInt(`0x${m[1]}`), BigInt(i * 4096));
      const p = BigInt(`0x${m[2]}`);
      assert.ok(p > 0n && p % 4096n === 0n, `page ${i}: ${m[2]} is not a page address`);
      phys.add(p);
    });
    assert.is(phys.size, 256, 'every page has its own physical address');
  });
});

test.run();
