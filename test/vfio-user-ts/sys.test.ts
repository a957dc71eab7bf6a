// Tests of the zcnic_sys addon through sys.ts. This file is also the worker
// script of the worker tests: in a worker it runs runWorker() instead.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { isSysError, sys } from 'vfio-user-ts';

const {
  accept, close, eventfdCreate, eventfdRead, eventfdWrite, mapShared, memfdCreate,
  recvMsg, sendMsg, unixConnect, unixListen, unmap, watchReadable,
} = sys;

const GiB = 2 ** 30;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

/** The open-file flags of one of our fds, from /proc. */
function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(m, `flags of fd ${fd}`);
  return parseInt(m[1]!, 8);
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
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

const isRangeError = (err: unknown) => err instanceof RangeError;
const isTypeError = (err: unknown) => err instanceof TypeError;

function expectSysError(fn: () => unknown, code: string, syscall: string): void {
  const err = thrown(fn);
  assert.ok(isSysError(err, code), `expected ${code}, got ${String(err)}`);
  assert.is(err.syscall, syscall);
  assert.ok(err.message.startsWith(`${syscall}: ${code} (`), err.message);
}

/** A connected pair of unix stream sockets made through a listener. */
function socketPair(): { client: number; server: number; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-sys-'));
  const listener = unixListen(join(dir, 'pair.sock'), 4);
  const client = unixConnect(join(dir, 'pair.sock'));
  const server = accept(listener);
  // Connected: the socket file is no longer needed, and a test that fails before done() must
  // not leave its folder behind.
  rmSync(dir, { recursive: true });
  assert.ok(server >= 0, 'a connection is pending');
  assert.is(accept(listener), -1, 'only one connection is pending');
  return {
    client,
    server,
    done() {
      close(client);
      close(server);
      close(listener);
    },
  };
}

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** One recvMsg into a fresh buffer: the bytes as text, and the fds. */
function receive(fd: number, length = 64): { text: string; fds: number[]; n: number } {
  const buf = new Uint8Array(length);
  const fds: number[] = [];
  const n = recvMsg(fd, buf, 0, length, fds);
  return { n, fds, text: new TextDecoder().decode(buf.subarray(0, Math.max(n, 0))) };
}

type WorkerTask =
  | { kind: 'map-on-readable'; memfd: number; eventfd: number }
  | { kind: 'throw-in-callback'; eventfd: number }
  | { kind: 'exit-while-watching'; eventfd: number; how: 'process.exit' | 'terminate' }
  | { kind: 'orphan-watcher'; eventfd: number };

/** Runs a worker on this file; resolves with its messages and exit code, or its error. */
function runTask(task: WorkerTask, onMessage?: (msg: unknown, worker: Worker) => void) {
  return new Promise<{ messages: unknown[]; code: number; error?: Error }>((resolve) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: task });
    const messages: unknown[] = [];
    let error: Error | undefined;
    worker.on('message', (msg) => {
      messages.push(msg);
      onMessage?.(msg, worker);
    });
    worker.on('error', (err) => (error = err));
    worker.on('exit', (code) => resolve(error ? { messages, code, error } : { messages, code }));
  });
}

function runWorker(task: WorkerTask): void {
  const post = (msg: unknown) => parentPort!.postMessage(msg);
  switch (task.kind) {
    case 'map-on-readable': {
      // Map the memfd by the fd number the main thread passed, and write
      // into it when the main thread signals the eventfd.
      const bytes = new Uint8Array(mapShared(task.memfd, 0, 4096));
      const watcher = watchReadable(task.eventfd, () => {
        const count = eventfdRead(task.eventfd);
        bytes.set(ascii(`worker saw ${count}`), 100);
        watcher.stop();
        unmap(bytes.buffer as ArrayBuffer);
        post('written');
        // Nothing keeps this worker alive now: it exits with code 0.
      });
      post('watching');
      break;
    }
    case 'throw-in-callback': {
      watchReadable(task.eventfd, () => {
        throw new Error('thrown by onReadable');
      });
      post('watching');
      break;
    }
    case 'exit-while-watching': {
      watchReadable(task.eventfd, () => {});
      if (task.how === 'process.exit') setTimeout(() => process.exit(7), 10);
      post('watching');
      break;
    }
    case 'orphan-watcher': {
      // Drop the FdWatcher (and so its stop function) and collect it: the
      // watch goes on, and teardown must still close it.
      let fired = 0;
      watchReadable(task.eventfd, () => {
        eventfdRead(task.eventfd);
        if (++fired === 1) setTimeout(() => process.exit(0), 10);
      });
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      eventfdWrite(task.eventfd, 1);
      post('collected');
      break;
    }
  }
}

if (!isMainThread) {
  runWorker(workerData as WorkerTask);
} else {
  test('a memfd passed over a unix socket maps to the same memory on both ends', () => {
    const pair = socketPair();
    const memfd = memfdCreate('zcnic-test', 2 * 4096);
    assert.is(sendMsg(pair.client, ascii('memfd!'), 0, 6, [memfd]), 6);
    const got = receive(pair.server);
    assert.is(got.text, 'memfd!');
    assert.is(got.fds.length, 1);
    const received = got.fds[0]!;
    assert.is.not(received, memfd);
    assert.ok(fdFlags(received) & O_CLOEXEC, 'received fds are close-on-exec');

    const a = new Uint8Array(mapShared(memfd, 0, 2 * 4096));
    const b = new Uint8Array(mapShared(received, 4096, 4096));
    a[4096 + 10] = 0xab;
    assert.is(b[10], 0xab);
    b[4095] = 0x5a;
    assert.is(a[2 * 4096 - 1], 0x5a);

    unmap(a.buffer as ArrayBuffer);
    unmap(b.buffer as ArrayBuffer);
    close(received);
    close(memfd);
    pair.done();
  });

  test('the sockets and fds made here are close-on-exec, and the sockets non-blocking', () => {
    const pair = socketPair();
    const memfd = memfdCreate('flags', 0);
    const efd = eventfdCreate(0, false);
    for (const fd of [pair.client, pair.server]) assert.is(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC | O_NONBLOCK);
    assert.ok(fdFlags(memfd) & O_CLOEXEC);
    assert.is(fdFlags(efd) & (O_CLOEXEC | O_NONBLOCK), O_CLOEXEC);
    close(efd);
    close(memfd);
    pair.done();
  });

  test('fds arrive with the first byte of their send; a read with fds ends with that send', () => {
    const pair = socketPair();
    const [e1, e2] = [eventfdCreate(0, true), eventfdCreate(0, true)];
    sendMsg(pair.client, ascii('AAAA'), 0, 4, []);
    sendMsg(pair.client, ascii('BBBB'), 0, 4, [e1]);
    sendMsg(pair.client, ascii('CCCC'), 0, 4, []);
    sendMsg(pair.client, ascii('DDDD'), 0, 4, [e2]);
    sendMsg(pair.client, ascii('EEEE'), 0, 4, [e1, e2]);
    // Plain bytes before a send with fds are read together with it...
    let got = receive(pair.server);
    assert.is(got.text, 'AAAABBBB');
    assert.is(got.fds.length, 1);
    got.fds.forEach(close);
    got = receive(pair.server);
    assert.is(got.text, 'CCCCDDDD');
    assert.is(got.fds.length, 1);
    got.fds.forEach(close);
    // ...and a short read gets the fds with the first part.
    got = receive(pair.server, 3);
    assert.is(got.text, 'EEE');
    assert.is(got.fds.length, 2);
    got.fds.forEach(close);
    got = receive(pair.server, 3);
    assert.equal([got.text, got.fds], ['E', []]);
    assert.is(receive(pair.server).n, -1, 'EAGAIN reads as -1');
    close(e1);
    close(e2);
    pair.done();
  });

  test('more than 32 fds in one read: ECTRUNC, and the fds are not leaked', () => {
    const pair = socketPair();
    const efd = eventfdCreate(0, true);
    const before = openFdCount();
    sendMsg(pair.client, ascii('x'), 0, 1, new Array<number>(40).fill(efd));
    const err = thrown(() => receive(pair.server));
    assert.ok(isSysError(err, 'ECTRUNC'), String(err));
    assert.is(err.message, 'recvmsg: too many file descriptors');
    assert.is(err.syscall, 'recvmsg');
    assert.is(openFdCount(), before);
    assert.throws(() => sendMsg(pair.client, ascii('x'), 0, 1, new Array<number>(254).fill(efd)), isRangeError);
    assert.throws(() => sendMsg(pair.client, ascii(''), 0, 0, [efd]), /at least 1 byte/);
    close(efd);
    pair.done();
  });

  test('end of stream, reset and EPIPE', () => {
    let pair = socketPair();
    close(pair.client);
    assert.is(receive(pair.server).n, 0, 'orderly EOF');
    expectSysError(() => sendMsg(pair.server, ascii('x'), 0, 1, []), 'EPIPE', 'sendmsg');
    close(pair.server);

    // A peer that closes with unread data resets the connection: still 0.
    pair = socketPair();
    sendMsg(pair.client, ascii('unread'), 0, 6, []);
    sendMsg(pair.server, ascii('pending'), 0, 7, []);
    close(pair.server);
    assert.is(receive(pair.client).text, 'pending', 'data sent before the reset is still read');
    assert.is(receive(pair.client).n, 0, 'ECONNRESET reads as end of stream');
    close(pair.client);
  });

  test('argument checks', () => {
    const pair = socketPair();
    const buf = new Uint8Array(8);
    assert.throws(() => recvMsg(pair.server, buf, 4, 5, []), isRangeError);
    assert.throws(() => recvMsg(pair.server, buf, 0, 0, []), /at least 1/);
    assert.throws(() => recvMsg(pair.server, new Uint16Array(4) as unknown as Uint8Array, 0, 4, []), isTypeError);
    assert.throws(() => sendMsg(pair.client, buf, 0.5, 1, []), isRangeError);
    assert.throws(() => close(-1), isRangeError);
    assert.throws(() => unixListen('x'.repeat(108), 1), /longer than 107 bytes/);
    assert.throws(() => memfdCreate('a\0b', 1), /NUL/);
    // A subarray's offset is honoured.
    sendMsg(pair.client, ascii('0123456789'), 3, 4, []);
    const window = new Uint8Array(16).subarray(8);
    assert.is(recvMsg(pair.server, window, 2, 6, []), 4);
    assert.is(new TextDecoder().decode(window.subarray(2, 6)), '3456');
    pair.done();
  });

  test('failing calls throw errors with the errno name, number and call', () => {
    const memfd = memfdCreate('closed', 4096);
    close(memfd);
    const err = thrown(() => mapShared(memfd, 0, 4096));
    assert.ok(isSysError(err));
    assert.is(err.message, 'mmap: EBADF (Bad file descriptor)');
    assert.equal([err.code, err.errno, err.syscall], ['EBADF', 9, 'mmap']);
    expectSysError(() => close(memfd), 'EBADF', 'close');
    expectSysError(() => unixConnect(join(tmpdir(), 'zcnic-no-such.sock')), 'ENOENT', 'connect');
    const fd = memfdCreate('unaligned', 8192);
    expectSysError(() => mapShared(fd, 100, 4096), 'EINVAL', 'mmap');
    close(fd);
  });

  test('fileSize: a memfd\'s size (also beyond 4 GiB), 0 for an eventfd, EBADF for a closed fd', () => {
    const small = memfdCreate('size', 12345);
    const big = memfdCreate('size-big', 5 * GiB);
    const efd = eventfdCreate(0, true);
    assert.is(sys.fileSize(small), 12345);
    assert.is(sys.fileSize(big), 5 * GiB);
    assert.is(sys.fileSize(efd), 0);
    for (const fd of [small, big, efd]) close(fd);
    expectSysError(() => sys.fileSize(small), 'EBADF', 'fstat');
  });

  test('memfd sizes and mapping offsets beyond 4 GiB', () => {
    const fd = memfdCreate('big', 8 * GiB); // sparse: no memory until touched
    const page = new Uint8Array(mapShared(fd, 6 * GiB + 4096, 4096));
    page[7] = 42;
    const window = new Uint8Array(mapShared(fd, 4 * GiB, 4 * GiB));
    assert.is(window.length, 4 * GiB);
    assert.is(window[2 * GiB + 4096 + 7], 42);
    assert.throws(() => mapShared(fd, 0, 4 * GiB + 4096), /MAX_LENGTH/);
    unmap(window.buffer as ArrayBuffer);
    unmap(page.buffer as ArrayBuffer);
    close(fd);
  });

  test('unmap detaches the buffer, unmaps it now, and only once', () => {
    const fd = memfdCreate('unmap', 4096);
    const buffer = mapShared(fd, 0, 4096);
    const view = new Uint8Array(buffer);
    const maps = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/memfd:unmap ')).length;
    assert.is(maps(), 1);
    unmap(buffer);
    assert.is(buffer.byteLength, 0);
    assert.is(view.length, 0);
    assert.is(view[0], undefined);
    assert.is(maps(), 0);
    assert.throws(() => unmap(buffer), /already unmapped/);
    assert.throws(() => unmap(new ArrayBuffer(16)), /not returned by mapShared/);
    assert.throws(() => unmap(view as unknown as ArrayBuffer), isTypeError);
    close(fd);
  });

  test('eventfd counter', () => {
    const fd = eventfdCreate(3, true);
    eventfdWrite(fd, 2);
    eventfdWrite(fd, 0);
    assert.is(eventfdRead(fd), 5);
    assert.is(eventfdRead(fd), 0, 'a non-blocking read of 0 returns 0');
    // The counter saturates below 2^64 - 1; a write that would overflow it is dropped.
    for (let i = 0; i < 2049; i++) eventfdWrite(fd, Number.MAX_SAFE_INTEGER);
    assert.ok(eventfdRead(fd) > 2 ** 63);
    assert.throws(() => eventfdWrite(fd, -1), isRangeError);
    assert.throws(() => eventfdCreate(2 ** 32, true), isRangeError);
    close(fd);
    const blocking = eventfdCreate(1, false);
    assert.is(eventfdRead(blocking), 1);
    close(blocking);
  });

  test('watchReadable fires for eventfd writes, in the async context it was made in, and stops', async () => {
    const fd = eventfdCreate(0, true);
    const events: string[] = [];
    let wake: () => void = () => {};
    const context = new AsyncLocalStorage<string>();
    const watcher = context.run('watch context', () => watchReadable(fd, () => {
      events.push(`readable ${eventfdRead(fd)} in ${context.getStore()}`);
      Promise.resolve().then(() => events.push('promise job'));
      process.nextTick(() => events.push('tick'));
      setImmediate(() => {
        events.push('immediate');
        wake();
      });
    }));
    const next = () => new Promise<void>((resolve) => (wake = resolve));
    let woken = next();
    context.run('write context', () => eventfdWrite(fd, 2));
    await woken;
    assert.equal(events, ['readable 2 in watch context', 'tick', 'promise job', 'immediate']);
    woken = next();
    eventfdWrite(fd, 1);
    await woken;
    assert.is(events[4], 'readable 1 in watch context');
    watcher.stop();
    watcher.stop();
    eventfdWrite(fd, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.is(events.length, 8, 'no callback after stop');
    close(fd);
  });

  test('watchReadable refuses a second watch of one fd and fds it cannot poll', () => {
    const fd = eventfdCreate(0, true);
    const watcher = watchReadable(fd, () => {});
    expectSysError(() => watchReadable(fd, () => {}), 'EEXIST', 'uv_poll_init');
    watcher.stop();
    const memfd = memfdCreate('not-pollable', 0);
    expectSysError(() => watchReadable(memfd, () => {}), 'EPERM', 'uv_poll_init');
    close(memfd);
    close(fd);
  });

  test('a worker maps a memfd by fd number and writes into it from its own watcher', async () => {
    const memfd = memfdCreate('worker', 4096);
    const efd = eventfdCreate(0, true);
    const mine = new Uint8Array(mapShared(memfd, 0, 4096));
    const result = await runTask({ kind: 'map-on-readable', memfd, eventfd: efd }, (msg) => {
      if (msg === 'watching') eventfdWrite(efd, 3);
    });
    assert.equal(result, { messages: ['watching', 'written'], code: 0 }, 'the stopped watcher let the worker exit');
    assert.is(new TextDecoder().decode(mine.subarray(100, 112)), 'worker saw 3');
    unmap(mine.buffer as ArrayBuffer);
    close(efd);
    close(memfd);
  });

  test('an exception thrown by onReadable is an uncaught exception', async () => {
    const efd = eventfdCreate(0, true);
    const result = await runTask({ kind: 'throw-in-callback', eventfd: efd }, (msg) => {
      if (msg === 'watching') eventfdWrite(efd, 1);
    });
    assert.is(result.error?.message, 'thrown by onReadable');
    assert.is(result.code, 1);
    close(efd);
  });

  test('a worker torn down while watching closes its watchers', async () => {
    const efd = eventfdCreate(0, true);
    const exited = await runTask({ kind: 'exit-while-watching', eventfd: efd, how: 'process.exit' });
    assert.is(exited.code, 7);
    const terminated = await runTask({ kind: 'exit-while-watching', eventfd: efd, how: 'terminate' }, (msg, worker) => {
      if (msg === 'watching') void worker.terminate();
    });
    assert.is(terminated.code, 1);
    const orphan = await runTask({ kind: 'orphan-watcher', eventfd: efd });
    assert.equal(orphan, { messages: ['collected'], code: 0 }, 'a collected FdWatcher keeps watching');
    // The fd is still fine, and this thread can watch it now.
    const watcher = watchReadable(efd, () => {});
    watcher.stop();
    close(efd);
  });

  test('socketPair makes a seqpacket pair; socketType and setSendBuffer', () => {
    const [a, b] = sys.socketPair();
    const efd = eventfdCreate(0, true);
    try {
      for (const fd of [a, b]) {
        assert.ok(fdFlags(fd) & O_NONBLOCK, 'O_NONBLOCK');
        assert.ok(fdFlags(fd) & O_CLOEXEC, 'O_CLOEXEC');
        assert.is(sys.socketType(fd), sys.SocketType.seqpacket);
      }
      assert.is(sys.socketType(efd), -1, 'an eventfd is no socket');
      assert.is(isSysError(thrown(() => sys.socketType(999999)), 'EBADF'), true);
      const bytes = new Uint8Array(100).map((_, i) => i);
      // Message boundaries: two writes, two reads, however long the read.
      assert.is(sys.writeFd(a, bytes, 0, 30), 30);
      assert.is(sys.writeFd(a, bytes, 30, 70), 70);
      const got = new Uint8Array(200);
      assert.is(sys.readFd(b, got, 0, 200), 30);
      assert.is(sys.readFd(b, got, 30, 170), 70);
      assert.equal([...got.subarray(0, 100)], [...bytes]);
      assert.is(sys.readFd(b, got, 0, 200), -1, 'nothing more');
      const granted = sys.setSendBuffer(a, 1 << 20);
      assert.ok(granted >= 2 * 4096, `SO_SNDBUF ${granted}`);
      if (process.getuid?.() === 0) assert.is(granted, 2 << 20, 'SO_SNDBUFFORCE: what was asked, doubled');
      // The other end closes: reads see the end, writes fail with EPIPE.
      close(b);
      assert.is(sys.readFd(a, got, 0, 200), 0);
      assert.is(isSysError(thrown(() => sys.writeFd(a, bytes, 0, 10)), 'EPIPE'), true);
    } finally {
      close(a);
      close(efd);
    }
  });

  test('copyBytes copies a range between arrays at their own offsets, overlapping too, and refuses ranges outside them', () => {
    const src = new Uint8Array(64).map((_, i) => i + 1);
    const dst = new Uint8Array(32).subarray(8);
    sys.copyBytes(dst, 3, src.subarray(10), 5, 12);
    assert.equal([...dst], [0, 0, 0, ...src.subarray(15, 27), 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // memmove: forwards and backwards within one array.
    const both = new Uint8Array(16).map((_, i) => i);
    sys.copyBytes(both, 2, both, 0, 8);
    assert.equal([...both.subarray(0, 10)], [0, 1, 0, 1, 2, 3, 4, 5, 6, 7]);
    sys.copyBytes(both, 0, both, 4, 8);
    assert.equal([...both.subarray(0, 8)], [2, 3, 4, 5, 6, 7, 10, 11]);
    sys.copyBytes(dst, dst.length, src, src.length, 0);
    const before = [...dst];
    assert.throws(() => sys.copyBytes(dst, 20, src, 0, 5), isRangeError, 'past the end of dst');
    assert.throws(() => sys.copyBytes(dst, 0, src, 60, 5), isRangeError, 'past the end of src');
    assert.throws(() => sys.copyBytes(dst, -1, src, 0, 1), isRangeError);
    assert.throws(() => sys.copyBytes(dst, 0, src, 0.5, 1), isRangeError);
    assert.throws(() => sys.copyBytes(dst, 0, new Uint16Array(4) as unknown as Uint8Array, 0, 1), isTypeError);
    assert.equal([...dst], before, 'a refused copy copies nothing');
    const memfd = memfdCreate('copy', 4096);
    const mapped = mapShared(memfd, 0, 4096);
    const view = new Uint8Array(mapped);
    close(memfd);
    unmap(mapped);
    assert.throws(() => sys.copyBytes(view, 0, src, 0, 1), isRangeError, 'a detached array has no bytes');
  });

  test.run();
}
