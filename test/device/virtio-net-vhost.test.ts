// End to end in one process: the real VirtioNet (with its datapath worker) behind a
// VhostUserServer, driven by a FrontendSession that writes transmitq chains into its guest RAM.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureBit, hasFeature, VhostUserServer } from 'vfio-user-ts';
import { FrontendSession } from 'vfio-user-ts/vhost-user-frontend';
import { VirtioNet } from '../../device/virtio-net.js';
import { SINK_DEVICE_OPTIONS } from '../support/sink-device.js';
import { SplitRingDriver, type DriverBuffer } from '../support/vhost/split-ring-driver.js';

const HEADER_LENGTH = 12; // VERSION_1: the virtio-net header with num_buffers
const FRAME_LENGTH = 60;
const TRANSMITQ = 1;

/** Polls `check` until it holds; rejects after `ms`. */
async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A 60-byte Ethernet frame to the device's MAC, its payload marked with `n`. */
function frame(n: number): Uint8Array {
  const bytes = new Uint8Array(FRAME_LENGTH);
  bytes.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x88, 0xb5], 0); // local experimental ethertype
  for (let i = 14; i < FRAME_LENGTH; i++) bytes[i] = (n * 31 + i) & 0xff;
  return bytes;
}

/** A virtio-net header asking for nothing (no checksum, no GSO). */
const netHeader = () => new Uint8Array(HEADER_LENGTH);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Places `bytes` split at the given lengths, one buffer each. */
function buffers(ring: SplitRingDriver, bytes: Uint8Array, lengths: readonly number[]): DriverBuffer[] {
  let at = 0;
  return lengths.map((length) => {
    const gpa = ring.place(bytes.subarray(at, at + length));
    at += length;
    return { gpa, length };
  });
}

test('transmitq chains written by a vhost-user frontend reach the real device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-vhost-e2e-'));
  const socketPath = join(dir, 'vhost.sock');
  const queueErrors: string[] = [];
  const failures: string[] = [];
  const logs: string[] = [];
  let device: VirtioNet | null = null;
  let server: VhostUserServer | null = null;
  let session: FrontendSession | null = null;
  try {
    device = await VirtioNet.create({
      ...SINK_DEVICE_OPTIONS,
      onQueueError: (queue, kind, detail, fatal) => queueErrors.push(`queue ${queue}: ${kind}: ${detail}${fatal ? ' (fatal)' : ''}`),
      onFailure: (reason) => failures.push(reason),
    });
    server = new VhostUserServer({ socketPath, device, log: (line) => logs.push(line) });
    session = await FrontendSession.open({ socketPath, memoryBytes: 1 << 20, queues: 2 });
    assert.ok(session.eventIdx, 'EVENT_IDX negotiated');
    assert.ok(session.client.replyAck, 'REPLY_ACK negotiated');
    assert.is(session.queuePairs, 1);

    const tx = new SplitRingDriver(session, TRANSMITQ);
    const packet = (n: number) => concat(netHeader(), frame(n));
    const heads = [
      // Header and frame in one buffer.
      tx.addChain(buffers(tx, packet(0), [HEADER_LENGTH + FRAME_LENGTH])),
      // The header alone in its first descriptor, the frame in the second.
      tx.addChain(buffers(tx, packet(1), [HEADER_LENGTH, FRAME_LENGTH])),
      // Header with the Ethernet header, then the frame split in two.
      tx.addChain(buffers(tx, packet(2), [HEADER_LENGTH + 14, 30, 16])),
      // Through an indirect table: header alone, then the frame.
      tx.addIndirectChain(buffers(tx, packet(3), [HEADER_LENGTH, FRAME_LENGTH])),
    ];
    tx.publish();
    session.kick(TRANSMITQ);

    await until('4 frames on the transmitq', () => device!.stats().transmitq.frames >= 4);
    await until('the used ring to hold 4 chains', () => tx.usedIdx() === 4);
    const stats = device.stats();
    assert.equal(stats.transmitq, { frames: 4, bytes: 4 * FRAME_LENGTH });
    assert.is(stats.chainShapes.vnetHeaderAlone, 2, 'chains whose header is alone in the first buffer');
    assert.is(stats.chainShapes.indirect, 1);
    assert.is(stats.chainShapes.frameSplitAcrossBuffers, 1);
    assert.is(stats.chainShapes.ethernetHeaderNotWithVnetHeader, 2);
    assert.equal(stats.chainShapes.descriptorsPerChain, { '1': 1, '2': 2, '3': 1, '4': 0, '5-8': 0, '9-16': 0, '17+': 0 });
    assert.ok(Object.values(stats.errors).every((n) => n === 0), JSON.stringify(stats.errors));
    // Used elements: the heads in order, nothing written into transmit buffers.
    assert.equal([0, 1, 2, 3].map((i) => tx.usedElement(i)), heads.map((id) => ({ id, len: 0 })));
    // The device interrupted the driver (used_event is 0, so the first used element asks for it).
    await until('an interrupt on the transmitq call fd', () => session!.takeCalls(TRANSMITQ) > 0, 2000);

    // Which ring ran, and with what: the features the session negotiated, by name, and each queue.
    assert.equal(stats.features, ['MRG_RXBUF', 'INDIRECT_DESC', 'EVENT_IDX', 'VERSION_1']);
    const queue = (index: number) => ({ index, layout: 'split', size: 256, eventIdx: true, inflight: false, running: true });
    assert.equal(stats.queues, [queue(0), queue(1)]);

    // Stopping the queue tells where to resume: after the 4 chains.
    assert.is(await session.client.getVringBase(TRANSMITQ), 4);
    assert.is(await session.client.getVringBase(0), 0, 'the receiveq consumed nothing');
    assert.equal(device.stats().queues, [{ ...queue(0), running: false }, { ...queue(1), running: false }], 'a stopped queue still shows what ran');
    assert.equal(queueErrors, []);
    assert.equal(failures, []);
  } catch (error) {
    if (logs.length > 0) console.error(`server log:\n  ${logs.join('\n  ')}`);
    throw error;
  } finally {
    session?.close();
    await server?.close();
    await device?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a second frontend after a disconnect gets a fresh device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-vhost-e2e-'));
  const socketPath = join(dir, 'vhost.sock');
  const queueErrors: string[] = [];
  let device: VirtioNet | null = null;
  let server: VhostUserServer | null = null;
  const sessions: FrontendSession[] = [];
  try {
    device = await VirtioNet.create({
      ...SINK_DEVICE_OPTIONS,
      onQueueError: (queue, kind, detail) => queueErrors.push(`queue ${queue}: ${kind}: ${detail}`),
      onFailure: (reason) => queueErrors.push(reason),
    });
    server = new VhostUserServer({ socketPath, device, log: () => {} });
    for (let round = 1; round <= 2; round++) {
      const session = await FrontendSession.open({ socketPath, memoryBytes: 1 << 20, queues: 2, queueSize: 64 });
      sessions.push(session);
      const tx = new SplitRingDriver(session, TRANSMITQ);
      for (let n = 0; n < 3; n++) tx.addChain(buffers(tx, concat(netHeader(), frame(n)), [HEADER_LENGTH, FRAME_LENGTH]));
      tx.publish();
      session.kick(TRANSMITQ);
      await until(`round ${round}: 3 more frames`, () => device!.stats().transmitq.frames === 3 * round);
      await until(`round ${round}: used ring`, () => tx.usedIdx() === 3);
      session.close();
      await until(`round ${round}: the server to see the disconnect`, () => !server!.connected);
    }
    assert.equal(queueErrors, []);
  } finally {
    for (const session of sessions) session.close();
    await server?.close();
    await device?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('RING_PACKED is offered unless the split ring only is asked for', async () => {
  for (const splitRingOnly of [false, true]) {
    const device = await VirtioNet.create({ ...SINK_DEVICE_OPTIONS, splitRingOnly, onQueueError: () => undefined, onFailure: () => undefined });
    try {
      assert.is(hasFeature(device.features, FeatureBit.ringPacked), !splitRingOnly, `splitRingOnly ${splitRingOnly}`);
      assert.ok(hasFeature(device.features, FeatureBit.ringEventIdx), 'the rest as before');
    } finally {
      await device.close();
    }
  }
});

test('IN_ORDER is offered unless withheld (inOrder: false)', async () => {
  for (const inOrder of [undefined, false]) {
    const device = await VirtioNet.create({ ...SINK_DEVICE_OPTIONS, ...(inOrder === undefined ? {} : { inOrder }), onQueueError: () => undefined, onFailure: () => undefined });
    try {
      assert.is(hasFeature(device.features, FeatureBit.inOrder), inOrder === undefined, `inOrder ${String(inOrder)}`);
      assert.ok(hasFeature(device.features, FeatureBit.ringPacked), 'the rest as before');
    } finally {
      await device.close();
    }
  }
});

test.run();
