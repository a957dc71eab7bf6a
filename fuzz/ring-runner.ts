/**
 * Runs one ring case: a fresh frontend negotiates validly (FrontendSession), the case's rings
 * are written into its guest RAM, both queues are kicked, and the device's counters and used
 * rings are compared with what the rules say (ring-model.ts) once they settle. Then the frontend
 * disconnects, which resets the device for the next case.
 */
import { ftruncateSync } from 'node:fs';
import { DescFlags, DeviceStatus, FeatureBit, featureMask, hasFeature, isValidQueueSize, PackedDescFlags, ProtocolFeature, type FeatureWord } from 'vfio-user-ts';
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
import { PACKED_FRESH_BASE, packedAvailBits, packedPosition, type Desc, type RingGenome } from './ring-genome.js';
import { expectRings, type Expectation, type GuestView, type ModelRing, type UsedElement } from './ring-model.js';
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
  if (g.layout === 'packed') bits.push(FeatureBit.ringPacked);
  if (g.inOrder === true) bits.push(FeatureBit.inOrder);
  return featureMask(...bits);
}

function ringOf(queue: SessionQueue, base = PACKED_FRESH_BASE): ModelRing {
  return { size: queue.size, descGpa: queue.descGpa, availGpa: queue.availGpa, usedGpa: queue.usedGpa, base };
}

/** Feed frames longer than a feed slot are cut to fit (the genome may say anything). */
export function feedLength(length: number, header: number): number {
  return Math.max(0, Math.min(Math.floor(length), FEED_SLOT - header));
}

/** SET_VRING_BASE of the hostile queue of a packed genome, its slot taken modulo the size (a mutation may say anything). */
export function packedBase(g: RingGenome): number {
  const base = g.base ?? PACKED_FRESH_BASE;
  return (base & 0x8000) | packedPosition(base, g.size, 0).slot;
}

/** The feed frames a receive case sends on the transmitq (as many as fit its slots and the ring). */
function feedOf(g: RingGenome, txSize: number): number[] {
  return g.feed.slice(0, Math.min(FEED_SLOTS, txSize));
}

/**
 * How many transmit chains a truncation case publishes before its cut (its first heads, or the
 * feed frames of a receive case), waiting for the device to complete them; null for other cases.
 */
export function transmitChainsBeforeCut(g: RingGenome, txSize: number): number | null {
  if (!g.truncate) return null;
  return Math.min(g.truncate.before, g.side === 'tx' ? g.heads.length : feedOf(g, txSize).length);
}

/**
 * Writes the genome (and, for a receive case, the transmitq frames that feed it). A truncation
 * case publishes only its first heads and feed frames; the function returned publishes the rest.
 * Split rings publish through avail.idx; packed ones by writing each chain's first flags last,
 * so until then those slots hold flags 0, which is never available. A packed publish writes them
 * from its last chain to its first: the device may be looking already (it polls for a while after
 * a queue starts, and after a truncation case's first chains), and sees none of the chains until
 * it sees all of them, one burst, as with the split ring's one avail.idx store (under IN_ORDER a
 * burst is one used element, so the rules must know where bursts end).
 */
export function writeCase(session: Pick<FrontendSession, 'memory' | 'queue' | 'features'>, g: RingGenome): () => void {
  const memory = session.memory;
  const view = memory.view;
  const packed = g.layout === 'packed';
  /** Split: flags at 12, next at 14; packed: the id at 12, flags at 14. */
  const writeDesc = (gpa: number, d: Desc, flags = d.flags): void => {
    const at = memory.gpaToOffset(gpa, 16);
    view.setUint32(at, d.addrLo >>> 0, true);
    view.setUint32(at + 4, d.addrHi >>> 0, true);
    view.setUint32(at + 8, d.len >>> 0, true);
    view.setUint16(at + 12, (packed ? d.next : flags) & 0xffff, true);
    view.setUint16(at + 14, (packed ? flags : d.next) & 0xffff, true);
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
  if (packed && g.driverEvent) {
    const at = memory.gpaToOffset(hostile.availGpa, 4);
    view.setUint16(at, g.driverEvent[0] & 0xffff, true);
    view.setUint16(at + 2, g.driverEvent[1] & 0xffff, true);
  }
  const flagsAt = new Map<number, number>();
  const headSlots = new Set(packed ? g.heads : []);
  for (const [index, d] of g.table) {
    if (!Number.isInteger(index) || index < 0 || index >= hostile.size) continue;
    flagsAt.set(index, d.flags);
    writeDesc(hostile.descGpa + 16 * index, d, headSlots.has(index) ? 0 : d.flags);
  }
  /** Makes `heads` available: split, avail ring entries then avail.idx (`count`); packed, each head's flags (`flagsOf`). */
  const publish = (queue: SessionQueue, heads: readonly number[], count: number, flagsOf: (slot: number) => number): void => {
    if (packed) {
      for (const slot of [...heads].reverse()) {
        if (!Number.isInteger(slot) || slot < 0 || slot >= queue.size) continue;
        // One atomic store per chain: the device may be looking already.
        const at = memory.gpaToOffset(queue.descGpa + 16 * slot + 14, 2);
        Atomics.store(new Uint16Array(memory.bytes.buffer, memory.bytes.byteOffset + at, 1), 0, flagsOf(slot) & 0xffff);
      }
      return;
    }
    const avail = memory.gpaToOffset(queue.availGpa, 4 + 2 * queue.size);
    heads.forEach((head, i) => view.setUint16(avail + 4 + 2 * (i % queue.size), head & 0xffff, true));
    // avail.idx last, as one atomic store: the device may be looking already.
    Atomics.store(new Uint16Array(memory.bytes.buffer, memory.bytes.byteOffset + avail, 2), 1, count & 0xffff);
  };
  if (g.side === 'rx') {
    // The transmitq carries valid frames (header + frame in one buffer), one per feed entry, from
    // a fresh ring: in slot i (packed: id i, available on the first lap).
    const tx = session.queue(TRANSMITQ);
    const header = headerLength(hasFeature(session.features, FeatureBit.version1), hasFeature(session.features, FeatureBit.netMrgRxbuf));
    const feed = feedOf(g, tx.size);
    const feedFlags = (): number => (packed ? packedAvailBits(1) : 0);
    feed.forEach((length, i) => writeDesc(tx.descGpa + 16 * i, { addrLo: feedSlotAddress(i), addrHi: 0, len: header + feedLength(length, header), flags: 0, next: packed ? i : 0 }));
    const feedFirst = transmitChainsBeforeCut(g, tx.size) ?? feed.length;
    const rest = publishHostile();
    const slots = feed.map((_, i) => i);
    publish(tx, slots.slice(0, feedFirst), feedFirst, feedFlags);
    return () => {
      rest();
      publish(tx, packed ? slots.slice(feedFirst) : slots, feed.length, feedFlags);
    };
  }
  return publishHostile();

  function publishHostile(): () => void {
    const all = g.availIdx ?? g.heads.length;
    const flagsOf = (slot: number): number => flagsAt.get(slot) ?? 0;
    if (!g.truncate) {
      publish(hostile, g.heads, all, flagsOf);
      return () => {};
    }
    const first = Math.min(g.truncate.before, g.heads.length);
    publish(hostile, g.heads.slice(0, first), first, flagsOf);
    return () => publish(hostile, packed ? g.heads.slice(first) : g.heads, all, flagsOf);
  }
}

/**
 * What the rules expect of case `g` written into `session.memory` (the whole case) under the
 * features it negotiated, for a device on the reflect port when `reflect` (else sink).
 */
export function expectCase(session: Pick<FrontendSession, 'memory' | 'queue' | 'features'>, g: RingGenome, reflect: boolean): Expectation {
  const features = session.features;
  const mergeable = hasFeature(features, FeatureBit.netMrgRxbuf);
  const packed = hasFeature(features, FeatureBit.ringPacked);
  const hostileBase = packed ? packedBase(g) : PACKED_FRESH_BASE;
  const beforeCut = transmitChainsBeforeCut(g, session.queue(TRANSMITQ).size);
  return expectRings({
    mem: guestView(session.memory),
    layout: packed ? 'packed' : 'split',
    tx: ringOf(session.queue(TRANSMITQ), g.side === 'tx' ? hostileBase : PACKED_FRESH_BASE),
    rx: ringOf(session.queue(RECEIVEQ), g.side === 'rx' ? hostileBase : PACKED_FRESH_BASE),
    indirect: hasFeature(features, FeatureBit.ringIndirectDesc),
    mergeable,
    header: headerLength(hasFeature(features, FeatureBit.version1), mergeable),
    reflect,
    gso: {
      tcp4: hasFeature(features, FeatureBit.netHostTso4),
      tcp6: hasFeature(features, FeatureBit.netHostTso6),
      ecn: hasFeature(features, FeatureBit.netHostEcn),
      udpL4: hasFeature(features, FeatureBit.netHostUso),
    },
    inOrder: hasFeature(features, FeatureBit.inOrder),
    txPublishEnds: beforeCut === null ? [] : [beforeCut],
  });
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
 * What the rules read: a copy of guest memory, made before the case is written into it, with all
 * of the case written and published. The device may be looking at the rings already (it polls
 * for a while after a queue starts) and write used elements over what the rules read; the copy
 * holds the rings as the driver wrote them. A truncation case is whole there, as the device sees
 * it after the cut: in a generated case, what the device reads beyond the cut after it, the
 * buffers of the frames published then, held zeros before the cut too, which is what the device
 * reads there once its SIGBUS guard put zero pages in; the indirect tables beyond the cut were
 * read before it.
 */
export function writtenCopy(session: FrontendSession, g: RingGenome): FrontendMemory {
  const memory = session.memory;
  const copy = new FrontendMemory(memory.guestPhysAddr, memory.size, memory.userAddr, memory.bytes.slice().buffer);
  const whole: RingGenome = { ...g };
  delete whole.truncate;
  writeCase({ memory: copy, queue: (index) => session.queue(index), features: session.features }, whole);
  return copy;
}

export interface Completions {
  /** Chains completed. */
  readonly count: number;
  /** Every used element the device wrote otherwise than the rules expect, or where none belongs. */
  readonly problems: string[];
}

/** Where a queue's used elements go: the split ring's used ring (its elements from byte 4 on), the packed ring's descriptors. */
export function usedArea(layout: 'split' | 'packed', queue: Pick<SessionQueue, 'size' | 'descGpa' | 'usedGpa'>): { gpa: number; bytes: number } {
  return layout === 'split' ? { gpa: queue.usedGpa, bytes: 4 + 8 * queue.size } : { gpa: queue.descGpa, bytes: 16 * queue.size };
}

/**
 * How far a queue's completions got, and every used element written otherwise than the rules
 * expect (`elements`) or where none belongs. Split: used.idx says how far; of the used slots it
 * covers, those of the elements published by then must hold them, and the others (under
 * IN_ORDER, every chain's but a burst's first) must be as the driver left them; slots after it
 * are the device's to fill. Packed: the chains of the elements found in their slots, in order,
 * and every slot of the ring checked. `written` is usedArea as the driver wrote it (the whole case).
 */
export function completions(memory: FrontendMemory, queue: Pick<SessionQueue, 'size' | 'descGpa' | 'usedGpa'>, name: string, layout: 'split' | 'packed', elements: readonly UsedElement[], written: Uint8Array): Completions {
  if (layout === 'split') return splitCompletions(memory, queue, name, elements, written);
  const ring = memory.slice(queue.descGpa, 16 * queue.size);
  const view = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
  const element = (slot: number): { id: number; length: number; flags: number } => ({
    id: view.getUint16(16 * slot + 12, true),
    length: view.getUint32(16 * slot + 8, true),
    flags: Atomics.load(new Uint16Array(ring.buffer, ring.byteOffset + 16 * slot + 14, 1), 0),
  });
  const flagsOf = (u: UsedElement): number => (u.wrap === 1 ? PackedDescFlags.avail | PackedDescFlags.used : 0) | (u.length > 0 ? DescFlags.write : 0);
  const present = (u: UsedElement): boolean => {
    const got = element(u.slot);
    return got.flags === flagsOf(u) && got.id === u.id && got.length === u.length;
  };
  let found = 0;
  let count = 0;
  while (found < elements.length && present(elements[found]!)) count += elements[found++]!.chains;
  const problems: string[] = [];
  const expected = new Map(elements.map((u) => [u.slot, u]));
  for (let slot = 0; slot < queue.size; slot++) {
    const unchanged = ring.subarray(16 * slot, 16 * slot + 16).every((b, i) => b === written[16 * slot + i]);
    const want = expected.get(slot);
    if (unchanged || (want && present(want))) continue;
    const got = element(slot);
    const what = want ? `id ${want.id} length ${want.length} flags 0x${flagsOf(want).toString(16)}` : 'nothing';
    problems.push(`${name} slot ${slot}: the device wrote id ${got.id} length ${got.length} flags 0x${got.flags.toString(16)}, the rules say ${what}`);
  }
  return { count, problems };
}

/** completions() of a split ring, which starts at used.idx 0 (a fresh session). */
function splitCompletions(memory: FrontendMemory, queue: Pick<SessionQueue, 'size' | 'usedGpa'>, name: string, elements: readonly UsedElement[], written: Uint8Array): Completions {
  const used = memory.slice(queue.usedGpa, 4 + 8 * queue.size);
  // used.idx first: the elements it publishes were written before it.
  const count = Atomics.load(new Uint16Array(used.buffer, used.byteOffset, 2), 1);
  const view = new DataView(used.buffer, used.byteOffset, used.byteLength);
  const before = new DataView(written.buffer, written.byteOffset, written.byteLength);
  const published = new Map<number, UsedElement>();
  let chains = 0;
  for (const u of elements) {
    if (chains + u.chains > count) break;
    chains += u.chains;
    published.set(u.slot, u);
  }
  const problems: string[] = [];
  for (let slot = 0; slot < Math.min(count, queue.size); slot++) {
    const at = 4 + 8 * slot;
    const id = view.getUint32(at, true);
    const length = view.getUint32(at + 4, true);
    const want = published.get(slot);
    if (want ? id === want.id && length === want.length : id === before.getUint32(at, true) && length === before.getUint32(at + 4, true)) continue;
    problems.push(`${name} used slot ${slot} holds id ${id} length ${length}, the rules say ${want ? `id ${want.id} length ${want.length}` : 'nothing (as the driver left it)'}`);
  }
  return { count, problems };
}

/** Both queues' completions now (see completions()). */
export interface Progress {
  readonly txUsed: number;
  readonly rxUsed: number;
  /** Used elements written wrong or where none belongs. */
  readonly problems: string[];
}

/** Every way the device's counters and completions differ from the rules' expectation. */
export function compare(expected: Expectation, actual: SnapshotDelta | null, progress: Progress): string[] {
  const out: string[] = [];
  const check = (what: string, want: number, got: number): void => {
    if (want !== got) out.push(`${what}: expected ${want}, device ${got}`);
  };
  const used = expected.layout === 'split' ? 'used.idx' : 'chains used';
  check(`transmitq ${used}`, expected.txUsed, progress.txUsed);
  check(`receiveq ${used}`, expected.rxUsed, progress.rxUsed);
  out.push(...progress.problems);
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
  progress: () => Progress,
): Promise<RingOutcome> {
  const generated = !g.name.startsWith('mutated:');
  const hostileUsed = (): number => (g.side === 'tx' ? progress().txUsed : progress().rxUsed);
  const first = Math.min(truncate.before, g.heads.length);
  const connection = { closed: false };
  void session.client.closed.then(() => (connection.closed = true));
  const mismatches: string[] = [];
  // Before the cut: a generated case's first chains complete; a mutated case's may never, so
  // it goes on once used.idx stopped moving.
  let deadline = Date.now() + settleMs;
  let used = hostileUsed();
  let stableSince = Date.now();
  while (used !== first && Date.now() <= deadline && (generated || Date.now() - stableSince < QUIET_MS)) {
    await pause(1);
    const now = hostileUsed();
    if (now !== used) [used, stableSince] = [now, Date.now()];
  }
  if (generated && used !== first) mismatches.push(`before the cut: ${used} chains completed, expected ${first}`);
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
    const state = JSON.stringify([actual, connection.closed, hostileUsed()]);
    if (state !== previous) [previous, stableSince] = [state, Date.now()];
    else if (!generated && counted === 0 && Date.now() - stableSince >= QUIET_MS) break;
    if (Date.now() > deadline) break;
  }
  const closed = connection.closed;
  const now = progress();
  const expected: Expectation = generated
    ? { ...rules, errors: { ...rules.errors, guestMemoryTruncated: 1 }, needsReset: false }
    : { ...rules, certain: false };
  if (generated) mismatches.push(...compare(expected, actual, now));
  const truncations = actual?.errors['guestMemoryTruncated'] ?? 0;
  if (truncations > 1) mismatches.push(`errors.guestMemoryTruncated: ${truncations} for one truncation`);
  if (!closed && (generated || truncations > 0)) mismatches.push('the frontend that truncated its memory was not disconnected');
  const kinds = actual ? Object.keys(actual.errors).map((k) => `ring:${k}`) : [];
  return { expected, actual, txUsed: now.txUsed, rxUsed: now.rxUsed, mismatches, kinds };
}

/** A frontend session shaped as ring case `g` wants it: its queue size, features and (packed) ring bases. */
export function openRingSession(target: Target, g: RingGenome, replyTimeoutMs: number): Promise<FrontendSession> {
  return openSession({
    socketPath: target.socketPath,
    memoryBytes: MEMORY_BYTES,
    guestPhysAddr: GUEST_BASE,
    queues: 2,
    queueSize: g.size,
    features: genomeFeatures(g),
    client: { replyTimeoutMs },
    ...(g.layout === 'packed' ? { vringBase: g.side === 'tx' ? [PACKED_FRESH_BASE, packedBase(g)] : [packedBase(g), PACKED_FRESH_BASE] } : {}),
  });
}

export async function runRingCase(target: Target, g: RingGenome, options: RingRunOptions): Promise<RingOutcome> {
  if (!isValidQueueSize(g.size)) throw new RangeError(`ring case ${g.name}: queue size ${g.size} is not a power of two`);
  const session = await openRingSession(target, g, options.replyTimeoutMs ?? 5000);
  try {
    const before: Snapshot | null = target.hasControl ? snapshot(await target.stats()) : null;
    // What the driver wrote, the whole case (a truncation case's rest too): what the rules read
    // and what the device's used elements are told apart from.
    const written = writtenCopy(session, g);
    const publishRest = writeCase(session, g);
    const tx = session.queue(TRANSMITQ);
    const rx = session.queue(RECEIVEQ);
    const expected = expectCase({ memory: written, queue: (index) => session.queue(index), features: session.features }, g, options.reflect && target.hasControl);
    const ringBytes = (queue: SessionQueue): Uint8Array => {
      const area = usedArea(expected.layout, queue);
      return written.slice(area.gpa, area.bytes);
    };
    const txWritten = ringBytes(tx);
    const rxWritten = ringBytes(rx);
    const progress = (): Progress => {
      const t = completions(session.memory, tx, 'transmitq', expected.layout, expected.txElements, txWritten);
      const r = completions(session.memory, rx, 'receiveq', expected.layout, expected.rxElements, rxWritten);
      return { txUsed: t.count, rxUsed: r.count, problems: [...t.problems, ...r.problems] };
    };
    session.kick(RECEIVEQ);
    session.kick(TRANSMITQ);
    if (g.truncate) return await finishTruncation(target, session, g, g.truncate, expected, before, options.settleMs ?? 2000, publishRest, progress);

    const deadline = Date.now() + (options.settleMs ?? 2000);
    let actual: SnapshotDelta | null = null;
    let now: Progress = { txUsed: 0, rxUsed: 0, problems: [] };
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
      now = progress();
      mismatches = compare(expected, actual, now);
      if (!waitForQuiet && mismatches.length === 0) break;
      // Otherwise (and while it differs) wait for the device to go quiet.
      const state = JSON.stringify([actual, now]);
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
    return { expected, actual, txUsed: now.txUsed, rxUsed: now.rxUsed, mismatches, kinds };
  } finally {
    session.close();
  }
}
