// Tests of UnixStreamListener and UnixStreamConnection. This file is also the
// worker script of the transfer test: in a worker it runs readAll() instead.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { isSysError, sys, UnixStreamConnection, UnixStreamListener } from 'vfio-user-ts';

const { close, eventfdCreate, eventfdRead, eventfdWrite, unixListen } = sys;

/** The byte at position i of the transfer test's stream. */
const patternByte = (i: number) => (i * 7 + (i >>> 12)) & 0xff;

/** Resolves with what `start` passes to its callback, or rejects after `ms`. */
function waitFor<T>(what: string, start: (done: (value: T) => void) => void, ms = 2000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    start((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/** What `fn` throws; fails the test if it returns. */
function thrown(fn: () => unknown): unknown {
  let threw = false;
  let error: unknown;
  try {
    fn();
  } catch (err) {
    threw = true;
    error = err;
  }
  assert.ok(threw, 'expected an exception');
  return error;
}

function tempDir(): { path(name: string): string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-unix-'));
  return { path: (name) => join(dir, name), done: () => rmSync(dir, { recursive: true }) };
}

/** A listener with one connection to it: [client, server side]. */
async function connectedPair(path: string) {
  const listener = UnixStreamListener.listen(path);
  const accepted = waitFor<UnixStreamConnection>('the connection', (done) => listener.onConnection(done));
  const client = UnixStreamConnection.connect(path);
  const server = await accepted;
  return { listener, client, server };
}

/** Worker: connects, reads everything until end of stream, checks the pattern. */
function readAll(path: string): void {
  const conn = UnixStreamConnection.connect(path);
  const buf = new Uint8Array(65536);
  const fds: number[] = [];
  let total = 0;
  let firstBad = -1;
  conn.onReadable(() => {
    for (;;) {
      const n = conn.read(buf, 0, buf.length, fds);
      if (n < 0) return;
      if (n === 0) {
        conn.close();
        const fdsAtStart = fds.length;
        fds.forEach((fd) => eventfdWrite(fd, 5)); // tell the sender through its own eventfd
        fds.forEach(close);
        parentPort!.postMessage({ total, firstBad, fdsAtStart });
        return;
      }
      for (let i = 0; i < n; i++) {
        if (firstBad < 0 && buf[i] !== patternByte(total + i)) firstBad = total + i;
      }
      total += n;
    }
  });
}

if (!isMainThread) {
  readAll(workerData as string);
} else {
  test('a listener socket file is mode 0600 and removed by close', () => {
    const dir = tempDir();
    const listener = UnixStreamListener.listen(dir.path('l.sock'));
    const st = statSync(dir.path('l.sock'));
    assert.ok(st.isSocket());
    assert.is(st.mode & 0o777, 0o600);
    assert.is(listener.path, dir.path('l.sock'));
    listener.close();
    listener.close();
    assert.ok(listener.closed);
    assert.throws(() => statSync(dir.path('l.sock')), /ENOENT/);
    assert.throws(() => listener.onConnection(() => {}), /closed/);
    dir.done();
  });

  test('listen replaces a stale socket file but no other file', () => {
    const dir = tempDir();
    close(unixListen(dir.path('stale.sock'), 1)); // leaves its socket file behind
    const listener = UnixStreamListener.listen(dir.path('stale.sock'));
    listener.close();
    writeFileSync(dir.path('plain'), 'keep me');
    const err = thrown(() => UnixStreamListener.listen(dir.path('plain')));
    assert.ok(isSysError(err, 'EADDRINUSE'), String(err));
    assert.is(readFileSync(dir.path('plain'), 'utf8'), 'keep me');
    dir.done();
  });

  test('onConnection gets every pending connection', async () => {
    const dir = tempDir();
    const listener = UnixStreamListener.listen(dir.path('many.sock'));
    const clients = [0, 1, 2].map(() => UnixStreamConnection.connect(dir.path('many.sock')));
    const servers: UnixStreamConnection[] = [];
    await waitFor<void>('three connections', (done) =>
      listener.onConnection((conn) => {
        if (servers.push(conn) === 3) done();
      }),
    );
    assert.is(new Set(servers.map((c) => c.fd)).size, 3);
    [...clients, ...servers].forEach((c) => c.close());
    listener.close();
    dir.done();
  });

  test('messages and fds go both ways', async () => {
    const dir = tempDir();
    const { listener, client, server } = await connectedPair(dir.path('msg.sock'));
    const efd = eventfdCreate(0, true);
    const buf = new Uint8Array(64);
    const fds: number[] = [];
    const got = waitFor<number>('the message', (done) =>
      server.onReadable(() => {
        const n = server.read(buf, 0, buf.length, fds);
        if (n > 0) done(n);
      }),
    );
    client.write(new TextEncoder().encode('hello device'), [efd]);
    const n = await got;
    assert.is(new TextDecoder().decode(buf.subarray(0, n)), 'hello device');
    assert.is(fds.length, 1);
    eventfdWrite(fds[0]!, 4);
    assert.is(eventfdRead(efd), 4, 'the received fd is the same eventfd');
    close(fds[0]!);

    const reply = waitFor<string>('the reply', (done) =>
      client.onReadable(() => {
        const m = client.read(buf, 0, buf.length, []);
        if (m > 0) done(new TextDecoder().decode(buf.subarray(0, m)));
      }),
    );
    server.write(new TextEncoder().encode('hello driver'));
    assert.is(await reply, 'hello driver');
    assert.throws(() => client.write(new Uint8Array(0), [efd]), /at least 1 byte/);
    client.write(new Uint8Array(0)); // nothing to do
    [client, server, listener].forEach((x) => x.close());
    close(efd);
    dir.done();
  });

  test('end of stream reaches onReadable as a read of 0; closed objects refuse use', async () => {
    const dir = tempDir();
    const { listener, client, server } = await connectedPair(dir.path('eof.sock'));
    const eof = waitFor<number>('end of stream', (done) =>
      server.onReadable(() => done(server.read(new Uint8Array(16), 0, 16, []))),
    );
    client.close();
    client.close();
    assert.is(await eof, 0);
    server.close();
    assert.ok(server.closed);
    assert.throws(() => server.read(new Uint8Array(1), 0, 1, []), /closed/);
    assert.throws(() => server.write(new Uint8Array(1)), /closed/);
    listener.close();
    dir.done();
  });

  test('a reset connection also reads as end of stream', async () => {
    const dir = tempDir();
    const { listener, client, server } = await connectedPair(dir.path('reset.sock'));
    client.write(new Uint8Array([1, 2, 3])); // never read by the server...
    server.close(); // ...so closing resets the connection
    assert.is(client.read(new Uint8Array(16), 0, 16, []), 0);
    client.close();
    listener.close();
    dir.done();
  });

  test('write sends all of a large message to a reader in a worker, fds with the first byte', async () => {
    const dir = tempDir();
    const listener = UnixStreamListener.listen(dir.path('big.sock'));
    const size = 4 * 1024 * 1024 + 123;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = patternByte(i);
    const efd = eventfdCreate(0, true);
    listener.onConnection((conn) => {
      conn.write(data, [efd]); // far more than the socket buffer holds
      conn.close();
    });
    const worker = new Worker(new URL(import.meta.url), { workerData: dir.path('big.sock') });
    const result = await waitFor<unknown>('the worker', (done) => worker.on('message', done), 10000);
    assert.equal(result, { total: size, firstBad: -1, fdsAtStart: 1 });
    assert.is(await waitFor<number>('the worker to exit', (done) => worker.on('exit', done), 10000), 0);
    assert.is(eventfdRead(efd), 5);
    close(efd);
    listener.close();
    dir.done();
  });

  test('write gives up with ETIMEDOUT when the peer does not read', async () => {
    const dir = tempDir();
    const { listener, client, server } = await connectedPair(dir.path('stuck.sock'));
    const started = Date.now();
    const err = thrown(() => client.write(new Uint8Array(16 * 1024 * 1024)));
    const waited = Date.now() - started;
    assert.is((err as NodeJS.ErrnoException).code, 'ETIMEDOUT');
    assert.ok(waited >= 1900 && waited < 5000, `waited ${waited} ms`);
    [client, server, listener].forEach((x) => x.close());
    dir.done();
  });

  test.run();
}
