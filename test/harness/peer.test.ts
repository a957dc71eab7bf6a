// The netns peer's program (harness/peer.ts), run here in the host's namespace on loopback:
// the in-band digests it answers for a TCP stream and a UDP stream, and its stats socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UDP_END_MARKER } from '../../harness/peer.js';

const peerEntry = new URL('../../harness/peer.js', import.meta.url).pathname;

test('the peer answers the byte count and SHA-256 of each stream', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-peer-'));
  const control = join(dir, 'peer.ctl');
  const child = spawn(process.execPath, [peerEntry, '--port', '0', '--control', control], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        const m = /listening (\d+)/.exec(chunk);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error('peer exited')));
    });
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    const want = createHash('sha256').update(data).digest('hex');

    const tcpAnswer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(data));
      let got = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (got += d));
      socket.on('end', () => resolve(got));
      socket.on('error', reject);
    });
    assert.is(tcpAnswer, `${data.length} ${want}\n`);

    const udp = createSocket('udp4');
    const udpAnswer = await new Promise<string>((resolve) => {
      udp.on('message', (msg) => resolve(msg.toString()));
      udp.connect(port, '127.0.0.1', () => {
        for (let at = 0; at < 30_000; at += 1000) udp.send(data.subarray(at, at + 1000));
        setTimeout(() => udp.send(UDP_END_MARKER), 100);
      });
    });
    udp.close();
    assert.is(udpAnswer, `30 30000 ${createHash('sha256').update(data.subarray(0, 30_000)).digest('hex')}`);

    const stats = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const s = createConnection(control, () => s.write('{"cmd":"stats"}\n'));
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        s.end();
        resolve(JSON.parse(d) as Record<string, unknown>);
      });
      s.on('error', reject);
    });
    assert.equal(stats.tcp, { streams: 1, bytes: data.length });
    assert.equal(stats.udp, { streams: 1, datagrams: 30, bytes: 30_000 });
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
