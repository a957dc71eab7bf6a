/**
 * Runs one ring case: a fresh frontend negotiates validly (FrontendSession), the case's rings
 * are written into its guest RAM, both queues are kicked, and the device's counters and used
 * rings are compared with what the rules say (ring-model.ts) once they settle. Then the frontend
 * disconnects, which resets the device for the next case.
 */
import { FrontendFeatureBit, type FrontendSession, type SessionQueue } from 'vfio-user-ts';
import { openSession } from './connect.js';
import {
  Bit,
  FEED_SLOT,
  FEED_SLOTS,
  feedSlotAddress,
  GUEST_BASE,
  headerLength,
  INDIRECT_SLOT,
  INDIRECT_SLOTS,
  indirectSlotAddress,
  MEMORY_BYTES,
  RECEIVEQ,
  TRANSMITQ,
} from './layout.js';
import type { Desc, RingGenome } from './ring-genome.js';
import { expectRings, type Expectation, type GuestView, type ModelRing } from './ring-model.js';
import { difference, snapshot, type Snapshot, type SnapshotDelta } from './snapshot.js';
import type { Target } from './target.js';

export interface RingRunOptions {
  /** The device runs the reflect port (receive cases need it). */
  readonly reflect: boolean;
  /** How long the device may take to reach the expected state (default 2000 ms). */
  readonly settleMs?: number;
  readonly replyTimeoutMs?: number;
}

export interface RingOutcome {
  readonly expected: Expectation;
  /** Counter changes the device reported (null without a control socket). */
  readonly actual: SnapshotDelta | null;
  readonly txUsed: number;
  readonly rxUsed: number;
  /** Every way the device differed from the rules; empty when it behaved. */
  readonly mismatches: string[];
  /** Error kinds the device counted in this case, prefixed by queue side. */
  readonly kinds: string[];
}

const mask = (...bits: number[]): number => bits.reduce((sum, bit) => sum + 2 ** bit, 0);

/** The virtio features a genome asks for (the session adds the vhost-user protocol bit). */
export function genomeFeatures(g: RingGenome): number {
  const bits: number[] = [Bit.eventIdx];
  if (g.version1) bits.push(Bit.version1);
  if (g.mergeable) bits.push(Bit.mrgRxbuf);
  if (g.indirect) bits.push(Bit.indirect);
  return mask(...bits);
}

function hasBit(word: number, bit: number): boolean {
  return Math.floor(word / 2 ** bit) % 2 === 1;
}

function ringOf(queue: SessionQueue): ModelRing {
  return { size: queue.size, descGpa: queue.descGpa, availGpa: queue.availGpa, usedGpa: queue.usedGpa };
}

/** Whether `size` is a queue size FrontendSession accepts. */
export function validQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= 32768 && (size & (size - 1)) === 0;
}

/** Feed frames longer than a feed slot are cut to fit (the genome may say anything). */
export function feedLength(length: number, header: number): number {
  return Math.max(0, Math.min(Math.floor(length), FEED_SLOT - header));
}

/** Writes the genome (and, for a receive case, the transmitq frames that feed it). */
export function writeCase(session: FrontendSession, g: RingGenome): void {
  const memory = session.memory;
  const view = memory.view;
  const writeDesc = (gpa: number, d: Desc): void => {
    const at = memory.gpaToOffset(gpa, 16);
    view.setUint32(at, d.addrLo >>> 0, true);
    view.setUint32(at + 4, d.addrHi >>> 0, true);
    view.setUint32(at + 8, d.len >>> 0, true);
    view.setUint16(at + 12, d.flags & 0xffff, true);
    view.setUint16(at + 14, d.next & 0xffff, true);
  };
  const hostile = session.queue(g.side === 'tx' ? TRANSMITQ : RECEIVEQ);
  g.tables.slice(0, INDIRECT_SLOTS).forEach((table, slot) => {
    table.slice(0, INDIRECT_SLOT / 16).forEach((d, i) => writeDesc(indirectSlotAddress(slot) + 16 * i, d));
  });
  for (const [index, d] of g.table) if (Number.isInteger(index) && index >= 0 && index < hostile.size) writeDesc(hostile.descGpa + 16 * index, d);
  const publish = (queue: SessionQueue, heads: readonly number[], availIdx: number): void => {
    const avail = memory.gpaToOffset(queue.availGpa, 4 + 2 * queue.size);
    heads.forEach((head, i) => view.setUint16(avail + 4 + 2 * (i % queue.size), head & 0xffff, true));
    // avail.idx last, as one atomic store: the device may be looking already.
    Atomics.store(new Uint16Array(memory.bytes.buffer, memory.bytes.byteOffset + avail, 2), 1, availIdx & 0xffff);
  };
  if (g.side === 'rx') {
    // The transmitq carries valid frames (header + frame in one buffer), one per feed entry.
    const tx = session.queue(TRANSMITQ);
    const header = headerLength(hasBit(session.features, Bit.version1), hasBit(session.features, Bit.mrgRxbuf));
    const feed = g.feed.slice(0, Math.min(FEED_SLOTS, tx.size));
    feed.forEach((length, i) => writeDesc(tx.descGpa + 16 * i, { addrLo: feedSlotAddress(i), addrHi: 0, len: header + feedLength(length, header), flags: 0, next: 0 }));
    publish(hostile, g.heads, g.availIdx ?? g.heads.length);
    publish(tx, feed.map((_, i) => i), feed.length);
  } else {
    publish(hostile, g.heads, g.availIdx ?? g.heads.length);
  }
}


function guestView(session: FrontendSession): GuestView {
  const memory = session.memory;
  return {
    base: memory.guestPhysAddr,
    size: memory.size,
    u16: (gpa) => memory.view.getUint16(memory.gpaToOffset(gpa, 2), true),
    u32: (gpa) => memory.view.getUint32(memory.gpaToOffset(gpa, 4), true),
  };
}

function usedIdx(session: FrontendSession, queue: SessionQueue): number {
  const at = session.memory.gpaToOffset(queue.usedGpa, 4);
  return Atomics.load(new Uint16Array(session.memory.bytes.buffer, session.memory.bytes.byteOffset + at, 2), 1);
}

function compare(expected: Expectation, actual: SnapshotDelta | null, txUsed: number, rxUsed: number): string[] {
  const out: string[] = [];
  const check = (what: string, want: number, got: number): void => {
    if (want !== got) out.push(`${what}: expected ${want}, device ${got}`);
  };
  check('transmitq used.idx', expected.txUsed, txUsed);
  check('receiveq used.idx', expected.rxUsed, rxUsed);
  if (!actual) return out;
  check('transmitq.frames', expected.txFrames, actual.txFrames);
  check('transmitq.bytes', expected.txBytes, actual.txBytes);
  check('receiveq.frames', expected.rxFrames, actual.rxFrames);
  check('receiveq.bytes', expected.rxBytes, actual.rxBytes);
  check('receiveq.noBuffers', expected.rxNoBuffers, actual.rxNoBuffers);
  for (const kind of new Set([...Object.keys(expected.errors), ...Object.keys(actual.errors)])) {
    check(`errors.${kind}`, expected.errors[kind] ?? 0, actual.errors[kind] ?? 0);
  }
  if (expected.needsReset !== actual.needsReset) out.push(`needsReset: expected ${expected.needsReset}, device ${actual.needsReset}`);
  return out;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runRingCase(target: Target, g: RingGenome, options: RingRunOptions): Promise<RingOutcome> {
  if (!validQueueSize(g.size)) throw new RangeError(`ring case ${g.name}: queue size ${g.size} is not a power of two`);
  const session = await openSession({
    socketPath: target.socketPath,
    memoryBytes: MEMORY_BYTES,
    guestPhysAddr: GUEST_BASE,
    queues: 2,
    queueSize: g.size,
    features: genomeFeatures(g),
    client: { replyTimeoutMs: options.replyTimeoutMs ?? 5000 },
  });
  try {
    const before: Snapshot | null = target.hasControl ? snapshot(await target.stats()) : null;
    writeCase(session, g);
    const features = session.features;
    const mergeable = hasBit(features, FrontendFeatureBit.netMrgRxbuf);
    const expected = expectRings({
      mem: guestView(session),
      tx: ringOf(session.queue(TRANSMITQ)),
      rx: ringOf(session.queue(RECEIVEQ)),
      indirect: hasBit(features, FrontendFeatureBit.ringIndirectDesc),
      mergeable,
      header: headerLength(hasBit(features, FrontendFeatureBit.version1), mergeable),
      reflect: options.reflect && target.hasControl,
    });
    session.kick(RECEIVEQ);
    session.kick(TRANSMITQ);

    const deadline = Date.now() + (options.settleMs ?? 2000);
    let actual: SnapshotDelta | null = null;
    let txUsed = 0;
    let rxUsed = 0;
    let mismatches: string[] = [];
    let previous = '';
    let stableSince = Date.now();
    // A case where nothing may happen matches before the device has even looked: give it time
    // to do something wrong, as with cases whose outcome depends on timing.
    const idle = expected.txUsed === 0 && expected.rxUsed === 0 && !expected.needsReset && Object.keys(expected.errors).length === 0;
    const waitForQuiet = !expected.certain || idle;
    for (;;) {
      await pause(1);
      if (before) actual = difference(before, snapshot(await target.stats()));
      txUsed = usedIdx(session, session.queue(TRANSMITQ));
      rxUsed = usedIdx(session, session.queue(RECEIVEQ));
      mismatches = compare(expected, actual, txUsed, rxUsed);
      if (!waitForQuiet && mismatches.length === 0) break;
      // Otherwise (and while it differs) wait for the device to go quiet.
      const state = JSON.stringify([actual, txUsed, rxUsed]);
      if (state !== previous) {
        previous = state;
        stableSince = Date.now();
      } else if (waitForQuiet && Date.now() - stableSince >= 20) {
        break;
      }
      if (Date.now() > deadline) break;
    }
    if (!expected.certain) mismatches = [];
    if (expected.certain && mismatches.length === 0 && expected.needsReset && hasBit(session.protocolFeatures, 16)) {
      // With the counters read, the error is known to have happened; without them, wait for it here.
      let status = await session.client.getStatus();
      while ((status & 0x40) === 0 && !actual && Date.now() <= deadline) {
        await pause(1);
        status = await session.client.getStatus();
      }
      if ((status & 0x40) === 0) mismatches.push(`GET_STATUS 0x${status.toString(16)} lacks DEVICE_NEEDS_RESET after a ring error`);
    }
    const kinds = actual ? Object.keys(actual.errors).map((k) => `ring:${k}`) : [];
    return { expected, actual, txUsed, rxUsed, mismatches, kinds };
  } finally {
    session.close();
  }
}
