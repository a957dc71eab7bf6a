// Tests of VhostUserServer, driven over its socket by VhostUserClient, with a fake device that
// records what the server asks of it. Every test also checks that no fd leaked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DeviceStatus,
  FeatureBit,
  featureMask,
  featureWordBytes,
  hasFeature,
  HeaderFlags,
  inflightMessage,
  inflightQueueBytes,
  PROTOCOL_FEATURES_BIT,
  ProtocolFeature,
  Request,
  sys,
  VERSION,
  VhostUserServer,
  type FeatureWord,
  type MemoryRegion,
  type VirtioDevice,
  type VirtqueueSetup,
} from 'vfio-user-ts';
import { encodeHeader, VhostUserClient, VhostUserError } from 'vfio-user-ts/vhost-user-frontend';

const DEVICE_FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringIndirectDesc, FeatureBit.ringEventIdx);
const PROTOCOL_FEATURES = featureMask(PROTOCOL_FEATURES_BIT);
const REPLY_ACK = featureMask(ProtocolFeature.replyAck);
const MQ = featureMask(ProtocolFeature.mq);
const STATUS = featureMask(ProtocolFeature.status);

const GUEST_BASE = 0x100000;
const USER_BASE = 0x7f0000000000;
const REGION_SIZE = 0x100000;
const QUEUE_SIZE = 256;
/** Ring offsets inside the region, the same for every test. */
const ringOffsets = (index: number) => ({ desc: 0x10000 * (index + 1), avail: 0x10000 * (index + 1) + 0x1000, used: 0x10000 * (index + 1) + 0x2000 });

// ---------------------------------------------------------------------------------------------
// The fake device

type Call =
  | { op: 'setMemory'; regions: Omit<MemoryRegion, 'fd'>[] }
  | { op: 'startQueue'; index: number; setup: VirtqueueSetup }
  | { op: 'stopQueue'; index: number }
  | { op: 'reset' }
  | { op: 'releaseMemory' };

class FakeDevice implements VirtioDevice {
  /** What the device offers; a test may change it before the frontend asks. */
  features = DEVICE_FEATURES;
  readonly queuePairs = 1;
  needsReset = false;
  readonly calls: Call[] = [];
  /** What stopQueue answers, per queue (default: the base it was started with). */
  readonly stopBase = new Map<number, number>();
  /** While set, setMemory waits for it. */
  memoryGate: Promise<void> | null = null;
  /** Called on every call, after it is recorded. */
  onCall: (call: Call) => void = () => {};
  private readonly started = new Map<number, VirtqueueSetup>();

  private record(call: Call): void {
    this.calls.push(call);
    this.onCall(call);
  }

  async setMemory(regions: readonly MemoryRegion[]): Promise<string | null> {
    this.record({ op: 'setMemory', regions: regions.map(({ fd: _fd, ...rest }) => rest) });
    if (this.memoryGate) await this.memoryGate;
    return null;
  }

  async startQueue(index: number, setup: VirtqueueSetup): Promise<string | null> {
    this.started.set(index, setup);
    this.record({ op: 'startQueue', index, setup });
    return null;
  }

  async stopQueue(index: number): Promise<number> {
    this.record({ op: 'stopQueue', index });
    const base = this.stopBase.get(index) ?? this.started.get(index)?.base ?? 0;
    this.started.delete(index);
    return base;
  }

  reset(): void {
    this.record({ op: 'reset' });
    this.needsReset = false;
  }

  async releaseMemory(): Promise<void> {
    this.record({ op: 'releaseMemory' });
  }

  ops(): string[] {
    return this.calls.map((c) => ('index' in c ? `${c.op}(${c.index})` : c.op));
  }

  starts(): Extract<Call, { op: 'startQueue' }>[] {
    return this.calls.filter((c): c is Extract<Call, { op: 'startQueue' }> => c.op === 'startQueue');
  }
}

// ---------------------------------------------------------------------------------------------
// Fixture

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Resolves when `check` holds (polled), rejects after `ms`. */
async function until(what: string, check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with `promise`'s value, or rejects after `ms`. */
function within<T>(what: string, promise: Promise<T>, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What `promise` rejects with; fails when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.unreachable('expected a rejection');
  return undefined;
}

interface Fixture {
  readonly socketPath: string;
  readonly device: FakeDevice;
  readonly server: VhostUserServer;
  readonly logs: string[];
  /** A 1 MiB memfd for SET_MEM_TABLE (sent, never mapped here). */
  readonly memfd: number;
  /** Eventfds made with fixture.eventfd(), closed at the end. */
  eventfd(): number;
  /** Connects a client that the fixture closes at the end. */
  connect(): Promise<VhostUserClient>;
  /** Log lines matching `pattern`. */
  logged(pattern: RegExp): string[];
}

/**
 * Runs `body` against a fresh server and fake device, then closes everything and checks that
 * this process has exactly as many fds open as before.
 */
function serverTest(name: string, body: (f: Fixture) => Promise<void>): void {
  test(name, async () => {
    const fdsBefore = openFdCount();
    const dir = mkdtempSync(join(tmpdir(), 'zcnic-vhost-server-'));
    const socketPath = join(dir, 'vhost.sock');
    const device = new FakeDevice();
    const logs: string[] = [];
    const server = new VhostUserServer({ socketPath, device, log: (line) => logs.push(line) });
    const clients: VhostUserClient[] = [];
    const fds: number[] = [];
    const memfd = sys.memfdCreate('zcnic-test-guest', REGION_SIZE);
    fds.push(memfd);
    const fixture: Fixture = {
      socketPath,
      device,
      server,
      logs,
      memfd,
      eventfd: () => {
        const fd = sys.eventfdCreate(0, true);
        fds.push(fd);
        return fd;
      },
      connect: async () => {
        const client = await VhostUserClient.connect(socketPath, { replyTimeoutMs: 2000 });
        clients.push(client);
        return client;
      },
      logged: (pattern) => logs.filter((line) => pattern.test(line)),
    };
    try {
      await body(fixture);
    } catch (error) {
      if (logs.length > 0) console.error(`server log of "${name}":\n  ${logs.join('\n  ')}`);
      throw error;
    } finally {
      for (const client of clients) client.close();
      device.memoryGate = null;
      await server.close();
      for (const fd of fds) sys.close(fd);
      rmSync(dir, { recursive: true, force: true });
    }
    assert.is(openFdCount(), fdsBefore, 'open fds after the test (a leak if more)');
  });
}

const region = (f: Fixture, overrides: Partial<MemoryRegion> = {}) => ({
  guestPhysAddr: GUEST_BASE,
  size: REGION_SIZE,
  userAddr: USER_BASE,
  mmapOffset: 0,
  fd: f.memfd,
  ...overrides,
});

/** Features, protocol features (REPLY_ACK|MQ|STATUS), owner; returns the negotiated features. */
async function negotiate(client: VhostUserClient, withProtocol = true): Promise<FeatureWord> {
  const offered = await client.getFeatures();
  if (!withProtocol) {
    await client.setOwner();
    await client.setFeatures(DEVICE_FEATURES);
    return DEVICE_FEATURES;
  }
  await client.getProtocolFeatures();
  await client.setProtocolFeatures(REPLY_ACK | MQ | STATUS);
  await client.setOwner({ needReply: true });
  const features = offered; // everything, protocol-features bit included
  await client.setFeatures(features, { needReply: true });
  return features;
}

/** Memory table and rings of queue `index` up to (not including) SET_VRING_KICK. */
async function configureRing(client: VhostUserClient, index: number, ack: boolean): Promise<void> {
  const o = ringOffsets(index);
  await client.setVringNum(index, QUEUE_SIZE, { needReply: ack });
  await client.setVringAddr(index, { desc: USER_BASE + o.desc, used: USER_BASE + o.used, avail: USER_BASE + o.avail }, { needReply: ack });
  await client.setVringBase(index, 0, { needReply: ack });
}

/** A fully set-up, running queue `index` (protocol features negotiated). */
async function runningQueue(f: Fixture, client: VhostUserClient, index: number): Promise<{ kick: number; call: number }> {
  const kick = f.eventfd();
  const call = f.eventfd();
  await client.setVringCall(index, call, { needReply: true });
  await configureRing(client, index, true);
  await client.setVringKick(index, kick, { needReply: true });
  await client.setVringEnable(index, true, { needReply: true });
  return { kick, call };
}

/** A client that has negotiated with REPLY_ACK and sent the memory table. */
async function readyClient(f: Fixture): Promise<VhostUserClient> {
  const client = await f.connect();
  await negotiate(client);
  await client.setMemTable([region(f)], { needReply: true });
  return client;
}

/** A u64 payload. */
function u64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setUint32(0, value % 2 ** 32, true);
  new DataView(bytes.buffer).setUint32(4, Math.floor(value / 2 ** 32), true);
  return bytes;
}

function ackStatus(payload: Uint8Array): number {
  assert.is(payload.length, 8, 'REPLY_ACK payload size');
  const view = new DataView(payload.buffer, payload.byteOffset, 8);
  return view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
}

function isNack(error: unknown): boolean {
  return error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_NACK';
}

// ---------------------------------------------------------------------------------------------
// Tests

serverTest('the socket is created with mode 0600', async (f) => {
  const st = statSync(f.socketPath);
  assert.ok(st.isSocket(), 'a unix socket');
  assert.is(st.mode & 0o777, 0o600);
});

serverTest('negotiation answers: features, protocol features, queue number, status', async (f) => {
  const client = await f.connect();
  assert.is(await client.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES));
  const protocol = await client.getProtocolFeatures();
  for (const bit of [ProtocolFeature.mq, ProtocolFeature.replyAck, ProtocolFeature.status]) assert.ok(hasFeature(protocol, bit), `protocol bit ${bit}`);
  assert.not.ok(hasFeature(protocol, ProtocolFeature.logShmfd), 'LOG_SHMFD is not offered');
  assert.not.ok(hasFeature(protocol, ProtocolFeature.backendReq), 'BACKEND_REQ only comes with ACCESS_PLATFORM');
  await client.setProtocolFeatures(REPLY_ACK | MQ | STATUS);
  assert.is(await client.getQueueNum(), 1);
  const featuresOk = DeviceStatus.acknowledge | DeviceStatus.driver | DeviceStatus.featuresOk;
  await client.setStatus(featuresOk, { needReply: true });
  assert.is(await client.getStatus(), featuresOk);
  f.device.needsReset = true;
  assert.is(await client.getStatus(), featuresOk | DeviceStatus.needsReset, 'DEVICE_NEEDS_RESET shows in the status');
});

serverTest('QEMU 7.2 sequence: the queue starts at SET_VRING_ENABLE 1, with translated addresses', async (f) => {
  const client = await f.connect();
  const offered = await client.getFeatures();
  await client.getProtocolFeatures();
  await client.setProtocolFeatures(REPLY_ACK | MQ | STATUS);
  assert.is(await client.getQueueNum(), 1);
  await client.setOwner({ needReply: true });
  const calls = [f.eventfd(), f.eventfd()];
  const errs = [f.eventfd(), f.eventfd()];
  for (const index of [0, 1]) {
    await client.setVringCall(index, calls[index]!, { needReply: true });
    await client.setVringErr(index, errs[index]!, { needReply: true });
    await client.setVringEnable(index, false, { needReply: true });
  }
  await client.setFeatures(offered, { needReply: true });
  await client.setMemTable([region(f)], { needReply: true });
  assert.equal(f.device.calls, [{ op: 'setMemory', regions: [{ guestPhysAddr: GUEST_BASE, size: REGION_SIZE, userAddr: USER_BASE, mmapOffset: 0 }] }]);

  const kick = f.eventfd();
  const o = ringOffsets(1);
  await client.setVringNum(1, QUEUE_SIZE, { needReply: true });
  await client.setVringAddr(1, { desc: USER_BASE + o.desc, used: USER_BASE + o.used, avail: USER_BASE + o.avail }, { needReply: true });
  await client.setVringBase(1, 5, { needReply: true });
  await client.setVringKick(1, kick, { needReply: true });
  assert.equal(f.device.starts(), [], 'nothing starts before SET_VRING_ENABLE 1');
  await client.setVringEnable(1, true, { needReply: true });

  const starts = f.device.starts();
  assert.is(starts.length, 1, 'one start');
  const { index, setup } = starts[0]!;
  assert.is(index, 1);
  assert.equal(
    { ...setup, kickFd: 0, callFd: 0 },
    { size: QUEUE_SIZE, descAddr: GUEST_BASE + o.desc, availAddr: GUEST_BASE + o.avail, usedAddr: GUEST_BASE + o.used, base: 5, kickFd: 0, callFd: 0, features: offered },
  );
  // The fds the device got are the frontend's eventfds.
  sys.eventfdWrite(kick, 3);
  assert.is(sys.eventfdRead(setup.kickFd), 3, 'kick fd');
  sys.eventfdWrite(setup.callFd, 2);
  assert.is(sys.eventfdRead(calls[1]!), 2, 'call fd');
  // The error fd works too.
  f.server.signalVringError(1);
  assert.is(sys.eventfdRead(errs[1]!), 1, 'err fd');
  assert.is(sys.eventfdRead(errs[0]!), 0);
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)']);
});

serverTest('without protocol features the queue starts at SET_VRING_KICK', async (f) => {
  const client = await f.connect();
  await negotiate(client, false);
  await client.setMemTable([region(f)]);
  await configureRing(client, 0, false);
  await client.setVringCall(0, f.eventfd());
  await client.getFeatures(); // a round trip: everything before it is handled
  assert.equal(f.device.starts(), [], 'not before the kick fd');
  await client.setVringKick(0, f.eventfd());
  await client.getFeatures();
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)']);
  const setup = f.device.starts()[0]!.setup;
  const o = ringOffsets(0);
  assert.equal([setup.descAddr, setup.availAddr, setup.usedAddr], [GUEST_BASE + o.desc, GUEST_BASE + o.avail, GUEST_BASE + o.used]);
  assert.is(setup.features, DEVICE_FEATURES);
});

serverTest('rings outside the memory table are refused', async (f) => {
  const client = await readyClient(f);
  await client.setVringNum(0, QUEUE_SIZE, { needReply: true });
  // The used ring runs past the end of the region.
  await client.setVringAddr(0, { desc: USER_BASE, avail: USER_BASE + 0x1000, used: USER_BASE + REGION_SIZE - 8 }, { needReply: true });
  await client.setVringEnable(0, true, { needReply: true });
  assert.ok(isNack(await rejection(client.setVringKick(0, f.eventfd(), { needReply: true }))));
  assert.equal(f.device.starts(), []);
  assert.equal(f.logged(/outside the memory table/).length, 1);
});

serverTest("GET_VRING_BASE stops the queue and returns the device's base", async (f) => {
  const client = await readyClient(f);
  const { kick } = await runningQueue(f, client, 1);
  f.device.stopBase.set(1, 77);
  assert.is(await client.getVringBase(1), 77);
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)', 'stopQueue(1)']);
  // Stopped: asking again does not stop it again, and gives the same base.
  assert.is(await client.getVringBase(1), 77);
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)', 'stopQueue(1)']);
  // A new kick fd restarts it from there.
  await client.setVringKick(1, kick, { needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)', 'stopQueue(1)', 'startQueue(1)']);
  assert.is(f.device.starts()[1]!.setup.base, 77);
});

serverTest('SET_VRING_CALL on a running queue restarts it with the new call fd', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 0);
  const call = f.eventfd();
  await client.setVringCall(0, call, { needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)', 'stopQueue(0)', 'startQueue(0)']);
  sys.eventfdWrite(f.device.starts()[1]!.setup.callFd, 1);
  assert.is(sys.eventfdRead(call), 1);
});

serverTest('SET_VRING_ENABLE 0 stops a running queue; SET_VRING_NUM on a running queue is refused', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 0);
  assert.ok(isNack(await rejection(client.setVringNum(0, 128, { needReply: true }))), 'SET_VRING_NUM while running');
  await client.setVringEnable(0, false, { needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)', 'stopQueue(0)']);
  await client.setVringNum(0, 128, { needReply: true });
});

serverTest('a new memory table stops running queues and restarts them on it', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 0);
  await client.setMemTable([region(f, { guestPhysAddr: 0x80000000 })], { needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)', 'stopQueue(0)', 'setMemory', 'startQueue(0)']);
  assert.is(f.device.starts()[1]!.setup.descAddr, 0x80000000 + ringOffsets(0).desc);
});

serverTest('a bad message with NEED_REPLY under REPLY_ACK gets a failure ack; the connection stays usable', async (f) => {
  const client = await readyClient(f);
  const error = await rejection(client.setVringNum(0, 3, { needReply: true }));
  assert.ok(isNack(error), String(error));
  assert.match((error as Error).message, /SET_VRING_NUM: the backend refused/);
  // Invalid fds too: two fds on SET_VRING_KICK (the server must close both copies).
  client.sendRaw(Request.setVringKick, VERSION | HeaderFlags.needReply, u64(0), [f.eventfd(), f.eventfd()]);
  const reply = await client.expectReply(1000);
  assert.is(reply.request, Request.setVringKick);
  assert.ok((reply.flags & HeaderFlags.reply) !== 0, 'reply flag');
  assert.ok(ackStatus(reply.payload) !== 0, 'failure status');
  assert.is(await client.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES), 'still usable');
  assert.not.ok(client.isClosed);
  assert.equal(f.logged(/refused setVringNum: queue size 3/).length, 1);
});

serverTest('NEED_REPLY before REPLY_ACK is negotiated gets no ack', async (f) => {
  const client = await f.connect();
  client.sendRaw(Request.setOwner, VERSION | HeaderFlags.needReply, new Uint8Array(0));
  assert.is(await client.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES), 'the next reply is the GET_FEATURES one');
  assert.is(client.pendingMessages, 0);
});

serverTest('a bad message without NEED_REPLY closes the connection, with one log line naming the problem', async (f) => {
  const client = await readyClient(f);
  await client.setVringNum(0, 3);
  const reason = await within('the disconnect', client.closed);
  assert.is(reason, 'the backend closed the connection');
  // One line, not one for the refusal and another for the disconnect that repeats it.
  const naming = f.logged(/setVringNum: queue size 3 is not a power of two/);
  assert.is(naming.length, 1, `lines naming the problem: ${naming.join(' | ')}`);
  assert.ok(error(await rejection(client.getFeatures())).code === 'ERR_VHOST_USER_CLOSED');
});

function error(e: unknown): VhostUserError {
  assert.instance(e, VhostUserError);
  return e as VhostUserError;
}

serverTest('a payload size that lies (100000) closes the connection', async (f) => {
  const client = await f.connect();
  client.writeBytes(encodeHeader(Request.getFeatures, VERSION, 100000));
  await within('the disconnect', client.closed);
  assert.ok(f.logged(/100000-byte payload/).length >= 1, f.logs.join(' | '));
  assert.not.ok(f.server.connected);
});

serverTest('a message with protocol version 0 closes the connection', async (f) => {
  const client = await f.connect();
  client.sendRaw(Request.getFeatures, 0, new Uint8Array(0));
  await within('the disconnect', client.closed);
  assert.ok(f.logged(/protocol version 0/).length >= 1, 'logged');
});

serverTest('a message cut short by the frontend closing is dropped, with its fds', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 1);
  // SET_MEM_TABLE of one region (40 bytes), of which only 10 arrive, with the region's fd.
  const header = encodeHeader(Request.setMemTable, VERSION, 40);
  const partial = new Uint8Array(22);
  partial.set(header);
  new DataView(partial.buffer).setUint32(12, 1, true);
  client.writeBytes(partial, [f.memfd]);
  client.close();
  await until('the server to see the disconnect', () => f.device.ops().includes('releaseMemory'));
  assert.equal(f.logged(/disconnected: connection closed in the middle of a message/).length, 1, f.logs.join(' | '));
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)', 'stopQueue(1)', 'reset', 'releaseMemory']);
  // And the next frontend is served.
  const next = await f.connect();
  assert.is(await next.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES));
});

serverTest('a message with more fds than the socket layer takes (33) closes the connection, closing them all', async (f) => {
  const client = await f.connect();
  await client.getFeatures();
  client.sendRaw(Request.setMemTable, VERSION, new Uint8Array(8), new Array<number>(33).fill(f.memfd));
  await within('the disconnect', client.closed);
  assert.ok(f.logged(/disconnected: socket error/).length >= 1, f.logs.join(' | '));
});

serverTest('a second frontend is refused while one is connected', async (f) => {
  const first = await f.connect();
  await first.getFeatures();
  const second = await f.connect();
  assert.is(await within('the refusal', second.closed), 'the backend closed the connection');
  assert.equal(f.logged(/refusing a second frontend/).length, 1);
  assert.is(await first.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES), 'the first one is still served');
  assert.ok(f.server.connected);
});

serverTest('after a disconnect the device stops running queues and releases memory; the next frontend is accepted', async (f) => {
  const first = await readyClient(f);
  await runningQueue(f, first, 0);
  await runningQueue(f, first, 1);
  first.close();
  await until('releaseMemory', () => f.device.ops().includes('releaseMemory'));
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)', 'startQueue(1)', 'stopQueue(0)', 'stopQueue(1)', 'reset', 'releaseMemory']);
  assert.equal(f.logged(/frontend 1 disconnected$/).length, 1);

  const second = await f.connect();
  assert.is(await second.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES));
  assert.ok(f.server.connected);
  // Nothing of the first frontend's state survives: REPLY_ACK is off again, the rings are gone.
  second.sendRaw(Request.setOwner, VERSION | HeaderFlags.needReply, new Uint8Array(0));
  assert.is(await second.getVringBase(0), 0);
  assert.is(second.pendingMessages, 0);
  await negotiate(second);
  await second.setMemTable([region(f)], { needReply: true });
  await second.setVringKick(0, f.eventfd(), { needReply: true });
  await second.setVringEnable(0, true, { needReply: true });
  assert.is(f.device.starts().length, 2, 'no start without the rings being set up again');
});

serverTest('overlapping memory regions are refused (and their fds closed)', async (f) => {
  const client = await f.connect();
  await negotiate(client);
  const gpaOverlap = [region(f), region(f, { guestPhysAddr: GUEST_BASE + REGION_SIZE / 2, userAddr: USER_BASE + 0x10000000 })];
  assert.ok(isNack(await rejection(client.setMemTable(gpaOverlap, { needReply: true }))), 'guest-physical overlap');
  const uvaOverlap = [region(f), region(f, { guestPhysAddr: 0x40000000, userAddr: USER_BASE + 0x1000 })];
  assert.ok(isNack(await rejection(client.setMemTable(uvaOverlap, { needReply: true }))), 'user address overlap');
  assert.equal(f.device.calls, []);
  assert.equal(f.logged(/overlaps region 0 in guest-physical space/).length, 1);
  assert.equal(f.logged(/overlaps region 0 in the frontend's address space/).length, 1);
  // Adjacent regions are fine.
  await client.setMemTable([region(f), region(f, { guestPhysAddr: GUEST_BASE + REGION_SIZE, userAddr: USER_BASE + REGION_SIZE })], { needReply: true });
  assert.equal(f.device.ops(), ['setMemory']);
});

serverTest('SET_FEATURES with bits not offered is refused', async (f) => {
  const client = await f.connect();
  await client.getFeatures();
  await client.setProtocolFeatures(REPLY_ACK);
  const error = await rejection(client.setFeatures(DEVICE_FEATURES | featureMask(2), { needReply: true }));
  assert.ok(isNack(error), String(error));
  assert.equal(f.logged(/include bits not offered/).length, 1);
  assert.ok(isNack(await rejection(client.setFeatures(featureMask(52), { needReply: true }))), 'bit 52');
  assert.ok(isNack(await rejection(client.setFeatures(DEVICE_FEATURES | featureMask(63), { needReply: true }))), 'bit 63: a feature word is read whole');
  assert.ok(f.logged(/features 0x80000001\w+ include bits not offered/).length >= 1, 'the whole word in the log line');
  await client.setFeatures(DEVICE_FEATURES, { needReply: true });
});

serverTest('a feature word above bit 52 goes both ways exactly (GET_FEATURES, SET_FEATURES, the queue start)', async (f) => {
  f.device.features = DEVICE_FEATURES | featureMask(FeatureBit.netHostUso, FeatureBit.netGuestUso4, FeatureBit.netGuestUso6);
  const client = await readyClient(f);
  const offered = await client.getFeatures();
  assert.is(offered, f.device.features | PROTOCOL_FEATURES);
  await runningQueue(f, client, 1);
  assert.is(f.device.starts()[0]?.setup.features, offered, 'bits 54..56 reach the device as negotiated');
});

serverTest('ACCESS_PLATFORM: offered with BACKEND_REQ (QEMU wants both), the channel fd is kept; an IOMMU translating (the bit in SET_FEATURES) is refused', async (f) => {
  f.device.features = DEVICE_FEATURES | featureMask(FeatureBit.accessPlatform);
  const client = await f.connect();
  const offered = await client.getFeatures();
  assert.ok(hasFeature(offered, FeatureBit.accessPlatform));
  const protocol = await client.getProtocolFeatures();
  assert.ok(hasFeature(protocol, ProtocolFeature.backendReq), 'BACKEND_REQ offered');
  await client.setProtocolFeatures(REPLY_ACK | featureMask(ProtocolFeature.backendReq));
  client.sendRaw(Request.setBackendReqFd, VERSION | HeaderFlags.needReply, new Uint8Array(0), [f.memfd]);
  assert.is(ackStatus((await client.expectReply(1000)).payload), 0, 'SET_BACKEND_REQ_FD accepted');
  // What QEMU sends without a vIOMMU: the bit left out.
  await client.setFeatures((DEVICE_FEATURES | PROTOCOL_FEATURES), { needReply: true });
  client.sendRaw(Request.setFeatures, VERSION | HeaderFlags.needReply, featureWordBytes(offered), []);
  assert.ok(ackStatus((await client.expectReply(1000)).payload) !== 0, 'ACCESS_PLATFORM itself refused');
  assert.equal(f.logged(/needs IOTLB messages/).length, 1);
});

serverTest('SET_PROTOCOL_FEATURES with bits not offered is refused', async (f) => {
  const client = await f.connect();
  await client.setProtocolFeatures(featureMask(ProtocolFeature.logShmfd));
  assert.is(await within('the disconnect', client.closed), 'the backend closed the connection');
  assert.ok(f.logged(/setProtocolFeatures: protocol features 0x2 include bits not offered/).length >= 1, 'logged');
});

serverTest('SET_LOG_BASE is refused cleanly and its fd closed', async (f) => {
  const client = await f.connect();
  await client.setProtocolFeatures(REPLY_ACK);
  await client.getFeatures(); // a round trip: the server has accepted the connection
  const before = openFdCount();
  client.sendRaw(Request.setLogBase, VERSION | HeaderFlags.needReply, new Uint8Array(16), [f.memfd]);
  const reply = await client.expectReply(1000);
  assert.is(reply.request, Request.setLogBase);
  assert.ok(ackStatus(reply.payload) !== 0, 'failure status');
  assert.is(openFdCount(), before, "the server closed its copy of the log fd");
  assert.equal(f.logged(/dirty logging \(live migration\) is not supported/).length, 1);
  // SET_LOG_FD likewise.
  client.sendRaw(Request.setLogFd, VERSION | HeaderFlags.needReply, new Uint8Array(0), [f.memfd]);
  assert.ok(ackStatus((await client.expectReply(1000)).payload) !== 0);
  assert.is(openFdCount(), before);
  assert.is(await client.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES));
});

serverTest('an unknown request without NEED_REPLY closes the connection', async (f) => {
  const client = await f.connect();
  client.sendRaw(99, VERSION, new Uint8Array(0));
  await within('the disconnect', client.closed);
  assert.ok(f.logged(/request 99: unknown or unsupported request/).length >= 1, 'logged');
});

serverTest("RESET_OWNER stops the queues and forgets the rings' progress", async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 0);
  f.device.stopBase.set(0, 9);
  await client.resetOwner({ needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(0)', 'stopQueue(0)', 'reset']);
  assert.is(await client.getVringBase(0), 0);
});

serverTest('SET_STATUS 0 resets the device', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 1);
  await client.setStatus(0, { needReply: true });
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)', 'stopQueue(1)', 'reset']);
});

serverTest('client: expectReply times out when nothing is owed; needReply needs REPLY_ACK', async (f) => {
  const client = await f.connect();
  const timeout = error(await rejection(client.expectReply(50)));
  assert.is(timeout.code, 'ERR_VHOST_USER_TIMEOUT');
  const usage = error(await rejection(client.setOwner({ needReply: true })));
  assert.is(usage.code, 'ERR_VHOST_USER_USAGE');
  assert.match(usage.message, /SET_OWNER: needReply asked for, but REPLY_ACK is not negotiated/);
  assert.is(await client.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES), 'nothing was sent');
});

serverTest('client: a request waiting when the backend closes rejects with ERR_VHOST_USER_CLOSED', async (f) => {
  const client = await f.connect();
  client.sendRaw(Request.setVringEnable, VERSION, new Uint8Array([0, 0, 0, 0, 2, 0, 0, 0]));
  const waiting = error(await rejection(client.getFeatures()));
  assert.is(waiting.code, 'ERR_VHOST_USER_CLOSED');
  assert.match(waiting.message, /GET_FEATURES: the connection is closed \(the backend closed the connection\)/);
  assert.is(client.closeReason, 'the backend closed the connection');
  assert.is(await client.closed, 'the backend closed the connection');
  assert.is(error(await rejection(client.getQueueNum())).code, 'ERR_VHOST_USER_CLOSED');
  assert.throws(() => client.sendRaw(Request.getFeatures, VERSION, new Uint8Array(0)), (e: unknown) => error(e).code === 'ERR_VHOST_USER_CLOSED');
});

serverTest('client: closing it resolves `closed` and the server frees the connection', async (f) => {
  const client = await readyClient(f);
  client.close();
  assert.is(await client.closed, 'closed by the frontend');
  await until('releaseMemory', () => f.device.ops().includes('releaseMemory'));
  assert.not.ok(f.server.connected);
});

/**
 * The first frontend's SET_MEM_TABLE keeps the device busy, with `queued` behind it in the
 * server's queue; the frontend leaves and a second one connects before the device answers.
 * Returns the second frontend, once the device has answered.
 */
async function leaveWithQueuedMessages(f: Fixture, queued: (first: VhostUserClient) => void): Promise<VhostUserClient> {
  let open: () => void = () => {};
  f.device.memoryGate = new Promise((resolve) => (open = resolve));
  const first = await f.connect();
  await negotiate(first);
  await first.setMemTable([region(f)]);
  queued(first);
  await until('setMemory to be called', () => f.device.ops().includes('setMemory'));
  first.close();
  await until('the server to see the disconnect', () => f.logged(/frontend 1 disconnected/).length === 1);
  const second = await f.connect();
  await until('the server to accept the second frontend', () => f.logged(/frontend 2 connected/).length === 1);
  open();
  return second;
}

serverTest('a reply owed to a frontend that left does not reach the next one', async (f) => {
  const second = await leaveWithQueuedMessages(f, (first) => first.sendRaw(Request.getQueueNum, VERSION, new Uint8Array(0)));
  // The GET_QUEUE_NUM reply would arrive first and break this GET_FEATURES.
  assert.is(await second.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES), "the second frontend's own reply");
  assert.is(second.pendingMessages, 0, 'no stray message');
});

serverTest('a bad message from a frontend that left does not disconnect the next one', async (f) => {
  const second = await leaveWithQueuedMessages(f, (first) => first.sendRaw(Request.setVringNum, VERSION, new Uint8Array([0, 0, 0, 0, 3, 0, 0, 0])));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.not.ok(second.isClosed, `the second frontend was disconnected: ${second.closeReason}; log: ${f.logs.join(' | ')}`);
  assert.is(await second.getFeatures(), (DEVICE_FEATURES | PROTOCOL_FEATURES));
});

serverTest('kick, call and err fds that are not eventfds are refused and closed; the ring keeps its own', async (f) => {
  const client = await readyClient(f);
  await runningQueue(f, client, 1);
  // A memfd cannot be polled (the datapath's watch would throw), a read-only file cannot be
  // written (the call would throw), /dev/null is neither.
  const notEventfds = [sys.memfdCreate('zcnic-test-not-eventfd', 4096), openSync('/dev/null', 'r+'), openSync(fileURLToPath(import.meta.url), 'r')];
  try {
    for (const fd of notEventfds) {
      assert.ok(isNack(await rejection(client.setVringKick(1, fd, { needReply: true }))), 'kick');
      assert.ok(isNack(await rejection(client.setVringCall(1, fd, { needReply: true }))), 'call');
      assert.ok(isNack(await rejection(client.setVringErr(1, fd, { needReply: true }))), 'err');
    }
  } finally {
    for (const fd of notEventfds) closeSync(fd);
  }
  assert.equal(f.device.ops(), ['setMemory', 'startQueue(1)'], 'the running queue was not touched');
  assert.is(f.logged(/vring 1: the kick fd is not an eventfd/).length, 3);
  assert.equal(f.server.protocolErrorCounts(), {
    'setVringKick: vring N: the kick fd is not an eventfd': 3,
    'setVringCall: vring N: the call fd is not an eventfd': 3,
    'setVringErr: vring N: the err fd is not an eventfd': 3,
  });
});

serverTest('refusals and frontend-caused disconnects are counted by reason, numbers written N', async (f) => {
  const client = await readyClient(f);
  await rejection(client.setVringNum(0, 3, { needReply: true }));
  await rejection(client.setVringNum(1, 100, { needReply: true }));
  await client.setVringNum(0, 7); // no NEED_REPLY: a disconnect
  await within('the disconnect', client.closed);
  const second = await f.connect();
  second.writeBytes(encodeHeader(Request.getFeatures, VERSION, 100000));
  await within('the second disconnect', second.closed);
  await until('the count of the second disconnect', () => Object.keys(f.server.protocolErrorCounts()).length === 2);
  assert.equal(f.server.protocolErrorCounts(), {
    'setVringNum: queue size N is not a power of two in N..N': 3,
    'message claims a N-byte payload, more than N': 1,
  });
  // A frontend that leaves in an orderly way is no error.
  const third = await f.connect();
  await third.getFeatures();
  third.close();
  await until('the third disconnect', () => f.logged(/frontend 3 disconnected/).length === 1);
  assert.is(Object.keys(f.server.protocolErrorCounts()).length, 2);
});

serverTest('a memory region beyond the end of its file is refused before anything maps it', async (f) => {
  const client = await f.connect();
  await negotiate(client);
  const small = sys.memfdCreate('zcnic-test-small-guest', 4096);
  try {
    assert.ok(isNack(await rejection(client.setMemTable([region(f, { fd: small })], { needReply: true }))), 'a 4 KiB file for a 1 MiB region');
    assert.ok(isNack(await rejection(client.setMemTable([region(f, { size: 4096, mmapOffset: REGION_SIZE })], { needReply: true }))), 'an offset at the end of the file');
  } finally {
    sys.close(small);
  }
  assert.equal(f.device.calls, [], 'the device never saw them');
  assert.is(f.logged(/beyond the end of its file/).length, 2);
});

// ---- inflight tracking (INFLIGHT_SHMFD) ----------------------------------------------------------

function inflightPayload(mmapSize: number, mmapOffset: number, queues: number, queueSize: number): Uint8Array {
  return inflightMessage({ mmapSize, mmapOffset, queues, queueSize });
}

serverTest('GET_INFLIGHT_FD answers a zeroed memfd laid out for the queues; the queues start with it', async (f) => {
  const client = await f.connect();
  const protocol = await client.getProtocolFeatures();
  assert.ok(hasFeature(protocol, ProtocolFeature.inflightShmfd), 'INFLIGHT_SHMFD offered');
  await negotiate(client);
  await client.setMemTable([region(f)], { needReply: true });
  client.sendRaw(Request.getInflightFd, VERSION, inflightPayload(0, 0, 2, QUEUE_SIZE));
  const reply = await client.expectReply();
  assert.is(reply.request, Request.getInflightFd);
  assert.is(reply.fds.length, 1, 'one fd');
  const fd = reply.fds[0]!;
  try {
    // The reply at vhost-user.rst's offsets, checked apart from InflightMessage.
    const view = new DataView(reply.payload.buffer, reply.payload.byteOffset, reply.payload.byteLength);
    assert.is(reply.payload.length, 24);
    assert.is(view.getUint32(0, true), 2 * inflightQueueBytes(QUEUE_SIZE), 'mmap_size');
    assert.is(view.getUint32(8, true), 0, 'mmap_offset');
    assert.is(view.getUint16(16, true), 2);
    assert.is(view.getUint16(18, true), QUEUE_SIZE);
    assert.is(sys.fileSize(fd), 2 * inflightQueueBytes(QUEUE_SIZE));
    // The frontend hands it back (as QEMU does before every start), then starts queue 1.
    client.sendRaw(Request.setInflightFd, VERSION | HeaderFlags.needReply, inflightPayload(2 * inflightQueueBytes(QUEUE_SIZE), 0, 2, QUEUE_SIZE), [fd]);
    assert.is(ackStatus((await client.expectReply()).payload), 0);
    await runningQueue(f, client, 1);
    const setup = f.device.starts()[0]!.setup;
    assert.equal({ ...setup.inflight, fd: 0 }, { fd: 0, mapOffset: 0, mapSize: 2 * inflightQueueBytes(QUEUE_SIZE), queueOffset: inflightQueueBytes(QUEUE_SIZE) });
  } finally {
    sys.close(fd);
  }
});

serverTest('RING_PACKED: 4-byte event areas, a base of two halves passed through both ways, no inflight region', async (f) => {
  f.device.features = DEVICE_FEATURES | featureMask(FeatureBit.ringPacked);
  const client = await readyClient(f);
  const kick = f.eventfd();
  const o = ringOffsets(1);
  await client.setVringNum(1, QUEUE_SIZE, { needReply: true });
  // The device area in the region's last 4 bytes: room for a packed ring's, not for a split used ring.
  await client.setVringAddr(1, { desc: USER_BASE + o.desc, avail: USER_BASE + o.avail, used: USER_BASE + REGION_SIZE - 4 }, { needReply: true });
  await client.setVringBase(1, 0x80038003, { needReply: true });
  await client.setVringKick(1, kick, { needReply: true });
  await client.setVringEnable(1, true, { needReply: true });
  const setup = f.device.starts()[0]!.setup;
  assert.is(setup.base, 0x80038003, 'slot 3 with wrap counter 1 in both halves');
  assert.is(setup.usedAddr, GUEST_BASE + REGION_SIZE - 4);
  f.device.stopBase.set(1, 0x00058005);
  assert.is(await client.getVringBase(1), 0x00058005);
  client.sendRaw(Request.getInflightFd, VERSION | HeaderFlags.needReply, inflightPayload(0, 0, 2, QUEUE_SIZE));
  const reply = await client.expectReply();
  assert.is(reply.fds.length, 0);
  assert.is(ackStatus(reply.payload), 1, 'refused');
  assert.equal(f.logged(/inflight regions of packed rings .* are not supported/).length, 1);
});

serverTest('SET_INFLIGHT_FD: a file smaller than the region, or a ring of another size, is refused', async (f) => {
  const client = await readyClient(f);
  const small = sys.memfdCreate('zcnic-test-inflight', 4096);
  try {
    client.sendRaw(Request.setInflightFd, VERSION | HeaderFlags.needReply, inflightPayload(2 * inflightQueueBytes(QUEUE_SIZE), 0, 2, QUEUE_SIZE), [small]);
    assert.is(ackStatus((await client.expectReply()).payload), 1);
    assert.equal(f.logged(/beyond its file's 4096 bytes/).length, 1);
    // A region for queues of 128 descriptors does not fit a 256-descriptor ring.
    const fits = sys.memfdCreate('zcnic-test-inflight', 8192);
    client.sendRaw(Request.setInflightFd, VERSION | HeaderFlags.needReply, inflightPayload(2 * inflightQueueBytes(128), 0, 2, 128), [fits]);
    sys.close(fits);
    assert.is(ackStatus((await client.expectReply()).payload), 0);
    const error = await rejection(runningQueue(f, client, 1));
    assert.ok(isNack(error), String(error));
    assert.equal(f.logged(/differs from the inflight region's queue size 128/).length, 1);
    assert.equal(f.device.starts(), []);
  } finally {
    sys.close(small);
  }
});

test.run();
