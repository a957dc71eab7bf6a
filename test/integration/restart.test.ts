/**
 * Restart without loss, at the ring level: a frontend of our own (it keeps guest memory and the
 * INFLIGHT_SHMFD region across backend restarts, as QEMU does for the devices that use inflight
 * tracking) sends sequence-numbered test frames continuously to a `zcnic device --verify`; the
 * device is killed with SIGKILL three times in the middle of the traffic and started again on
 * the same socket. Each time the frontend reconnects, hands the inflight region back and gives
 * a different SET_VRING_BASE (used.idx like QEMU, avail.idx, 0): the device resumes from the
 * inflight region, so every frame is completed exactly once whatever base it was given.
 *
 * Checked: every sequence number was completed exactly once (no head returned twice, none
 * lost); with `--state` (counts committed with each burst, continued by the next process) the
 * last device's totals are those of the whole run: every frame sent verified, byte for byte,
 * none twice, none missing, none corrupt or out of order.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FeatureBit, featureMask, hasFeature, HeaderFlags, InflightMessage, inflightMessage, inflightQueueBytes, PROTOCOL_FEATURES_BIT, ProtocolFeature, Request, sys, VERSION } from 'vfio-user-ts';
import { VhostUserClient } from 'vfio-user-ts/vhost-user-frontend';
import { FAULT_UNCOUNTED_VERIFIED_FRAME } from '../../device/datapath/datapath.js';
import { parseMac, writeTestFrame } from '../../device/test-frame.js';
import type { DeviceStats } from '../../harness/device-control.js';
import { ZcnicDevice } from '../../harness/device-process.js';
import { launchQemu } from '../../harness/qemu.js';
import { buildImage } from '../../images/build.js';
import { inflightMark } from '../support/inflight-region.js';

const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;

const TOTAL = Number(process.env['RESTART_TEST_FRAMES'] ?? 200_000);
const KILLS_AT = [0.2, 0.45, 0.7].map((f) => Math.floor(f * TOTAL));
/** The verdict of every wait: nothing (frames completed, or the guest's console) moved for this long. */
const STALL_MS = 20_000;
const SIZE = 256;
const TXQ = 1;
const HEADER = 12;
/** Large frames: verifying a burst of them takes long enough for a kill to land inside it. */
const FRAME = 1500;
const SLOT = 2048;
const GPA = 0x100000;
const USER = 0x7f0000000000;
const MEMORY = 1 << 20;
const DESC = 0;
const AVAIL = 0x1000;
const USED = 0x2000;
const BUFFERS = 0x4000;
const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('52:54:00:00:00:01'), srcIp: 0x0a000001, dstIp: 0x0a000002 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Sender {
  readonly fd = sys.memfdCreate('zcnic-restart-guest', MEMORY);
  readonly view = new DataView(sys.mapShared(this.fd, 0, MEMORY));
  readonly kick = sys.eventfdCreate(0, true);
  readonly call = sys.eventfdCreate(0, true);
  inflightFd = -1;
  inflightSize = 0;
  private inflightRegion: ArrayBuffer | null = null;
  /** Per head: the seq it carries while outstanding, -1 when free. */
  readonly outstanding = new Float64Array(SIZE).fill(-1);
  readonly free: number[] = Array.from({ length: SIZE }, (_, i) => SIZE - 1 - i);
  /** Completions per sequence number. */
  readonly completions = new Uint8Array(TOTAL);
  availIdx = 0;
  usedSeen = 0;
  nextSeq = 0;
  completed = 0;
  /** Used elements naming a head that was not outstanding (a head returned twice). */
  strayCompletions = 0;
  client: VhostUserClient | null = null;

  reclaim(): void {
    const used = this.view.getUint16(USED + 2, true);
    while (this.usedSeen !== used) {
      const id = this.view.getUint32(USED + 4 + 8 * (this.usedSeen % SIZE), true);
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
      const seq = id < SIZE ? this.outstanding[id]! : -1;
      if (seq < 0) {
        this.strayCompletions++;
        continue;
      }
      this.completions[seq]!++;
      this.completed++;
      this.outstanding[id] = -1;
      this.free.push(id);
    }
  }

  fill(): void {
    let added = 0;
    while (this.free.length > 0 && this.nextSeq < TOTAL) {
      const head = this.free.pop()!;
      const buffer = BUFFERS + SLOT * head;
      for (let i = 0; i < HEADER; i++) this.view.setUint8(buffer + i, 0);
      writeTestFrame(this.view, buffer + HEADER, FRAME, addresses, 0, this.nextSeq);
      const d = DESC + 16 * head;
      this.view.setUint32(d, GPA + buffer, true);
      this.view.setUint32(d + 4, 0, true);
      this.view.setUint32(d + 8, HEADER + FRAME, true);
      this.view.setUint16(d + 12, 0, true);
      this.view.setUint16(d + 14, 0, true);
      this.view.setUint16(AVAIL + 4 + 2 * (this.availIdx % SIZE), head, true);
      this.outstanding[head] = this.nextSeq++;
      this.availIdx = (this.availIdx + 1) & 0xffff;
      added++;
    }
    if (added > 0) {
      this.view.setUint16(AVAIL + 2, this.availIdx, true);
      if (this.client && !this.client.isClosed) sys.eventfdWrite(this.kick, 1);
    }
  }

  /** Connects to the device and sets up the transmitq; `base` is what SET_VRING_BASE says. */
  async connect(socket: string, base: number): Promise<void> {
    const client = await VhostUserClient.connect(socket, { replyTimeoutMs: 5000 });
    this.client = client;
    const offered = await client.getFeatures();
    assert.ok(hasFeature(offered, PROTOCOL_FEATURES_BIT));
    const protocol = await client.getProtocolFeatures();
    assert.ok(hasFeature(protocol, ProtocolFeature.inflightShmfd), 'INFLIGHT_SHMFD offered');
    await client.setProtocolFeatures(featureMask(ProtocolFeature.replyAck, ProtocolFeature.mq, ProtocolFeature.inflightShmfd));
    const ack = { needReply: true };
    await client.setOwner(ack);
    await client.setFeatures(featureMask(FeatureBit.version1, PROTOCOL_FEATURES_BIT), ack);
    await client.setMemTable([{ guestPhysAddr: GPA, size: MEMORY, userAddr: USER, mmapOffset: 0, fd: this.fd }], ack);
    if (this.inflightFd < 0) {
      client.sendRaw(Request.getInflightFd, VERSION, inflightMessage({ mmapSize: 0, mmapOffset: 0, queues: 2, queueSize: SIZE }));
      const reply = await client.expectReply();
      assert.is(reply.fds.length, 1, 'GET_INFLIGHT_FD came with the region');
      this.inflightFd = reply.fds[0]!;
      this.inflightSize = Number(new DataView(reply.payload.buffer, reply.payload.byteOffset).getBigUint64(InflightMessage.mmapSize, true));
      assert.is(this.inflightSize, 2 * inflightQueueBytes(SIZE));
    }
    client.sendRaw(Request.setInflightFd, VERSION | HeaderFlags.needReply, inflightMessage({ mmapSize: this.inflightSize, mmapOffset: 0, queues: 2, queueSize: SIZE }), [this.inflightFd]);
    const answer = await client.expectReply();
    assert.is(new DataView(answer.payload.buffer, answer.payload.byteOffset).getUint32(0, true), 0, 'SET_INFLIGHT_FD accepted');
    await client.setVringNum(TXQ, SIZE, ack);
    await client.setVringBase(TXQ, base, ack);
    await client.setVringAddr(TXQ, { desc: USER + DESC, avail: USER + AVAIL, used: USER + USED }, ack);
    await client.setVringKick(TXQ, this.kick, ack);
    await client.setVringCall(TXQ, this.call, ack);
    await client.setVringEnable(TXQ, true, ack);
    sys.eventfdWrite(this.kick, 1);
  }

  /** Spins until the inflight region shows a head taken and not completed, or `ms` pass. */
  waitForInflight(ms: number): boolean {
    this.inflightRegion ??= sys.mapShared(this.inflightFd, 0, this.inflightSize);
    const txArea = { buffer: this.inflightRegion, offset: inflightQueueBytes(SIZE) * TXQ };
    const until = performance.now() + ms;
    while (performance.now() < until) {
      for (let head = 0; head < SIZE; head++) if (inflightMark(txArea, head) !== 0) return true;
    }
    return false;
  }

  close(): void {
    this.client?.close();
    for (const fd of [this.kick, this.call, this.fd, this.inflightFd]) if (fd >= 0) sys.close(fd);
    if (this.inflightRegion) sys.unmap(this.inflightRegion);
    sys.unmap(this.view.buffer as ArrayBuffer);
  }
}

interface RingRun {
  readonly sender: Sender;
  readonly kills: number;
  readonly stats: DeviceStats;
  readonly v: DeviceStats['verification'];
  readonly log: readonly string[];
  readonly summary: string;
}

/**
 * Sends TOTAL frames through devices killed at KILLS_AT; `faultyDevice` (0 = the first) is
 * started with the injected fault FAULT_UNCOUNTED_VERIFIED_FRAME (datapath.ts), or none.
 */
async function ringRestartRun(faultyDevice: number | null): Promise<RingRun> {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-it-restart-'));
  const socket = join(dir, 'vhost.sock');
  const log: string[] = [];
  const sender = new Sender();
  const state = join(dir, 'device.state');
  let incarnation = 0;
  const start = async (): Promise<ZcnicDevice> => {
    // The device process (and its datapath worker) takes the environment at its start.
    if (incarnation++ === faultyDevice) process.env[FAULT_UNCOUNTED_VERIFIED_FRAME] = '1';
    try {
      return await ZcnicDevice.start({ entry, socket, port: 'sink', verify: true, extraArgs: ['--state', state], onOutput: (line) => log.push(line) });
    } finally {
      delete process.env[FAULT_UNCOUNTED_VERIFIED_FRAME];
    }
  };
  const started = Date.now();
  try {
    let device = await start();
    await sender.connect(socket, 0);
    const bases = [(s: Sender) => s.usedSeen, (s: Sender) => s.availIdx, () => 0];
    let kills = 0;
    let completedBefore = 0;
    let movedAt = Date.now();
    while (sender.completed < TOTAL) {
      if (sender.completed !== completedBefore) {
        completedBefore = sender.completed;
        movedAt = Date.now();
      } else if (Date.now() - movedAt > STALL_MS) {
        throw new Error(`stuck: ${sender.completed} of ${TOTAL} completed, none for ${STALL_MS / 1000} s, ${kills} kills`);
      }
      sender.reclaim();
      sender.fill();
      if (kills < KILLS_AT.length && sender.completed >= KILLS_AT[kills]!) {
        // In the middle of traffic: the ring was just refilled and kicked; as soon as the
        // inflight region shows the device has taken heads it has not completed, it dies.
        sender.reclaim();
        sender.fill();
        const seen = sender.waitForInflight(50);
        log.push(`kill ${kills}: inflight seen ${seen}, used ${sender.view.getUint16(USED + 2, true)}, avail ${sender.availIdx}`);
        process.kill(device.pid, 'SIGKILL');
        await sender.client!.closed;
        await device.close();
        sender.reclaim();
        sender.fill();
        device = await start();
        await sender.connect(socket, bases[kills]!(sender));
        kills++;
      }
      await sleep(1);
    }
    const stats = await device.stats();
    const v = stats.verification;
    const recoveries = log.filter((line) => /inflightRecovery|stateRestored|stateFresh|^kill/.test(line));
    const summary = `${TOTAL} frames, ${kills} SIGKILLs, ${((Date.now() - started) / 1000).toFixed(1)} s; last incarnation: ${JSON.stringify(v)}; recoveries:\n  ${recoveries.join('\n  ')}`;
    console.log(summary);
    return { sender, kills, stats, v, log, summary };
  } finally {
    sender.close();
    await ZcnicDevice.closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The counts of the last device against the frontend's: each line is one that does not balance. */
function ringMismatches(run: RingRun): string[] {
  const found: string[] = [];
  const frames = run.stats.transmitq.frames;
  if (run.v.verified !== TOTAL) found.push(`verified ${run.v.verified}, the frontend had ${TOTAL} completed`);
  if (frames !== TOTAL) found.push(`transmitq.frames ${frames}, the frontend had ${TOTAL} completed`);
  if (run.v.gaps !== 0) found.push(`${run.v.gaps} gaps`);
  return found;
}

test('SIGKILL three times in the middle of traffic: every frame completed once, verified, none twice', async () => {
  const run = await ringRestartRun(null);
  const { sender, v, summary, log } = run;
  assert.is(run.kills, 3);
  assert.is(sender.strayCompletions, 0, 'no head was returned twice');
  const twice = sender.completions.findIndex((c) => c > 1);
  const never = sender.completions.findIndex((c) => c === 0);
  assert.is(twice, -1, `seq ${twice} completed twice`);
  assert.is(never, -1, `seq ${never} never completed`);
  assert.is(v.duplicates, 0, summary);
  assert.is(v.corrupt, 0, summary);
  assert.is(v.outOfOrder, 0, summary);
  // The counts are committed with each burst and continued by the next process (--state).
  assert.equal(ringMismatches(run), [], summary);
  assert.is(log.filter((line) => /stateRestored/.test(line)).length, 3, summary);
  assert.is(log.filter((line) => /inflightRecovery/.test(line)).length, 3, `each restarted device reported resuming from the inflight region:\n${log.join('\n')}`);
  // Every connection of the frontend ended (with its device, or closed): no fd watcher of the
  // addon is left running to keep this process alive after the tests.
  assert.is(sys.watcherCount(), 0, 'fd watchers still running in the test process');
});

test('negative control: a device that completes one verified frame without counting it fails the reconciliation', async () => {
  // The second device (after the first kill): the loss must travel through the state file.
  const run = await ringRestartRun(1);
  assert.is(run.kills, 3);
  assert.is(run.sender.completions.findIndex((c) => c !== 1), -1, 'the frontend still got every frame back exactly once');
  assert.equal(ringMismatches(run), [`verified ${TOTAL - 1}, the frontend had ${TOTAL} completed`, `transmitq.frames ${TOTAL - 1}, the frontend had ${TOTAL} completed`], run.summary);
});

/**
 * The same with QEMU: a guest sends numbered test frames continuously (guest/suites/stream.sh);
 * QEMU reconnects (`reconnect=1`) to each new device. QEMU 7.2 keeps no inflight region for a
 * vhost-user NIC; when the backend dies it resumes the ring from used.idx itself, and while the
 * backend is gone and the link down it completes (drops) transmit chains itself: the device
 * counts those as completedElsewhere (stats `txCompletedElsewhere`) from how far the ring's
 * used.idx moved past what the last device published.
 *
 * Every wait is on progress, not on the clock: the test keeps waiting while the device's frame
 * count or the guest's console moves, and fails, with the console's tail, once nothing has moved
 * for STALL_MS. The kills come after a share of the stream has reached each device.
 */
/**
 * Under TCG on the 2-core build machine the guest sends about 58,000 frames/s (frames' own
 * report, 300,000 frames in 5.1 s): a million frames take about 17 s of guest time.
 */
const STREAM_FRAMES = Number(process.env['RESTART_TEST_GUEST_FRAMES'] ?? 1_000_000);
/**
 * Each device is killed once this many frames more have reached it (about 1 s of traffic). While
 * the link is down the guest drops its frames itself, much faster than it sends them: 466,000 of
 * the million in a run here. So the kills come early enough that the stream is still running.
 */
const FRAMES_BEFORE_KILL = STREAM_FRAMES / 16;

test('QEMU reconnects to a device killed three times; the counts reconcile with the guest', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-it-restart-qemu-'));
  const socket = join(dir, 'vhost.sock');
  const consoleLog = join(dir, 'console.log');
  const log: string[] = [];
  const start = () =>
    ZcnicDevice.start({ entry, socket, port: 'sink', verify: true, extraArgs: ['--state', join(dir, 'device.state')], onOutput: (line) => log.push(line) });
  const image = await buildImage({ log: () => {} });
  let device = await start();
  const qemu = launchQemu({
    kernel: image.kernel,
    initramfs: image.initramfs,
    accel: 'tcg',
    // One vCPU: two TCG vCPUs now and then crash the guest (harness/run.ts guestCpus).
    smp: 1,
    memMiB: 512,
    vhostUserSocket: socket,
    vhostUserReconnect: 1,
    // Nobody opens the KTAP port: zcnic.ktap=console has the guest write KTAP on the console
    // at once instead of waiting for a reader.
    ktapPath: join(dir, 'ktap.sock'),
    ktapChardev: 'socket',
    consoleLog,
    suite: 'stream',
    // The guest's own per-test timeout only as a backstop: the verdict is the stall rule here.
    testTimeoutSec: 600,
    appendCmdline: `zcnic.ktap=console zcnic.stream_frames=${STREAM_FRAMES}`,
  });
  let qemuExited = false;
  void qemu.finally(() => (qemuExited = true));
  const started = Date.now();
  const guestConsole = (): string => (existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '');
  const consoleTail = (): string => {
    const text = guestConsole();
    const oops = text.includes('Oops: int3') ? ' (the guest oopsed in int3: QEMU 7.2\'s multi-threaded TCG fault; not retried)' : '';
    return `the guest's console${oops} ended with:\n${text.split('\n').slice(-30).join('\n')}`;
  };
  /** The frames the attached device has counted (-1 while its control socket does not answer). */
  const frames = async (): Promise<number> => {
    try {
      return (await device.stats()).transmitq.frames;
    } catch {
      return -1;
    }
  };
  /**
   * Waits until `done()` holds, for as long as the device's frame count or the guest's console
   * keeps moving; throws naming `what` once nothing has moved for STALL_MS.
   */
  const whileMoving = async (what: string, done: () => Promise<boolean> | boolean): Promise<void> => {
    let seen = '';
    let movedAt = Date.now();
    for (;;) {
      if (await done()) return;
      const now = `${await frames()} ${statSync(consoleLog, { throwIfNoEntry: false })?.size ?? 0}`;
      if (now !== seen) {
        seen = now;
        movedAt = Date.now();
      } else if (Date.now() - movedAt > STALL_MS) {
        throw new Error(`${what}: nothing moved for ${STALL_MS / 1000} s (device frames, console bytes: ${seen}); ${consoleTail()}\ndevice log:\n${log.slice(-20).join('\n')}`);
      }
      await sleep(200);
    }
  };
  try {
    const atRestart: number[] = [];
    let since = 0;
    for (let kill = 0; kill < 3; kill++) {
      await whileMoving(`waiting for ${FRAMES_BEFORE_KILL} frames to reach device ${kill + 1} (past ${since})`, async () => (await frames()) >= since + FRAMES_BEFORE_KILL);
      process.kill(device.pid, 'SIGKILL');
      await device.close();
      device = await start();
      // The link comes back by itself: QEMU reconnects, the device continues from its state
      // file, and the guest's frames flow again.
      await whileMoving(`waiting for QEMU to reconnect after kill ${kill + 1}`, () => log.filter((line) => /stateRestored|stateFresh/.test(line)).length >= kill + 2);
      since = await frames();
      atRestart.push(since);
    }
    await whileMoving('waiting for the guest to finish its stream and power off', () => qemuExited);
    const stats = await device.stats();
    const v = stats.verification;
    const elsewhere = stats.txCompletedElsewhere;
    const guest = guestConsole();
    const metric = (name: string): number => Number(new RegExp(`zcnic-metric ${name}=(\\d+)`).exec(guest)?.[1] ?? NaN);
    const sent = metric('frames_sent');
    // One frame numbered after the stream, sent once the link was up (guest/suites/stream.sh).
    const trailer = metric('trailer_sent');
    const txPackets = metric('tx_packets_delta');
    const txDropped = metric('tx_dropped_delta');
    const summary =
      `QEMU guest: sent ${sent} + trailer ${trailer}, tx_packets ${txPackets}, tx_dropped ${txDropped} (link down), neither ${sent + trailer - txPackets - txDropped}; ` +
      `device after 3 SIGKILLs: ${JSON.stringify(v)}, completedElsewhere ${elsewhere}, frames at each restart ${atRestart.join(', ')}; ${((Date.now() - started) / 1000).toFixed(1)} s`;
    console.log(summary);
    assert.is(sent, STREAM_FRAMES, Number.isNaN(sent) ? `${summary}\nthe guest printed no stream metrics; ${consoleTail()}` : summary);
    assert.is(trailer, 1, `${summary}\nthe trailer frame was not sent`);
    assert.is(v.duplicates, 0, summary);
    assert.is(v.corrupt, 0, summary);
    assert.is(v.outOfOrder, 0, summary);
    // Every chain the guest's driver completed was verified by one of the devices, or completed
    // by QEMU while none was attached (measured on the ring): exactly, none twice.
    assert.is(v.verified + elsewhere, txPackets, summary);
    // Every sequence number up to the trailer's is verified or missing (a gap): the missing are
    // the frames QEMU dropped and those the guest dropped while its link was down.
    assert.is(v.verified + v.gaps, sent + trailer, summary);
    assert.is(log.filter((line) => /stateRestored/.test(line)).length, 3, summary);
  } finally {
    if (qemu.pid !== undefined && qemu.exitCode === null) process.kill(qemu.pid, 'SIGKILL');
    await qemu.catch(() => undefined);
    await ZcnicDevice.closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
