// The backend's client mode: VhostUserServer connecting to a frontend that listens (QEMU's
// `server=on`), retrying while the socket is absent, and connecting again after the frontend
// went away. The frontend here is VhostUserClient over the connection the test accepted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FeatureBit,
  featureMask,
  PROTOCOL_FEATURES_BIT,
  UnixStreamListener,
  VhostUserServer,
  type MemoryRegion,
  type UnixStreamConnection,
  type VirtioDevice,
  type VirtqueueSetup,
} from 'vfio-user-ts';
import { VhostUserClient } from 'vfio-user-ts/vhost-user-frontend';

class QuietDevice implements VirtioDevice {
  readonly features = featureMask(FeatureBit.version1);
  readonly queuePairs = 2;
  needsReset = false;
  resets = 0;
  async setMemory(_regions: readonly MemoryRegion[]): Promise<string | null> {
    return null;
  }
  async startQueue(_index: number, _setup: VirtqueueSetup): Promise<string | null> {
    return null;
  }
  async stopQueue(): Promise<number> {
    return 0;
  }
  reset(): void {
    this.resets++;
  }
  async releaseMemory(): Promise<void> {}
}

/** The next connection the listener accepts, or a rejection after `ms`. */
function nextConnection(listener: UnixStreamListener, ms = 3000): Promise<UnixStreamConnection> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connection from the backend')), ms);
    listener.onConnection((connection) => {
      clearTimeout(timer);
      listener.onConnection((extra) => extra.close());
      resolve(connection);
    });
  });
}

test('client mode: waits for the frontend socket, serves it, connects again after it left', async () => {
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-connect-'));
  const path = join(dir, 'frontend.sock');
  const logs: string[] = [];
  const device = new QuietDevice();
  // The frontend is not there yet: the backend keeps trying.
  const server = new VhostUserServer({ connectPath: path, device, log: (line) => logs.push(line) });
  let listener: UnixStreamListener | null = null;
  try {
    assert.is(server.description, `connecting to ${path}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.not.ok(server.connected);
    assert.ok(logs.some((line) => /waiting for a frontend .*ENOENT/.test(line)), logs.join('\n'));

    listener = UnixStreamListener.listen(path);
    const first = VhostUserClient.over(await nextConnection(listener), { replyTimeoutMs: 2000 });
    assert.is(await first.getQueueNum(), 2);
    assert.is(await first.getFeatures(), featureMask(FeatureBit.version1, PROTOCOL_FEATURES_BIT));
    assert.ok(server.connected);

    // The frontend goes away (QEMU restarting its chardev): the backend resets and comes back.
    const resetsBefore = device.resets;
    const again = nextConnection(listener);
    first.close();
    const second = VhostUserClient.over(await again, { replyTimeoutMs: 2000 });
    assert.ok(device.resets > resetsBefore, 'the device was reset between the two frontends');
    assert.is(await second.getQueueNum(), 2);
    second.close();
  } finally {
    await server.close();
    listener?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // Give the server's last reset (after the second close) a moment, then count fds.
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.is(readdirSync('/proc/self/fd').length, fdsBefore, 'no fd leaked');
});

test('client mode: close() stops the retries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-connect-'));
  const path = join(dir, 'absent.sock');
  const server = new VhostUserServer({ connectPath: path, device: new QuietDevice(), log: () => {} });
  await server.close();
  // A listener appearing afterwards gets no connection.
  const listener = UnixStreamListener.listen(path);
  try {
    const outcome = await nextConnection(listener, 400).then(
      (connection) => {
        connection.close();
        return 'connected';
      },
      (error: Error) => error.message,
    );
    assert.is(outcome, 'no connection from the backend');
  } finally {
    listener.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VhostUserServer wants exactly one of socketPath, connectPath, source', () => {
  assert.throws(() => new VhostUserServer({ device: new QuietDevice(), log: () => {} }), /exactly one/);
  assert.throws(() => new VhostUserServer({ socketPath: 'a', connectPath: 'b', device: new QuietDevice(), log: () => {} }), /exactly one/);
});

test.run();
