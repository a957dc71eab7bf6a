// Port `wire`: two NICs back to back through one unix SOCK_SEQPACKET socket pair per queue pair.
// Two datapaths in this process, each on its own fake guest with two queue pairs, joined by
// socketPair(): what one's transmitq k sends lands byte for byte on the other's receiveq k. Then
// what a wire does when the other side cannot take frames (counted, never blocking, never
// spinning), the --wire-fds checks, the control API's refusal, and two `zcnic device` processes
// that the harness joins with createWire.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FeatureBit, featureMask, sys } from 'vfio-user-ts';
import { FrontendSession } from 'vfio-user-ts/vhost-user-frontend';
import { parseWireFds } from '../../cli/device-command.js';
import { ControlServer } from '../../device/control-server.js';
import { createCounters, describeCounters } from '../../device/counters.js';
import { Datapath } from '../../device/datapath/datapath.js';
import type { FromDatapath } from '../../device/datapath/messages.js';
import type { PortOptions } from '../../device/ports/port.js';
import { closeWires, WireGroup, WirePort } from '../../device/ports/wire.js';
import { VirtioNet } from '../../device/virtio-net.js';
import { DeviceControl } from '../../harness/device-control.js';
import { createWire, ZcnicDevice } from '../../harness/device-process.js';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';
import { SplitRingDriver } from '../support/vhost/split-ring-driver.js';

const FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringEventIdx, FeatureBit.ringIndirectDesc);
const HEADER = 12;
const RING = 256;
const RX_BUFFER = 2048;
const ENTRY = new URL('../../cli/zcnic.js', import.meta.url).pathname;

function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(poll, 2));
    poll();
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const wireOptions = (wireFds: readonly number[]): PortOptions => ({ port: 'wire', gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56', wireFds });

/** The receive buffers a side posted, by head, so that placed frames can be read back. */
interface RxRing {
  readonly q: FakeQueue;
  readonly bufferOfHead: Map<number, number>;
  /** used.idx up to which frames were collected. */
  collected: number;
  readonly frames: Uint8Array[];
}

/**
 * One NIC: a datapath on its own guest, `pairs` queue pairs started (the receiveqs of
 * `receivePairs` only, when given), its ends of the wires.
 */
function nic(wireFds: readonly number[], options: { startReceive?: boolean; receivePairs?: readonly number[] } = {}) {
  const pairs = wireFds.map((_, i) => i);
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 16 << 20 }]);
  const counters = createCounters();
  const messages: FromDatapath[] = [];
  const datapath = new Datapath({ counters: counters.buffer as SharedArrayBuffer, pairs, mode: 'kick', port: wireOptions(wireFds), pcapPath: null, verify: false }, (m) => messages.push(m));
  datapath.handle({ type: 'memory', regions: guest.regions });
  const queues = pairs.flatMap(() => [new FakeQueue(guest, RING), new FakeQueue(guest, RING)]);
  const kicks = queues.map(() => sys.eventfdCreate(0, true));
  const calls = queues.map(() => sys.eventfdCreate(0, true));
  queues.forEach((q, i) => {
    if ((i & 1) === 0 && (options.startReceive === false || (options.receivePairs !== undefined && !options.receivePairs.includes(i >> 1)))) return;
    datapath.handle({ type: 'start', start: { queue: i, addresses: q.addresses, base: 0, kickFd: kicks[i]!, callFd: calls[i]!, features: FEATURES } });
  });
  const rx: RxRing[] = pairs.map((k) => ({ q: queues[2 * k]!, bufferOfHead: new Map(), collected: 0, frames: [] }));
  const txq = (k: number) => queues[2 * k + 1]!;
  return {
    guest,
    counters,
    messages,
    datapath,
    rx,
    txq,
    /** Posts `n` receive buffers on pair k's receiveq and kicks it. */
    post(k: number, n: number) {
      const ring = rx[k]!;
      for (let i = 0; i < n; i++) {
        const gpa = guest.alloc(RX_BUFFER);
        const head = ring.q.addChain([{ gpa, length: RX_BUFFER, writable: true }]);
        ring.bufferOfHead.set(head, gpa);
        ring.q.makeAvailable(head);
      }
      sys.eventfdWrite(kicks[2 * k]!, 1);
    },
    /** Puts the frames on pair k's transmitq (header and frame in one buffer) and kicks it. */
    send(k: number, frames: readonly Uint8Array[]) {
      const q = txq(k);
      for (const frame of frames) {
        const packet = new Uint8Array(HEADER + frame.length);
        packet.set(frame, HEADER);
        q.makeAvailable(q.addChain([{ length: packet.length, data: packet }]));
      }
      sys.eventfdWrite(kicks[2 * k + 1]!, 1);
    },
    /** Kicks queue `queue` (2k: pair k's receiveq, 2k + 1: its transmitq). */
    kick(queue: number) {
      sys.eventfdWrite(kicks[queue]!, 1);
    },
    /** The frames placed on pair k's receiveq since the last call (without their header). */
    collect(k: number): Uint8Array[] {
      const ring = rx[k]!;
      const used = ring.q.usedIdx();
      for (; ring.collected !== used; ring.collected = (ring.collected + 1) & 0xffff) {
        const { id, length } = ring.q.usedElement(ring.collected);
        const bytes = guest.read(ring.bufferOfHead.get(id)!, length);
        assert.is(new DataView(bytes.buffer).getUint16(10, true), 1, 'num_buffers 1');
        assert.equal([...bytes.subarray(0, 10)], new Array(10).fill(0), 'no flags, no GSO: plain frames');
        ring.frames.push(bytes.subarray(HEADER));
      }
      return ring.frames;
    },
    close() {
      datapath.handle({ type: 'shutdown' });
      for (const fd of [...kicks, ...calls]) sys.close(fd);
      guest.close();
    },
  };
}

type Nic = ReturnType<typeof nic>;

/** Two NICs joined by a wire of `pairs` queue pairs for `body`; everything closed after. */
async function joined(pairs: number, body: (a: Nic, b: Nic) => Promise<void>): Promise<void> {
  const wires = Array.from({ length: pairs }, () => sys.socketPair());
  const a = nic(wires.map((w) => w[0]));
  const b = nic(wires.map((w) => w[1]));
  try {
    await body(a, b);
  } finally {
    a.close();
    b.close();
    closeWires();
  }
}

/** A frame that says which side and pair sent it and its number, the rest pseudo-random. */
function frame(side: number, pair: number, n: number, length: number): Uint8Array {
  const f = new Uint8Array(length);
  let x = (side * 7919 + pair * 104729 + n * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    f[i] = x & 0xff;
  }
  f.set([0x02, 0, 0, 0, side, pair, 0x02, 0, 0, 0, 1 - side, pair, 0x88, 0xb5], 0);
  new DataView(f.buffer).setUint32(14, n);
  return f;
}

/** The assertion the tests rely on: `got` is exactly `sent`, byte for byte, in order. */
function assertDelivered(got: readonly Uint8Array[], sent: readonly Uint8Array[], what: string): void {
  assert.is(got.length, sent.length, `${what}: frame count`);
  for (let i = 0; i < sent.length; i++) {
    const a = got[i]!;
    const b = sent[i]!;
    // A plain Error: assert.throws passes uvu's own assertion errors on (the negative controls).
    if (a.length !== b.length || a.some((byte, j) => byte !== b[j])) throw new Error(`${what}: frame ${i} differs from the one sent`);
  }
}

test('frames sent on one NIC arrive byte for byte on the other, queue pair k to queue pair k, both ways', async () => {
  await joined(2, async (a, b) => {
    const sent: Uint8Array[][][] = [[], []]; // [side][pair]
    for (const [side, n] of [[0, a], [1, b]] as const) {
      for (let k = 0; k < 2; k++) {
        sent[side]![k] = Array.from({ length: 40 }, (_, i) => frame(side, k, i, 60 + ((i * 37 + k * 501) % 1455)));
        (side === 0 ? b : a).post(k, 40);
        n.send(k, sent[side]![k]!);
      }
    }
    await until(() => [a, b].every((n) => [0, 1].every((k) => n.collect(k).length === 40)), 'every frame on the other side');
    for (let k = 0; k < 2; k++) {
      assertDelivered(b.collect(k), sent[0]![k]!, `A pair ${k} -> B pair ${k}`);
      assertDelivered(a.collect(k), sent[1]![k]!, `B pair ${k} -> A pair ${k}`);
    }
    for (const n of [a, b]) {
      const c = describeCounters(n.counters);
      assert.is(c.transmitq.frames, 80);
      assert.is(c.receiveq.frames, 80);
      assert.is(c.portTxDropped, 0);
      assert.is(c.receiveq.noBuffers, 0);
    }

    // Negative controls: the same assertion sees a wrong queue mapping and one changed byte.
    assert.throws(() => assertDelivered(b.collect(1), sent[0]![0]!, 'pair 0 -> pair 1'), /differs/);
    assert.throws(() => assertDelivered(a.collect(0), sent[0]![0]!, 'A -> A'), /differs/);
    const corrupted = b.collect(0).map((f) => f.slice());
    corrupted[17]![corrupted[17]!.length - 1]! ^= 0x01;
    assert.throws(() => assertDelivered(corrupted, sent[0]![0]!, 'one bit flipped'), /frame 17 differs/);
  });
});

test("frames for a receiveq the driver does not use go to the first one it uses (virtio_net's XDP_TX on transmitq 1 of a one-pair driver)", async () => {
  const wires = [sys.socketPair(), sys.socketPair()];
  const a = nic(wires.map((w) => w[0]));
  // B's driver uses queue pair 0 only: its receiveq 1 is never started.
  const b = nic(
    wires.map((w) => w[1]),
    { receivePairs: [0] },
  );
  try {
    const viaPair1 = Array.from({ length: 20 }, (_, i) => frame(0, 1, i, 64 + i * 50));
    const viaPair0 = Array.from({ length: 5 }, (_, i) => frame(0, 0, i, 100));
    b.post(0, 25);
    a.send(1, viaPair1);
    await until(() => b.collect(0).length === 20, "pair 1's frames on B's receiveq 0");
    a.send(0, viaPair0);
    await until(() => b.collect(0).length === 25, "then pair 0's own");
    assertDelivered(b.collect(0), [...viaPair1, ...viaPair0], 'A pair 1 and pair 0 -> B pair 0');
    const c = describeCounters(b.counters);
    assert.is(c.receiveq.frames, 25);
    assert.is(c.receiveq.noBuffers, 0, 'none dropped');
    // Negative control: the same assertion sees the order of the two sends.
    assert.throws(() => assertDelivered(b.collect(0), [...viaPair0, ...viaPair1], 'pair 0 first'), /frame 0 differs/);
  } finally {
    a.close();
    b.close();
    closeWires();
  }
});

test('a stream of frames through the wire (frames/s printed, not asserted)', async () => {
  await joined(1, async (a, b) => {
    const total = 30_000;
    const length = 64;
    // One buffer per descriptor, reused: the driver keeps at most a ring of each in flight.
    const txBuffers = Array.from({ length: RING }, () => a.guest.alloc(HEADER + length));
    const rxBuffers = Array.from({ length: RING }, () => b.guest.alloc(RX_BUFFER));
    for (let i = 0; i < RING; i++) a.guest.write(txBuffers[i]!, new Uint8Array(HEADER + length).fill(i, HEADER));
    const txq = a.txq(0);
    const rxq = b.rx[0]!.q;
    let sent = 0;
    let posted = 0;
    let received = 0;
    const started = performance.now();
    while (received < total) {
      const delivered = (rxq.usedIdx() - (received & 0xffff)) & 0xffff;
      received += delivered;
      for (; posted - received < RING; posted++) rxq.makeAvailable(rxq.addChain([{ gpa: rxBuffers[posted % RING]!, length: RX_BUFFER, writable: true }]));
      const completed = txq.usedIdx();
      for (; sent < total && ((sent - completed) & 0xffff) < RING; sent++) txq.makeAvailable(txq.addChain([{ gpa: txBuffers[sent % RING]!, length: HEADER + length }]));
      b.kick(0);
      a.kick(1);
      const c = describeCounters(a.counters);
      if (c.transmitq.frames === total && received + describeCounters(b.counters).receiveq.noBuffers + c.portTxDropped >= total) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const seconds = (performance.now() - started) / 1000;
    const dropped = describeCounters(a.counters).portTxDropped;
    const noBuffers = describeCounters(b.counters).receiveq.noBuffers;
    assert.is(received + dropped + noBuffers, total, 'every frame received or counted');
    console.log(`  ${total} frames of ${length} bytes through one wire (both NICs and the driver on one thread): ${Math.round(received / seconds)} frames/s received, ${dropped} dropped at the wire, ${noBuffers} without a buffer`);
  });
});

test('a NIC that has posted no receive buffers drops what the wire brings, counted', async () => {
  await joined(1, async (a, b) => {
    a.send(0, Array.from({ length: 30 }, (_, i) => frame(0, 0, i, 100)));
    await until(() => describeCounters(b.counters).receiveq.noBuffers === 30, 'thirty frames dropped on B');
    assert.is(describeCounters(a.counters).portTxDropped, 0, 'the wire took them all');
    // Buffers posted later get the frames sent later, not the dropped ones.
    b.post(0, 5);
    const later = Array.from({ length: 5 }, (_, i) => frame(0, 0, 100 + i, 100));
    a.send(0, later);
    await until(() => b.collect(0).length === 5, 'five frames on B');
    assertDelivered(b.collect(0), later, 'after the drops');
  });
});

test('a wire the other NIC does not read drops what does not fit, counted; the transmitq never waits', async () => {
  const [x, y] = sys.socketPair();
  const a = nic([x]);
  try {
    // Nobody reads y: the send buffer (8 MiB as root: about 3600 frames of 1514 bytes) fills,
    // then frames are dropped.
    const total = 20 * RING;
    let queued = 0;
    for (let round = 0; round < total / RING; round++) {
      a.send(0, Array.from({ length: RING }, (_, i) => frame(0, 0, round * RING + i, 1514)));
      await until(() => describeCounters(a.counters).transmitq.frames === (round + 1) * RING, `round ${round} completed`);
    }
    const dropped = describeCounters(a.counters).portTxDropped;
    const scratch = new Uint8Array(2048);
    while (sys.readFd(y, scratch, 0, scratch.length) > 0) queued++;
    assert.ok(dropped > 0, 'some dropped');
    assert.is(queued + dropped, total, 'every frame either crossed or was counted');
    console.log(`  wire send buffer held ${queued} frames of 1514 bytes (SO_SNDBUF ${sys.setSendBuffer(x, 4 << 20)}); ${dropped} dropped`);

    // The other end goes away: frames are dropped and counted, the NIC goes on.
    sys.close(y);
    a.send(0, Array.from({ length: 10 }, (_, i) => frame(0, 0, i, 200)));
    await until(() => describeCounters(a.counters).transmitq.frames === total + 10, 'ten more completed');
    assert.is(describeCounters(a.counters).portTxDropped, dropped + 10);
  } finally {
    a.close();
    closeWires();
  }
});

test('a wakeup nobody serves drops the frames instead of spinning; closeWires stops the one watch', async () => {
  const [x, y] = sys.socketPair();
  const counters = createCounters();
  let wakes = 0;
  const watchesBefore = sys.watcherCount();
  const receiver = { receive: () => assert.unreachable('nothing services this port') as never };
  try {
    const port = new WirePort({ index: 0, rx: null, ...receiver }, new WireGroup(), counters, x, () => wakes++);
    assert.is(port.error, null);
    assert.is(sys.watcherCount() - watchesBefore, 1, 'one watch');
    // Like a pair whose receiveq is not started: woken, never serviced.
    for (let i = 0; i < 100; i++) sys.writeFd(y, frame(1, 0, i, 64), 0, 64);
    await until(() => describeCounters(counters).receiveq.noBuffers === 100, 'the frames dropped');
    const settled = wakes;
    await sleep(50);
    assert.is(wakes, settled, 'no wakeups once the wire is drained');
    assert.ok(settled <= 4, `${settled} wakeups for 100 frames`);
  } finally {
    closeWires();
    sys.close(y);
  }
  assert.is(sys.watcherCount(), watchesBefore, 'closeWires stopped the watch');
  assert.throws(() => sys.socketType(x), /EBADF/, 'and closed the end');
});

test('a wire survives switching the port away and back; a closed other end stops its watch', async () => {
  const [x, y] = sys.socketPair();
  const a = nic([x]);
  const scratch = new Uint8Array(2048);
  try {
    const watches = sys.watcherCount();
    a.datapath.handle({ type: 'port', port: { ...wireOptions([x]), port: 'sink' } });
    a.send(0, [frame(0, 0, 0, 80)]);
    await until(() => describeCounters(a.counters).transmitq.frames === 1, 'sent to the sink');
    assert.is(sys.readFd(y, scratch, 0, scratch.length), -1, 'nothing on the wire');
    a.datapath.handle({ type: 'port', port: wireOptions([x]) });
    assert.is(sys.watcherCount(), watches, 'the same watch');
    const f = frame(0, 0, 1, 80);
    a.send(0, [f]);
    await until(() => describeCounters(a.counters).transmitq.frames === 2, 'sent on the wire');
    const n = sys.readFd(y, scratch, 0, scratch.length);
    assertDelivered([scratch.subarray(0, n)], [f], 'after the switch');
    a.post(0, 1);
    const back = frame(1, 0, 0, 90);
    sys.writeFd(y, back, 0, back.length);
    await until(() => a.collect(0).length === 1, 'the frame from the other end');
    assertDelivered(a.collect(0), [back], 'the other way');

    // The other end closes (its device exited): A's read sees the end and its watch stops.
    sys.close(y);
    await until(() => sys.watcherCount() === watches - 1, 'the watch stopped');
    a.send(0, [frame(0, 0, 2, 80)]);
    await until(() => describeCounters(a.counters).transmitq.frames === 3, 'completed');
    assert.is(describeCounters(a.counters).portTxDropped, 1, 'dropped: nobody at the other end');
  } finally {
    a.close();
    closeWires();
  }
});

test('--wire-fds takes one open SOCK_SEQPACKET socket per queue pair', () => {
  const [x, y] = sys.socketPair();
  const [u, v] = sys.socketPair();
  const event = sys.eventfdCreate(0, true);
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-wire-'));
  const stream = sys.unixListen(join(dir, 'stream.sock'), 1);
  try {
    assert.equal(parseWireFds(`${x}`, 1), [x]);
    assert.equal(parseWireFds(`${x},${u}`, 2), [x, u]);
    const refused = (text: string, queues: number, why: RegExp) => assert.throws(() => parseWireFds(text, queues), why, `${text} for ${queues}`);
    refused(`${x}`, 2, /1 fd for 2 queue pairs/);
    refused(`${x},${u}`, 1, /2 fds for 1 queue pair/);
    refused(`${x},`, 2, /fd numbers separated by commas/);
    refused('three', 1, /fd numbers separated by commas/);
    refused('1', 1, /stdin, stdout and stderr/);
    refused(`${x},${x}`, 2, /given twice/);
    refused(`${event}`, 1, /is not a socket/);
    refused(`${stream}`, 1, /type 1, not SOCK_SEQPACKET/);
    refused('999999', 1, /is not open/);
  } finally {
    for (const fd of [x, y, u, v, event, stream]) sys.close(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the control API takes port wire only from a device that was given wires', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-wire-'));
  const [x, y] = sys.socketPair();
  const devices: VirtioNet[] = [];
  const controls: ControlServer[] = [];
  const clients: DeviceControl[] = [];
  try {
    const start = async (name: string, wireFds?: number[]) => {
      const device = await VirtioNet.create({
        queuePairs: 1,
        workers: 1,
        mode: 'kick',
        port: { port: 'sink', gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56', ...(wireFds ? { wireFds } : {}) },
        pcapPath: null,
        verify: false,
        onQueueError: (queue, kind, detail) => assert.unreachable(`queue ${queue}: ${kind}: ${detail}`),
        onFailure: (reason) => assert.unreachable(reason),
      });
      devices.push(device);
      controls.push(await ControlServer.listen(join(dir, `${name}.ctl`), device));
      const client = await DeviceControl.connect(join(dir, `${name}.ctl`), { retryForMs: 2000 });
      clients.push(client);
      return client;
    };
    const plain = await start('plain');
    const wired = await start('wired', [x]);
    assert.equal(await plain.request({ cmd: 'setPort', port: 'wire' }), { error: 'port wire needs the ends of the wire, given when the device starts (zcnic device --wire-fds)' });
    assert.equal(await wired.request({ cmd: 'setPort', port: 'wire' }), { ok: true });
    assert.is((await wired.stats()).port, 'wire');
    // The wire works from the worker: a frame from the other end is read (and dropped: no queues).
    sys.writeFd(y, frame(1, 0, 0, 64), 0, 64);
    await until(() => devices[1]!.stats().receiveq.noBuffers === 1, 'the frame read and counted');
  } finally {
    for (const c of clients) c.close();
    for (const c of controls) await c.close();
    for (const d of devices) await d.close();
    sys.close(y);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two zcnic device processes joined by createWire carry frames between their NICs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-wire-'));
  const wire = createWire(2);
  const devices: ZcnicDevice[] = [];
  const sessions: FrontendSession[] = [];
  try {
    for (const [name, wireFds] of [['a', wire.a], ['b', wire.b]] as const) {
      devices.push(await ZcnicDevice.start({ entry: ENTRY, socket: join(dir, `${name}.sock`), port: 'wire', queues: 2, wireFds }));
    }
    wire.close();
    wire.close();
    for (const name of ['a', 'b']) sessions.push(await FrontendSession.open({ socketPath: join(dir, `${name}.sock`), memoryBytes: 1 << 20, queues: 4 }));
    const [sa, sb] = sessions as [FrontendSession, FrontendSession];
    // A's pair 1 transmits; B's pair 1 receives.
    const rx = new SplitRingDriver(sb, 2);
    const bufferGpa = rx.place(new Uint8Array(RX_BUFFER));
    rx.addChain([{ gpa: bufferGpa, length: RX_BUFFER, writable: true }]);
    rx.publish();
    sb.kick(2);
    const tx = new SplitRingDriver(sa, 3);
    const f = frame(0, 1, 0, 300);
    const packet = new Uint8Array(HEADER + f.length);
    packet.set(f, HEADER);
    tx.addChain([{ gpa: tx.place(packet), length: packet.length }]);
    tx.publish();
    sa.kick(3);
    await until(() => rx.usedIdx() === 1, 'the frame on B pair 1');
    const at = sb.memory.gpaToOffset(bufferGpa, RX_BUFFER);
    assertDelivered([sb.memory.bytes.slice(at + HEADER, at + rx.usedElement(0).len)], [f], 'A pair 1 -> B pair 1');
    const [statsA, statsB] = [await devices[0]!.stats(), await devices[1]!.stats()];
    assert.is(statsA.port, 'wire');
    assert.is(statsA.transmitq.frames, 1);
    assert.is(statsB.receiveq.frames, 1);
    // A goes away: B notices on its wires and keeps running, its frames counted as dropped.
    await devices[0]!.stop();
    const tx2 = new SplitRingDriver(sb, 1);
    tx2.addChain([{ gpa: tx2.place(packet), length: packet.length }]);
    tx2.publish();
    sb.kick(1);
    await until(() => tx2.usedIdx() === 1, 'B completed the frame');
    assert.is((await devices[1]!.stats()).portTxDropped, 1);
  } finally {
    wire.close();
    for (const s of sessions) s.close();
    for (const d of devices) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
