// The netns peer's program (harness/peer.ts), run here in the host's namespace on loopback:
// the in-band digests it answers for a TCP stream and a UDP stream, and its stats socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSendRequest, SEND_MAX_BYTES, streamPattern, UDP_END_MARKER } from '../../harness/peer.js';

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

test('streamPattern matches pattern_word of the guest receiver (zcrx-recv.c)', () => {
  // Bytes printed by the C pattern_word/verify formula, compiled on the host, for these
  // (seed, offset) pairs: 8 bytes each.
  const fromC: Array<[number, number, string]> = [
    [1, 0, 'b7284e5100000000'],
    [1, 8, '27b4f08506c3f430'],
    [1, 1000000, '91e4a057042a7c4c'],
    [1, 4294967300, '3c6b726fbcf319e0'],
    [0xdeadbeef, 0, 'a9c6e50dd7896add'],
    [0xdeadbeef, 8, '4b137a61759b8695'],
    [0xdeadbeef, 4294967300, 'd9fbb6cbce622dbf'],
  ];
  for (const [seed, offset, hex] of fromC) assert.is(streamPattern(seed, offset, 8).toString('hex'), hex, `seed ${seed} offset ${offset}`);
  // Any chunking gives the same stream, and a length that is not a multiple of 4 is cut.
  const whole = streamPattern(7, 0, 1 << 16);
  const pieces = Buffer.concat([streamPattern(7, 0, 4096), streamPattern(7, 4096, (1 << 16) - 4096)]);
  assert.ok(whole.equals(pieces));
  assert.is(streamPattern(7, 0, 10).length, 10);
  assert.throws(() => streamPattern(7, 2, 4), /not a multiple of 4/);
});

test('parseSendRequest checks every field', () => {
  const ok = { host: '198.18.0.2', port: 7000, bytes: 1 << 20, seed: 0xffffffff };
  assert.equal(parseSendRequest(ok), ok);
  assert.match(parseSendRequest({ ...ok, host: '198.18.0.256' }) as string, /host must be an IPv4 address/);
  assert.match(parseSendRequest({ ...ok, host: 7 }) as string, /host must be/);
  assert.match(parseSendRequest({ ...ok, port: 0 }) as string, /port must be 1\.\.65535/);
  assert.match(parseSendRequest({ ...ok, port: '7000' }) as string, /port must be/);
  assert.match(parseSendRequest({ ...ok, bytes: SEND_MAX_BYTES + 1 }) as string, /bytes must be/);
  assert.match(parseSendRequest({ ...ok, bytes: 1.5 }) as string, /bytes must be/);
  assert.match(parseSendRequest({ ...ok, seed: -1 }) as string, /seed must be/);
});

test('send: the peer connects to a listener and sends the pattern; errors are answered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-peer-'));
  const control = join(dir, 'peer.ctl');
  const child = spawn(process.execPath, [peerEntry, '--port', '0', '--control', control], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ask = (request: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const s = createConnection(control, () => s.write(`${JSON.stringify(request)}\n`));
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        got += d;
        if (got.includes('\n')) {
          s.end();
          resolve(JSON.parse(got) as Record<string, unknown>);
        }
      });
      s.on('error', reject);
    });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => /listening/.test(chunk) && resolve());
      child.on('exit', () => reject(new Error('peer exited')));
    });
    const bytes = 1_000_003;
    const received: Buffer[] = [];
    const receiver = createServer((socket) => {
      socket.on('data', (d: Buffer) => received.push(d));
      // The receiver closes once it has everything, as zcrx-recv does at EOF.
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;
    const answer = await ask({ cmd: 'send', host: '127.0.0.1', port, bytes, seed: 42 });
    receiver.close();
    assert.is(answer.sent, bytes);
    assert.type(answer.ms, 'number');
    assert.ok(Buffer.concat(received).equals(streamPattern(42, 0, bytes)));
    assert.match(String((await ask({ cmd: 'send', host: '127.0.0.1', port, bytes, seed: 42 })).error), /^send to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    assert.match(String((await ask({ cmd: 'send', host: '127.0.0.1', port: 0, bytes, seed: 42 })).error), /port must be/);
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
