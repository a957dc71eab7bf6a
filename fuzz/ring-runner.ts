/**
 * Runs one ring case: a fresh frontend negotiates validly (FrontendSession), the case's rings
 * are written into its guest RAM, both queues are kicked, and the device's counters and used
 * rings are compared with what the rules say (ring-model.ts) once they settle. Then the frontend
 * disconnects, which resets the device for the next case.
 */
import { ftruncateSync } from 'node:fs';
import { DeviceStatus, FeatureBit, featureMask, hasFeature, isValidQueueSize, ProtocolFeature, type FeatureWord } from 'vfio-user-ts';
import { FrontendMemory, type FrontendSession, type SessionQueue } from 'vfio-user-ts/vhost-user-frontend';
import { openSession } from './connect.js';
import {
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

/** The virtio features a genome asks for (the session adds the vhost-user protocol bit). */
export function genomeFeatures(g: RingGenome): FeatureWord {
  const bits: number[] = [FeatureBit.ringEventIdx];
  if (g.version1) bits.push(FeatureBit.version1);
  if (g.mergeable) bits.push(FeatureBit.netMrgRxbuf);
  if (g.indirect) bits.push(FeatureBit.ringIndirectDesc);
  if (g.tso === true) bits.push(FeatureBit.netHostTso4, FeatureBit.netHostTso6, FeatureBit.netHostEcn, FeatureBit.netHostUso);
  return featureMask(...bits);
}

function ringOf(queue: SessionQueue): ModelRing {
  return { size: queue.size, descGpa: queue.descGpa, availGpa: queue.availGpa, usedGpa: queue.usedGpa };
}

/** Feed frames longer than a feed slot are cut to fit (the genome may say anything). */
export function feedLength(length: number, header: number): number {
  return Math.max(0, Math.min(Math.floor(length), FEED_SLOT - header));
}

/**
 * Writes the genome (and, for a receive case, the transmitq frames that feed it). A truncation
 * case publishes only its first heads and feed frames; the function returned publishes the rest.
 */
export function writeCase(session: Pick<FrontendSession, 'memory' | 'queue' | 'features'>, g: RingGenome): () => void {
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
  for (const [gpa, bytes] of g.bytes ?? []) {
    // A mutated address may point anywhere: only what lies inside guest memory is written.
    bytes.forEach((b, i) => {
      const at = gpa + i;
      if (Number.isInteger(at) && at >= memory.guestPhysAddr && at < memory.guestPhysAddr + memory.size) view.setUint8(memory.gpaToOffset(at, 1), b & 0xff);
    });
  }
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
    const header = headerLength(hasFeature(session.features, FeatureBit.version1), hasFeature(session.features, FeatureBit.netMrgRxbuf));
    const feed = g.feed.slice(0, Math.min(FEED_SLOTS, tx.size));
    feed.forEach((length, i) => writeDesc(tx.descGpa + 16 * i, { addrLo: feedSlotAddress(i), addrHi: 0, len: header + feedLength(length, header), flags: 0, next: 0 }));
    const feedFirst = g.truncate ? Math.min(g.truncate.before, feed.length) : feed.length;
    const rest = publishHostile();
    publish(tx, feed.slice(0, feedFirst).map((_, i) => i), feedFirst);
    return () => {
      rest();
      publish(tx, feed.map((_, i) => i), feed.length);
    };
  }
  return publishHostile();

  function publishHostile(): () => void {
    const all = g.availIdx ?? g.heads.length;
    if (!g.truncate) {
      publish(hostile, g.heads, all);
      return () => {};
    }
    const first = Math.min(g.truncate.before, g.heads.length);
    publish(hostile, g.heads.slice(0, first), first);
    return () => publish(hostile, g.heads, all);
  }
}


function guestView(memory: FrontendMemory): GuestView {
  return {
    base: memory.guestPhysAddr,
    size: memory.size,
    u8: (gpa) => memory.view.getUint8(memory.gpaToOffset(gpa, 1)),
    u16: (gpa) => memory.view.getUint16(memory.gpaToOffset(gpa, 2), true),
    u32: (gpa) => memory.view.getUint32(memory.gpaToOffset(gpa, 4), true),
  };
}

/**
 * What the rules read for a truncation case, on a copy of guest memory with all of the case
 * published (what the device sees after the cut). In a generated case, what the device reads
 * beyond the cut after it, the buffers of the frames published then, held zeros before the cut
 * too, which is what the device reads there once its SIGBUS guard put zero pages in; the indirect
 * tables beyond the cut were read before it.
 */
function truncatedView(session: FrontendSession, g: RingGenome): GuestView {
  const memory = session.memory;
  const copy = new FrontendMemory(memory.guestPhysAddr, memory.size, memory.userAddr, memory.bytes.slice().buffer);
  const whole: RingGenome = { ...g };
  delete whole.truncate;
  writeCase({ memory: copy, queue: (index) => session.queue(index), features: session.features }, whole);
  return guestView(copy);
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
/** How long nothing may move before a case whose outcome is not certain counts as settled, in ms. */
const QUIET_MS = 20;

/**
 * The rest of a truncation case (RingGenome.truncate), its first heads published and kicked:
 * once the device completed them, the frontend truncates its memfd and publishes the rest, whose
 * buffers lie beyond the new end. The device must survive that (not die of SIGBUS), count
 * errors.guestMemoryTruncated once and disconnect the frontend, whose reset clears
 * DEVICE_NEEDS_RESET again. A generated case is valid traffic otherwise, so the rules hold for
 * every frame (what lies beyond the cut reads as the zeros it held); a mutated one may do
 * anything before the cut, so only the truncation's own checks apply. Nothing beyond the cut is
 * read here after it (that would be a SIGBUS of ours): the rings lie below every cut.
 */
async function finishTruncation(
  target: Target,
  session: FrontendSession,
  g: RingGenome,
  truncate: NonNullable<RingGenome['truncate']>,
  rules: Expectation,
  before: Snapshot | null,
  settleMs: number,
  publishRest: () => void,
): Promise<RingOutcome> {
  const generated = !g.name.startsWith('mutated:');
  const hostile = session.queue(g.side === 'tx' ? TRANSMITQ : RECEIVEQ);
  const first = Math.min(truncate.before, g.heads.length);
  const connection = { closed: false };
  void session.client.closed.then(() => (connection.closed = true));
  const mismatches: string[] = [];
  // Before the cut: a generated case's first chains complete; a mutated case's may never, so
  // it goes on once used.idx stopped moving.
  let deadline = Date.now() + settleMs;
  let used = usedIdx(session, hostile);
  let stableSince = Date.now();
  while (used !== first && Date.now() <= deadline && (generated || Date.now() - stableSince < QUIET_MS)) {
    await pause(1);
    const now = usedIdx(session, hostile);
    if (now !== used) [used, stableSince] = [now, Date.now()];
  }
  if (generated && used !== first) mismatches.push(`before the cut: used.idx ${used}, expected ${first}`);
  ftruncateSync(session.memoryFd, truncate.kept);
  publishRest();
  session.kick(RECEIVEQ);
  session.kick(TRANSMITQ);
  // After it: done once the device disconnected us and counted the truncation (and its reset
  // is done: it comes a moment after our socket closed); a mutated case may never touch what
  // was cut, so it is also done once nothing moved for a while.
  let actual: SnapshotDelta | null = null;
  let previous = '';
  deadline = Date.now() + settleMs;
  stableSince = Date.now();
  for (;;) {
    await pause(1);
    if (before) actual = difference(before, snapshot(await target.stats()));
    const counted = actual?.errors['guestMemoryTruncated'] ?? 0;
    if (connection.closed && (actual === null || (counted > 0 && !actual.needsReset))) break;
    const state = JSON.stringify([actual, connection.closed, usedIdx(session, hostile)]);
    if (state !== previous) [previous, stableSince] = [state, Date.now()];
    else if (!generated && counted === 0 && Date.now() - stableSince >= QUIET_MS) break;
    if (Date.now() > deadline) break;
  }
  const closed = connection.closed;
  const txUsed = usedIdx(session, session.queue(TRANSMITQ));
  const rxUsed = usedIdx(session, session.queue(RECEIVEQ));
  const expected: Expectation = generated
    ? { ...rules, errors: { ...rules.errors, guestMemoryTruncated: 1 }, needsReset: false }
    : { ...rules, certain: false };
  if (generated) mismatches.push(...compare(expected, actual, txUsed, rxUsed));
  const truncations = actual?.errors['guestMemoryTruncated'] ?? 0;
  if (truncations > 1) mismatches.push(`errors.guestMemoryTruncated: ${truncations} for one truncation`);
  if (!closed && (generated || truncations > 0)) mismatches.push('the frontend that truncated its memory was not disconnected');
  const kinds = actual ? Object.keys(actual.errors).map((k) => `ring:${k}`) : [];
  return { expected, actual, txUsed, rxUsed, mismatches, kinds };
}

export async function runRingCase(target: Target, g: RingGenome, options: RingRunOptions): Promise<RingOutcome> {
  if (!isValidQueueSize(g.size)) throw new RangeError(`ring case ${g.name}: queue size ${g.size} is not a power of two`);
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
    const publishRest = writeCase(session, g);
    const features = session.features;
    const mergeable = hasFeature(features, FeatureBit.netMrgRxbuf);
    const expected = expectRings({
      mem: g.truncate ? truncatedView(session, g) : guestView(session.memory),
      tx: ringOf(session.queue(TRANSMITQ)),
      rx: ringOf(session.queue(RECEIVEQ)),
      indirect: hasFeature(features, FeatureBit.ringIndirectDesc),
      mergeable,
      header: headerLength(hasFeature(features, FeatureBit.version1), mergeable),
      reflect: options.reflect && target.hasControl,
      gso: {
        tcp4: hasFeature(features, FeatureBit.netHostTso4),
        tcp6: hasFeature(features, FeatureBit.netHostTso6),
        ecn: hasFeature(features, FeatureBit.netHostEcn),
        udpL4: hasFeature(features, FeatureBit.netHostUso),
      },
    });
    session.kick(RECEIVEQ);
    session.kick(TRANSMITQ);
    if (g.truncate) return await finishTruncation(target, session, g, g.truncate, expected, before, options.settleMs ?? 2000, publishRest);

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
      } else if (waitForQuiet && Date.now() - stableSince >= QUIET_MS) {
        break;
      }
      if (Date.now() > deadline) break;
    }
    if (!expected.certain) mismatches = [];
    if (expected.certain && mismatches.length === 0 && expected.needsReset && hasFeature(session.protocolFeatures, ProtocolFeature.status)) {
      // With the counters read, the error is known to have happened; without them, wait for it here.
      let status = await session.client.getStatus();
      while ((status & DeviceStatus.needsReset) === 0 && !actual && Date.now() <= deadline) {
        await pause(1);
        status = await session.client.getStatus();
      }
      if ((status & DeviceStatus.needsReset) === 0) mismatches.push(`GET_STATUS 0x${status.toString(16)} lacks DEVICE_NEEDS_RESET after a ring error`);
    }
    const kinds = actual ? Object.keys(actual.errors).map((k) => `ring:${k}`) : [];
    return { expected, actual, txUsed, rxUsed, mismatches, kinds };
  } finally {
    session.close();
  }
}
