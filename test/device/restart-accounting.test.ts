/**
 * The restart accounting of `--state`, end to end through the datapath: a device verifies test
 * frames and dies, the frontend completes chains itself while no device is attached (as QEMU
 * does for a vhost-user NIC whose backend is gone), and a new device continues from the state
 * file. completedElsewhere must be what the ring shows (used.idx moved while no device was
 * attached), and `verified + completedElsewhere` must equal the chains the driver got back.
 * The negative control: a device that completes one verified frame without counting it
 * (FAULT_UNCOUNTED_VERIFIED_FRAME) must make that reconciliation report a mismatch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FeatureBit, featureMask, sys } from 'vfio-user-ts';
import { createCounters, describeCounters } from '../../device/counters.js';
import { Datapath, FAULT_UNCOUNTED_VERIFIED_FRAME } from '../../device/datapath/datapath.js';
import type { FromDatapath } from '../../device/datapath/messages.js';
import type { PortOptions } from '../../device/ports/port.js';
import { parseMac, writeTestFrame } from '../../device/test-frame.js';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';

const FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringEventIdx);
const HEADER = 12;
const FRAME = 128;
const QUEUE_SIZE = 256;
const sink: PortOptions = { port: 'sink', gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56' };
const addresses = { dstMac: parseMac('52:54:00:12:34:56'), srcMac: parseMac('52:54:00:00:00:01'), srcIp: 0x0a000001, dstIp: 0x0a000002 };

function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(poll, 5));
    poll();
  });
}

/** A driver's transmitq whose chains carry numbered test frames of flow 0. */
class Sender {
  readonly guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 8 << 20 }]);
  readonly txq = new FakeQueue(this.guest, QUEUE_SIZE);
  readonly rxq = new FakeQueue(this.guest, QUEUE_SIZE);
  readonly kick = sys.eventfdCreate(0, true);
  readonly call = sys.eventfdCreate(0, true);
  private nextSeq = 0;
  private readonly frame = new DataView(new ArrayBuffer(FRAME));

  /** Makes `count` frames available (fewer than the queue size are outstanding at once). */
  post(count: number): void {
    for (let i = 0; i < count; i++) {
      writeTestFrame(this.frame, 0, FRAME, addresses, 0, this.nextSeq++);
      const data = new Uint8Array(this.frame.buffer.slice(0));
      this.txq.makeAvailable(this.txq.addChain([{ length: HEADER, data: new Uint8Array(HEADER) }, { length: FRAME, data }]));
    }
  }

  /** Posts `count` frames and completes them itself, as QEMU drops chains while no backend is attached. */
  completeItself(count: number): void {
    for (let i = 0; i < count; i++) {
      this.post(1);
      const used = this.txq.usedIdx();
      const head = this.guest.u16(this.txq.availAddr + 4 + 2 * (used % QUEUE_SIZE));
      const at = this.txq.usedAddr + 4 + 8 * (used % QUEUE_SIZE);
      this.guest.setU32(at, head);
      this.guest.setU32(at + 4, 0);
      this.guest.setU16(this.txq.usedAddr + 2, (used + 1) & 0xffff);
    }
  }

  close(): void {
    sys.close(this.kick);
    sys.close(this.call);
    this.guest.close();
  }
}

/** One device incarnation on the state file, started where the frontend resumes (used.idx). */
function startDevice(sender: Sender, statePath: string) {
  const counters = createCounters();
  const messages: FromDatapath[] = [];
  const datapath = new Datapath(
    { counters: counters.buffer as SharedArrayBuffer, pairs: [0], mode: 'kick', port: sink, pcapPath: null, verify: true, statePath },
    (m) => messages.push(m),
  );
  datapath.handle({ type: 'memory', regions: sender.guest.regions });
  const base = sender.txq.usedIdx();
  datapath.handle({ type: 'start', start: { queue: 1, addresses: sender.txq.addresses, base, kickFd: sender.kick, callFd: sender.call, features: FEATURES } });
  return {
    counters,
    messages,
    /** Makes `count` frames available, kicks, and waits until the device has completed them. */
    async send(count: number): Promise<void> {
      const target = (sender.txq.usedIdx() + count) & 0xffff;
      sender.post(count);
      sys.eventfdWrite(sender.kick, 1);
      await until(() => sender.txq.usedIdx() === target, `used.idx ${target}`);
    },
    /** A SIGKILL as far as the state file can tell: its commits and mark stay as they are. */
    kill(): void {
      datapath.handle({ type: 'shutdown' });
    },
  };
}

/**
 * Runs two incarnations with chains completed by the frontend in between and returns the last
 * device's counts and the driver's count of completed chains.
 */
async function restartRun(faultInFirstDevice: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-restart-accounting-'));
  const sender = new Sender();
  try {
    const statePath = join(dir, 'state');
    if (faultInFirstDevice) process.env[FAULT_UNCOUNTED_VERIFIED_FRAME] = '1';
    const first = startDevice(sender, statePath);
    delete process.env[FAULT_UNCOUNTED_VERIFIED_FRAME];
    // Two bursts, so the state file holds two commits when the device dies.
    await first.send(50);
    await first.send(50);
    first.kill();
    sender.completeItself(30);
    const second = startDevice(sender, statePath);
    await second.send(100);
    const stats = describeCounters(second.counters);
    second.kill();
    return { stats, completedToDriver: sender.txq.usedIdx(), sent: 230, log: second.messages };
  } finally {
    delete process.env[FAULT_UNCOUNTED_VERIFIED_FRAME];
    sender.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the restart tests reconcile; empty when everything balances. */
function mismatches(run: Awaited<ReturnType<typeof restartRun>>): string[] {
  const { verification: v, txCompletedElsewhere } = run.stats;
  const found: string[] = [];
  if (v.verified + txCompletedElsewhere !== run.completedToDriver) {
    found.push(`verified ${v.verified} + completedElsewhere ${txCompletedElsewhere} != ${run.completedToDriver} chains completed to the driver`);
  }
  if (v.verified + v.gaps !== run.sent) found.push(`verified ${v.verified} + gaps ${v.gaps} != ${run.sent} frames sent`);
  return found;
}

test('completedElsewhere is the used.idx movement while no device was attached, and the counts reconcile', async () => {
  const run = await restartRun(false);
  // The old accounting took the commit before the last published burst and counted that burst
  // (50 verified frames) as completed elsewhere too: 80 here, and 150 verified.
  assert.is(run.stats.txCompletedElsewhere, 30, JSON.stringify(run.log));
  assert.is(run.stats.verification.verified, 200);
  assert.is(run.stats.verification.gaps, 30, 'the 30 frames the frontend completed itself were never seen');
  assert.is(run.stats.transmitq.frames, 200);
  assert.equal(mismatches(run), []);
});

test('negative control: a verified frame completed without being counted makes the reconciliation fail', async () => {
  const run = await restartRun(true);
  assert.is(run.stats.verification.verified, 199, 'the fault struck once');
  assert.is(run.stats.txCompletedElsewhere, 30);
  assert.equal(mismatches(run), ['verified 199 + completedElsewhere 30 != 230 chains completed to the driver', 'verified 199 + gaps 30 != 230 frames sent']);
});

test.run();
