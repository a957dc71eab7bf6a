// The testpmd driver: its stats parser on captured real output, its command line, and one real
// DPDK-to-DPDK run (vhost backend rxonly <- virtio-user frontend txonly) that must count exactly.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

import {
  buildTestpmdArgs,
  dpdkRuntimeDir,
  parsePortStats,
  pidAlive,
  StatsParseError,
  Testpmd,
  TestpmdError,
} from '../../harness/dpdk/testpmd.js';

// Compiled to dist/test/harness/; fixtures stay in the source tree.
const FIXTURES = new URL('../../../test/fixtures/testpmd/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

const parser = suite('parsePortStats');

parser('reads the newest NIC block of a real backend session', () => {
  const stats = parsePortStats(fixture('backend-rxonly-session.txt'));
  assert.is(stats.length, 1);
  const p = stats[0];
  assert.ok(p);
  assert.is(p.port, 0);
  assert.is(p.rxPackets, 248672);
  assert.is(p.rxBytes, 373008000);
  assert.is(p.txPackets, 0);
  assert.is(p.rxMissed, 0);
  assert.is(p.rxErrors, 0);
  assert.is(p.txErrors, 0);
  assert.is(p.rxPps, 957);
  assert.is(p.rxBps, 11492080);
});

parser('reads the first reply alone', () => {
  const text = fixture('backend-rxonly-session.txt');
  const first = text.slice(0, text.indexOf('testpmd> stop'));
  assert.is(parsePortStats(first)[0]?.rxPackets, 248416);
});

parser('ignores the Forward statistics printed by stop', () => {
  const text = fixture('frontend-txonly-stop.txt');
  const stopOnly = text.slice(0, text.indexOf('testpmd> show port stats all'));
  assert.ok(stopOnly.includes('TX-dropped'));
  assert.equal(parsePortStats(stopOnly), []);
  const p = parsePortStats(text)[0];
  assert.is(p?.txPackets, 248672);
  assert.is(p?.txBytes, 373008000);
  assert.is(p?.txPps, 942);
  assert.is(p?.rxPackets, 0);
});

parser('survives a prompt and an event landing inside a block', () => {
  const text = fixture('frontend-txonly-stop.txt')
    .replace('TX-packets: 248672     TX-errors', 'TX-packets: 248672  testpmd>    TX-errors')
    .replace('  RX-errors: 0\n', '  RX-errors: 0\n\nPort 0: link state change event\n');
  const p = parsePortStats(text)[0];
  assert.is(p?.txPackets, 248672);
  assert.is(p?.txErrors, 0);
});

parser('handles several ports and CRLF line ends', () => {
  const text = fixture('frontend-txonly-stop.txt');
  const block = text.slice(text.indexOf('  ######'), text.lastIndexOf('testpmd> '));
  const two = `${block.replace('for port 0', 'for port 1').replace('248672', '7')}${block}`.replace(/\n/g, '\r\n');
  const stats = parsePortStats(two);
  assert.equal(
    stats.map((s) => [s.port, s.txPackets]),
    [
      [0, 248672],
      [1, 7],
    ],
  );
});

parser('rejects a truncated block', () => {
  const text = fixture('frontend-txonly-stop.txt');
  const cut = text.slice(0, text.indexOf('TX-packets: 248672     TX-errors'));
  assert.throws(() => parsePortStats(cut), (e: unknown) => e instanceof StatsParseError);
});

parser('returns nothing for text without statistics', () => {
  assert.equal(parsePortStats('testpmd> \nPort 0: link state change event\n'), []);
});

parser.run();

const args = suite('buildTestpmdArgs');

args('frontend: virtio-user, single file segments, pinned lcores', () => {
  const a = buildTestpmdArgs(
    { role: 'frontend', socket: 'S', forwardMode: 'txonly', txPktLen: 1500, burst: 64, rxd: 512, txd: 1024 },
    'pfx',
  );
  const sep = a.indexOf('--');
  const eal = a.slice(0, sep);
  const app = a.slice(sep + 1);
  assert.ok(eal.includes('--lcores=0@1,1@0'));
  assert.ok(eal.includes('--single-file-segments'));
  assert.ok(eal.includes('--file-prefix=pfx'));
  assert.is(eal[eal.indexOf('--vdev') + 1], 'net_virtio_user0,path=S,queues=1');
  assert.equal(app, ['-i', '--forward-mode=txonly', '--nb-cores=1', '--txpkts=1500', '--burst=64', '--rxd=512', '--txd=1024']);
});

args('backend: vhost, queues, custom cpus', () => {
  const a = buildTestpmdArgs({ role: 'backend', socket: 'S', forwardMode: 'io', queues: 2, fwdCpu: 0, mainCpu: 1 }, 'p');
  assert.ok(a.includes('--lcores=0@1,1@0'));
  assert.ok(a.includes('net_vhost0,iface=S,queues=2'));
  assert.ok(a.includes('--rxq=2') && a.includes('--txq=2'));
  assert.not.ok(a.includes('--single-file-segments'));
});

args('rejects bad options', () => {
  assert.throws(() => buildTestpmdArgs({ role: 'backend', socket: 'a,b', forwardMode: 'io' }, 'p'), /','/);
  assert.throws(() => buildTestpmdArgs({ role: 'backend', socket: 'S', forwardMode: 'io', burst: 0 }, 'p'), /burst/);
});

args.run();

const live = suite('testpmd (real DPDK)');

async function testpmdInstalled(): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v dpdk-testpmd'], { reject: false });
  return r.exitCode === 0;
}

live('frontend refuses to start without the backend socket', async () => {
  const err = await Testpmd.start({ role: 'frontend', socket: join(tmpdir(), 'zcnic-no-such.sock'), forwardMode: 'txonly' }).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof TestpmdError);
  assert.match((err as Error).message, /start the backend/);
});

live('a testpmd that fails at startup reports its last lines and leaves nothing', async () => {
  assert.ok(await testpmdInstalled(), 'dpdk-testpmd is not installed (Debian package dpdk-dev)');
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-test-'));
  try {
    const err = await Testpmd.start({
      role: 'backend',
      socket: join(dir, 'vh.sock'),
      forwardMode: 'rxonly',
      extraArgs: ['--no-such-option'],
      filePrefix: `zcnic-vh-${process.pid}-bad`,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof TestpmdError, String(err));
    const msg = (err as Error).message;
    assert.match(msg, /exited/);
    assert.match(msg, /last stderr lines/);
    assert.match(msg, /no-such-option/);
    assert.not.ok(existsSync(dpdkRuntimeDir(`zcnic-vh-${process.pid}-bad`)), 'EAL runtime directory left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

live('vhost rxonly <- virtio-user txonly: exact counts, nothing left behind', async () => {
  assert.ok(await testpmdInstalled(), 'dpdk-testpmd is not installed (Debian package dpdk-dev)');
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-test-'));
  const socket = join(dir, 'vh.sock');
  let backend: Testpmd | undefined;
  let frontend: Testpmd | undefined;
  try {
    backend = await Testpmd.start({ role: 'backend', socket, forwardMode: 'rxonly' });
    frontend = await Testpmd.start({ role: 'frontend', socket, forwardMode: 'txonly', txPktLen: 64 });
    await backend.waitLinkUp(15_000);
    await backend.startForwarding();
    await frontend.startForwarding();
    await sleep(2000);
    const mid = await frontend.readStats();
    assert.ok((mid.ports[0]?.txPackets ?? 0) > 0, 'frontend sent nothing while forwarding');

    await frontend.stopForwarding();
    // The backend may still be taking the last burst off the ring: wait until it stops moving.
    let prev = -1;
    for (let i = 0; i < 100; i++) {
      const n = (await backend.portStats()).rxPackets;
      if (n === prev) break;
      prev = n;
      await sleep(20);
    }
    await backend.stopForwarding();

    const tx = (await frontend.portStats()).txPackets;
    const rx = (await backend.portStats()).rxPackets;
    assert.ok(tx > 0, 'no packets sent');
    assert.is(rx, tx, `backend RX ${rx} != frontend TX ${tx}`);

    const pids = [frontend.pid, backend.pid];
    const dirs = [frontend.runtimeDir, backend.runtimeDir];
    assert.ok(pids.every(pidAlive));
    const fe = await frontend.stop();
    const be = await backend.stop();
    assert.is(fe.endedBy, 'request');
    assert.is(be.endedBy, 'request');
    assert.is(fe.exitCode, 0);
    await frontend.close(); // a second close is a no-op
    await backend.close();
    assert.not.ok(pids.some(pidAlive), `still running: ${pids.filter(pidAlive).join(', ')}`);
    assert.not.ok(dirs.some(existsSync), 'EAL runtime directories left behind');
    assert.not.ok(existsSync(socket), 'vhost socket left behind');
  } finally {
    await frontend?.close();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

live.run();
