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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HeaderFlags, inflightQueueBytes, ProtocolFeature, Request, sys, VERSION, VhostUserClient } from 'vfio-user-ts';
import { parseMac, writeTestFrame } from '../../device/test-frame.js';
import { ZcnicDevice } from '../../harness/device-process.js';
import { launchQemu } from '../../harness/qemu.js';
import { buildImage } from '../../images/build.js';

const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;

const TOTAL = Number(process.env['RESTART_TEST_FRAMES'] ?? 200_000);
const KILLS_AT = [0.2, 0.45, 0.7].map((f) => Math.floor(f * TOTAL));
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
const VERSION_1 = 2 ** 32;
const PROTOCOL_FEATURES = 2 ** 30;
const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('52:54:00:00:00:01'), srcIp: 0x0a000001, dstIp: 0x0a000002 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Sender {
  readonly fd = sys.memfdCreate('zcnic-restart-guest', MEMORY);
  readonly view = new DataView(sys.mapShared(this.fd, 0, MEMORY));
  readonly kick = sys.eventfdCreate(0, true);
  readonly call = sys.eventfdCreate(0, true);
  inflightFd = -1;
  inflightSize = 0;
  private inflightMarks: Uint8Array | null = null;
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
    assert.ok(Math.floor(offered / PROTOCOL_FEATURES) % 2 === 1);
    const protocol = await client.getProtocolFeatures();
    assert.is(Math.floor(protocol / 2 ** ProtocolFeature.inflightShmfd) % 2, 1, 'INFLIGHT_SHMFD offered');
    await client.setProtocolFeatures(2 ** ProtocolFeature.replyAck + 2 ** ProtocolFeature.mq + 2 ** ProtocolFeature.inflightShmfd);
    const ack = { needReply: true };
    await client.setOwner(ack);
    await client.setFeatures(VERSION_1 + PROTOCOL_FEATURES, ack);
    await client.setMemTable([{ guestPhysAddr: GPA, size: MEMORY, userAddr: USER, mmapOffset: 0, fd: this.fd }], ack);
    if (this.inflightFd < 0) {
      client.sendRaw(Request.getInflightFd, VERSION, inflightPayload(0, 2, SIZE));
      const reply = await client.expectReply();
      assert.is(reply.fds.length, 1, 'GET_INFLIGHT_FD came with the region');
      this.inflightFd = reply.fds[0]!;
      this.inflightSize = new DataView(reply.payload.buffer, reply.payload.byteOffset).getUint32(0, true);
      assert.is(this.inflightSize, 2 * inflightQueueBytes(SIZE));
    }
    client.sendRaw(Request.setInflightFd, VERSION | HeaderFlags.needReply, inflightPayload(this.inflightSize, 2, SIZE), [this.inflightFd]);
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
    this.inflightMarks ??= new Uint8Array(sys.mapShared(this.inflightFd, 0, this.inflightSize));
    const marks = this.inflightMarks;
    const at = inflightQueueBytes(SIZE) * TXQ + 16;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      for (let head = 0; head < SIZE; head++) if (marks[at + 16 * head] !== 0) return true;
    }
    return false;
  }

  close(): void {
    this.client?.close();
    for (const fd of [this.kick, this.call, this.fd, this.inflightFd]) if (fd >= 0) sys.close(fd);
    if (this.inflightMarks) sys.unmap(this.inflightMarks.buffer as ArrayBuffer);
    sys.unmap(this.view.buffer as ArrayBuffer);
  }
}

function inflightPayload(mmapSize: number, queues: number, queueSize: number): Uint8Array {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, mmapSize, true);
  view.setUint16(16, queues, true);
  view.setUint16(18, queueSize, true);
  return bytes;
}

test('SIGKILL three times in the middle of traffic: every frame completed once, verified, none twice', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-it-restart-'));
  const socket = join(dir, 'vhost.sock');
  const log: string[] = [];
  const sender = new Sender();
  const state = join(dir, 'device.state');
  const start = () => ZcnicDevice.start({ entry, socket, port: 'sink', verify: true, extraArgs: ['--state', state], onOutput: (line) => log.push(line) });
  const started = Date.now();
  try {
    let device = await start();
    await sender.connect(socket, 0);
    const bases = [(s: Sender) => s.usedSeen, (s: Sender) => s.availIdx, () => 0];
    let kills = 0;
    const deadline = Date.now() + 50_000;
    while (sender.completed < TOTAL) {
      if (Date.now() > deadline) throw new Error(`stuck: ${sender.completed} of ${TOTAL} completed, ${kills} kills`);
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
    const v = stats.verification as { verified: number; corrupt: number; duplicates: number; outOfOrder: number; gaps: number };
    const recoveries = log.filter((line) => /inflightRecovery|stateRestored|stateFresh|^kill/.test(line));
    const summary = `${TOTAL} frames, ${kills} SIGKILLs, ${((Date.now() - started) / 1000).toFixed(1)} s; last incarnation: ${JSON.stringify(v)}; recoveries:\n  ${recoveries.join('\n  ')}`;
    console.log(summary);
    assert.is(kills, 3);
    assert.is(sender.strayCompletions, 0, 'no head was returned twice');
    const twice = sender.completions.findIndex((c) => c > 1);
    const never = sender.completions.findIndex((c) => c === 0);
    assert.is(twice, -1, `seq ${twice} completed twice`);
    assert.is(never, -1, `seq ${never} never completed`);
    assert.is(v.duplicates, 0, summary);
    assert.is(v.corrupt, 0, summary);
    assert.is(v.outOfOrder, 0, summary);
    // The counts are committed with each burst and continued by the next process (--state).
    assert.is(v.verified, TOTAL, summary);
    assert.is(v.gaps, 0, summary);
    assert.is((stats.transmitq as { frames: number }).frames, TOTAL, summary);
    assert.is(log.filter((line) => /stateRestored/.test(line)).length, 3, summary);
    assert.is(recoveries.filter((line) => /inflightRecovery/.test(line)).length, 3, `each restarted device reported resuming from the inflight region:\n${log.join('\n')}`);
  } finally {
    sender.close();
    await ZcnicDevice.closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The same with QEMU: a guest sends numbered test frames continuously (guest/suites/stream.sh);
 * QEMU reconnects (`reconnect=1`) to each new device. QEMU 7.2 keeps no inflight region for a
 * vhost-user NIC; when the backend dies it resumes the ring from used.idx itself, and while the
 * backend is gone and the link down it completes (drops) transmit chains itself: the device
 * reports those as completedElsewhere when it continues from its state file.
 */
const STREAM_FRAMES = Number(process.env['RESTART_TEST_GUEST_FRAMES'] ?? 2_000_000);

/** The guest died of QEMU 7.2's multi-threaded TCG int3 fault (see cli/run-command.ts), not of the test. */
class EmulatorFault extends Error {}

test('QEMU reconnects to a device killed three times; the counts reconcile with the guest', async () => {
  try {
    await qemuRestartAttempt();
  } catch (error) {
    if (!(error instanceof EmulatorFault)) throw error;
    console.log(`${error.message}: running the attempt once more`);
    await qemuRestartAttempt();
  }
});

async function qemuRestartAttempt(): Promise<void> {
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
    smp: 2,
    memMiB: 512,
    vhostUserSocket: socket,
    vhostUserReconnect: 1,
    // Nobody reads the KTAP port: after 10 s the guest writes KTAP on the console.
    ktapPath: join(dir, 'ktap.sock'),
    ktapChardev: 'socket',
    consoleLog,
    suite: 'stream',
    testTimeoutSec: 60,
    appendCmdline: `zcnic.stream_frames=${STREAM_FRAMES}`,
  });
  const started = Date.now();
  try {
    const frames = async (): Promise<number> => ((await device.stats()).transmitq as { frames: number }).frames;
    while ((await frames()) === 0) {
      if (Date.now() - started > 40_000) throw new Error(`the guest sent nothing in 40 s:\n${readFileSync(consoleLog, 'utf8')}`);
      await sleep(100);
    }
    const atRestart: number[] = [];
    for (let kill = 0; kill < 3; kill++) {
      await sleep(2000);
      process.kill(device.pid, 'SIGKILL');
      await device.close();
      device = await start();
      // The link comes back by itself: QEMU reconnects, the device continues from its state
      // file, and the guest's frames flow again.
      const deadline = Date.now() + 10_000;
      while (log.filter((line) => /stateRestored|stateFresh/.test(line)).length < kill + 2) {
        if (Date.now() > deadline) throw new Error(`QEMU did not reconnect after kill ${kill + 1}:\n${log.join('\n')}`);
        await sleep(50);
      }
      const restored = await frames();
      atRestart.push(restored);
      while ((await frames()) <= restored) {
        if (Date.now() > deadline) throw new Error(`no frame after restart ${kill + 1}:\n${log.join('\n')}`);
        await sleep(50);
      }
    }
    const exit = await Promise.race([qemu, sleep(40_000).then(() => null)]);
    assert.ok(exit !== null, 'the guest finished its stream and powered off');
    const stats = await device.stats();
    const v = stats.verification as { verified: number; corrupt: number; duplicates: number; outOfOrder: number; gaps: number };
    const guest = readFileSync(consoleLog, 'utf8');
    const metric = (name: string): number => Number(new RegExp(`zcnic-metric ${name}=(\\d+)`).exec(guest)?.[1] ?? NaN);
    const sent = metric('frames_sent');
    const txPackets = metric('tx_packets_delta');
    const txDropped = metric('tx_dropped_delta');
    const elsewhere = log.map((line) => /completedElsewhere=(\d+)/.exec(line)).reduce((sum, m) => sum + (m ? Number(m[1]) : 0), 0);
    const summary =
      `QEMU guest: sent ${sent}, tx_packets ${txPackets}, tx_dropped ${txDropped} (link down), neither ${sent - txPackets - txDropped}; ` +
      `device after 3 SIGKILLs: ${JSON.stringify(v)}, completedElsewhere ${elsewhere}, frames at each restart ${atRestart.join(', ')}; ${((Date.now() - started) / 1000).toFixed(1)} s`;
    console.log(summary);
    if (Number.isNaN(sent) && guest.includes('Oops: int3')) throw new EmulatorFault('the guest oopsed in int3 under multi-threaded TCG');
    assert.is(sent, STREAM_FRAMES, Number.isNaN(sent) ? `${summary}\nthe guest printed no stream metrics; its console ended with:\n${guest.split('\n').slice(-30).join('\n')}` : summary);
    assert.is(v.duplicates, 0, summary);
    assert.is(v.corrupt, 0, summary);
    assert.is(v.outOfOrder, 0, summary);
    // Every chain the guest's driver completed was verified by one of the devices, or completed
    // by QEMU while none was there: exactly, none twice.
    assert.is(v.verified + elsewhere, txPackets, summary);
    // Every sequence number up to the last is verified or missing (a gap): the missing are the
    // frames QEMU dropped and those the guest dropped while its link was down.
    assert.is(v.verified + v.gaps, sent, summary);
    assert.is(log.filter((line) => /stateRestored/.test(line)).length, 3, summary);
  } finally {
    if (qemu.pid !== undefined && qemu.exitCode === null) process.kill(qemu.pid, 'SIGKILL');
    await qemu.catch(() => undefined);
    await ZcnicDevice.closeAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Once in a while (seen in a clean-clone `make test`, not reproduced alone) something of the
// killed incarnations keeps this process alive after the tests. Until that is found, say what
// is still open and end the file's process, keeping uvu's verdict, instead of hanging CI.
test.after(() => {
  setTimeout(() => {
    const open = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().map((h) => h.constructor.name);
    process.stderr.write(`restart.test: still alive 5 s after the tests; open JS handles: ${open.join(', ') || 'none (so a native fd watcher of the addon)'}\n`);
    process.exit(process.exitCode ?? 0);
  }, 5000).unref();
});

test.run();
