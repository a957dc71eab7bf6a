/**
 * A watched fd closed without stopping its watcher (a connection's fds closed under it) must
 * not leave the watch running: it would never fire again and never end, so the event loop, and
 * with it the process (restart.test.ts, issue 8 item 3), would never exit by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sys, UnixStreamConnection, UnixStreamListener } from 'vfio-user-ts';

const addon = new URL('../../../packages/vfio-user-ts/dist/index.js', import.meta.url).href;

test('close() stops the watcher of the fd: the count goes back to 0 and the number can be watched again', () => {
  const before = sys.watcherCount();
  const fd = sys.eventfdCreate(0, true);
  const watcher = sys.watchReadable(fd, () => {});
  assert.is(sys.watcherCount(), before + 1);
  sys.close(fd);
  assert.is(sys.watcherCount(), before, 'closing the fd ended its watch');
  watcher.stop();
  assert.is(sys.watcherCount(), before, 'a later stop() does nothing');
  // The kernel hands out the lowest free number: most likely the same one, which a watch left
  // on the closed fd would refuse (EEXIST).
  const again = sys.eventfdCreate(0, true);
  const second = sys.watchReadable(again, () => {});
  second.stop();
  sys.close(again);
  assert.is(sys.watcherCount(), before);
});

test('a connection whose peer hung up leaves no watcher running', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-watcher-'));
  const before = sys.watcherCount();
  try {
    const listener = UnixStreamListener.listen(join(dir, 'sock'));
    const accepted = new Promise<UnixStreamConnection>((resolve) => listener.onConnection(resolve));
    const client = UnixStreamConnection.connect(listener.path);
    const ended = new Promise<void>((resolve) =>
      client.onReadable(() => {
        if (client.read(new Uint8Array(16), 0, 16, []) === 0) {
          client.close();
          resolve();
        }
      }),
    );
    const server = await accepted;
    assert.is(sys.watcherCount(), before + 2, 'the listener and the client watch');
    server.close();
    await ended;
    listener.close();
    assert.is(sys.watcherCount(), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a process that closed its watched fd exits by itself', async () => {
  // Closed once the loop has polled the fd: the old addon then kept an epoll-less watch alive
  // for good (no JS handle left, _getActiveHandles() empty); closed before, libuv aborted.
  const script = `import { sys } from ${JSON.stringify(addon)};
const fd = sys.eventfdCreate(0, true);
sys.watchReadable(fd, () => {});
setTimeout(() => sys.close(fd), 20);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exit = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('still running after 5 s');
    }, 5000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? 'killed');
    });
  });
  assert.is(exit, 0);
});

test.run();
