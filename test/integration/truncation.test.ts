/**
 * A frontend that truncates its guest-memory memfd after SET_MEM_TABLE, mid-traffic (issue 13,
 * item 1). QEMU and DPDK do not seal their memfds, so the device cannot prevent it: the first
 * access beyond the new end raised SIGBUS and killed the device process. Now the device must
 * survive it: the queue stops with one log line that says where memory was lost, it is counted
 * (errors.guestMemoryTruncated), the frontend is disconnected, and the next frontend moves frames.
 *
 * Each test runs a `zcnic device --port reflect` child and a frontend of ours (FrontendSession,
 * SplitRingDriver): valid frames first, then chains whose buffers lie beyond the cut (read on
 * the transmitq, written on the receiveq), published only after the memfd was truncated.
 */
import { ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { FrontendSession } from 'vfio-user-ts/vhost-user-frontend';
import { openSession } from '../../fuzz/connect.js';
import { ZcnicDevice } from '../../harness/device-process.js';
import { scratchFolderPerTest, until } from '../support/integration.js';
import { SplitRingDriver } from '../support/vhost/split-ring-driver.js';

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;
const MEMORY = 0x100000;
/** What the frontend keeps of its memfd: the rings and the first phase's buffers. */
const KEPT = 0x40000;
/** Where the buffers beyond the cut start (offset in the region). */
const BEYOND = 0x80000;
const HEADER = 12; // VERSION_1
const FRAME = 60;
const RX_BUFFER = 2048;

interface Pair {
  readonly rx: SplitRingDriver;
  readonly tx: SplitRingDriver;
}

/** A 60-byte frame (with its virtio-net header) marked with `n`. */
function frame(n: number): Uint8Array {
  const bytes = new Uint8Array(HEADER + FRAME);
  bytes.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x88, 0xb5], HEADER);
  for (let i = HEADER + 14; i < bytes.length; i++) bytes[i] = (n * 31 + i) & 0xff;
  return bytes;
}

function pairsOf(session: FrontendSession, pairs: number): Pair[] {
  return Array.from({ length: pairs }, (_, p) => ({ rx: new SplitRingDriver(session, 2 * p), tx: new SplitRingDriver(session, 2 * p + 1) }));
}

/** Posts `count` receive buffers and `count` frames on a pair, wherever the memory's allocator is. */
function post(session: FrontendSession, pair: Pair, count: number): void {
  for (let i = 0; i < count; i++) {
    pair.rx.addChain([{ gpa: session.memory.alloc(RX_BUFFER), length: RX_BUFFER, writable: true }]);
    const bytes = frame(i);
    pair.tx.addChain([{ gpa: pair.tx.place(bytes), length: bytes.length }]);
  }
}

function kick(session: FrontendSession, pair: Pair): void {
  pair.rx.publish();
  pair.tx.publish();
  session.kick(pair.rx.queue.index);
  session.kick(pair.tx.queue.index);
}

/** Valid traffic: `count` frames out on every pair and reflected back, all completed. */
async function moveFrames(session: FrontendSession, pairs: readonly Pair[], count: number): Promise<void> {
  for (const pair of pairs) {
    const [rxBefore, txBefore] = [pair.rx.usedIdx(), pair.tx.usedIdx()];
    post(session, pair, count);
    kick(session, pair);
    await until(
      async () => [pair.rx.usedIdx() - rxBefore, pair.tx.usedIdx() - txBefore],
      ([rx, tx]) => rx === count && tx === count,
      `${count} frames out and back on queue pair ${pair.rx.queue.index / 2}`,
      5000,
    );
  }
}

async function startDevice(scratch: string, extraArgs: string[] = []): Promise<{ zc: ZcnicDevice; log: string[]; socket: string }> {
  const socket = join(scratch, 'vhost.sock');
  const log: string[] = [];
  const zc = await ZcnicDevice.start({ entry, socket, port: 'reflect', extraArgs, onOutput: (line, stream) => void (stream === 'stderr' && log.push(line)) });
  return { zc, log, socket };
}

const openFrontend = (socket: string, pairs: number): Promise<FrontendSession> => openSession({ socketPath: socket, memoryBytes: MEMORY, queues: 2 * pairs, queueSize: 256 });

/** The device must have survived, counted one truncation, said so in one line, and let go of the frontend. */
async function assertSurvived(zc: ZcnicDevice, log: readonly string[], session: FrontendSession, where: RegExp): Promise<void> {
  const death = zc.exitPromiseForRun();
  const closed = await Promise.race([session.client.closed.then(() => true), pause(5000).then(() => false)]);
  // A device that died closed the socket too; its exit is reaped a moment later.
  const died = await Promise.race([death, pause(300).then(() => null)]);
  assert.is(died, null, `the device process survives the truncation\n${zc.lastOutput()}`);
  assert.ok(closed, 'the device disconnected the frontend that truncated its memory');
  // The device handles the disconnect (a reset) after the frontend saw its socket close.
  const stats = await until(() => zc.stats(), (s) => s.errors['guestMemoryTruncated'] === 1 && !s.needsReset, 'errors.guestMemoryTruncated 1, and the disconnect\'s reset');
  const lines = log.filter((l) => l.includes('guestMemoryTruncated'));
  assert.is(lines.length, 1, `one log line:\n${log.join('\n')}`);
  assert.match(lines[0]!, `its page at offset 0x${BEYOND.toString(16)} is beyond the end of its file`);
  assert.match(lines[0]!, where);
  assert.match(lines[0]!, 'device needs reset');
  const disconnects = Object.entries(stats.protocolErrors).filter(([k]) => k.includes('guestMemoryTruncated'));
  assert.is(disconnects.length, 1, JSON.stringify(stats.protocolErrors));
  assert.is(disconnects[0]![1], 1, 'the disconnect counted once');
}

/** A fresh frontend after the truncating one: frames out and back on every pair, no error. */
async function assertNextFrontendWorks(zc: ZcnicDevice, socket: string, pairs: number): Promise<void> {
  const before = await zc.stats();
  const session = await openFrontend(socket, pairs);
  try {
    await moveFrames(session, pairsOf(session, pairs), 32);
  } finally {
    session.close();
  }
  const after = await until(() => zc.stats(), (s) => s.receiveq.frames - before.receiveq.frames === 32 * pairs, 'the next frontend\'s frames counted');
  assert.is(after.transmitq.frames - before.transmitq.frames, 32 * pairs);
  assert.equal(after.errors, before.errors, 'no error counted for it');
  assert.is(after.needsReset, false);
}

const truncation = suite('guest memory truncated under the device');
const scratch = scratchFolderPerTest(truncation, 'zcnic-it-truncate-');

truncation('transmitq: chains whose buffers lie beyond the cut are read as zeros, the queue stops, the frontend goes, the next one works', async () => {
  const { zc, log, socket } = await startDevice(scratch());
  const session = await openFrontend(socket, 1);
  try {
    const [pair] = pairsOf(session, 1) as [Pair];
    await moveFrames(session, [pair], 16);
    // Receive buffers for the reflected frames stay below the cut; the frames go above it.
    for (let i = 0; i < 16; i++) pair.rx.addChain([{ gpa: session.memory.alloc(RX_BUFFER), length: RX_BUFFER, writable: true }]);
    session.memory.alloc(0, BEYOND);
    for (let i = 0; i < 16; i++) pair.tx.addChain([{ gpa: pair.tx.place(frame(i)), length: HEADER + FRAME }]);
    ftruncateSync(session.memoryFd, KEPT);
    kick(session, pair);
    await assertSurvived(zc, log, session, /queue 1:/);
  } finally {
    session.close();
  }
  await assertNextFrontendWorks(zc, socket, 1);
});

truncation('receiveq: buffers beyond the cut are written into zero pages, the queue stops, the frontend goes, the next one works', async () => {
  const { zc, log, socket } = await startDevice(scratch());
  const session = await openFrontend(socket, 1);
  try {
    const [pair] = pairsOf(session, 1) as [Pair];
    await moveFrames(session, [pair], 16);
    // The frames stay below the cut; the buffers they are reflected into go above it.
    for (let i = 0; i < 16; i++) pair.tx.addChain([{ gpa: pair.tx.place(frame(i)), length: HEADER + FRAME }]);
    session.memory.alloc(0, BEYOND);
    for (let i = 0; i < 16; i++) pair.rx.addChain([{ gpa: session.memory.alloc(RX_BUFFER), length: RX_BUFFER, writable: true }]);
    ftruncateSync(session.memoryFd, KEPT);
    kick(session, pair);
    // The reflect port fills the receiveq while the transmit burst runs: either queue of the
    // pair may be the one running when the lost page is noticed.
    await assertSurvived(zc, log, session, /queue [01]:/);
  } finally {
    session.close();
  }
  await assertNextFrontendWorks(zc, socket, 1);
});

truncation('two workers, each with its own mapping: the truncation on pair 1 takes the frontend down once, then both pairs work', async () => {
  const { zc, log, socket } = await startDevice(scratch(), ['--queues', '2', '--workers', '2']);
  const session = await openFrontend(socket, 2);
  try {
    const pairs = pairsOf(session, 2);
    await moveFrames(session, pairs, 8);
    const pair = pairs[1]!;
    for (let i = 0; i < 8; i++) pair.rx.addChain([{ gpa: session.memory.alloc(RX_BUFFER), length: RX_BUFFER, writable: true }]);
    session.memory.alloc(0, BEYOND);
    for (let i = 0; i < 8; i++) pair.tx.addChain([{ gpa: pair.tx.place(frame(i)), length: HEADER + FRAME }]);
    ftruncateSync(session.memoryFd, KEPT);
    kick(session, pair);
    await assertSurvived(zc, log, session, /queue 3:/);
  } finally {
    session.close();
  }
  await assertNextFrontendWorks(zc, socket, 2);
});

truncation.run();
