/**
 * Message cases: vhost-user messages a hostile frontend sends after a valid setup of some depth
 * (nothing, negotiated features, a memory table, running rings). One generator per hostile
 * pattern, each with the reaction it must get (a REPLY_ACK failure when the frontend asked for
 * one, otherwise a disconnect) and the refusal reason the backend must count; storms of random
 * bytes and random headers; and byte-level mutations for coverage guidance.
 */
import { Request } from 'vfio-user-ts';
import { GUEST_BASE, MEMORY_BYTES } from './layout.js';
import type { Prng } from './prng.js';

/** File descriptors a message can carry, created fresh for each send. */
export type FdKind =
  /** An eventfd (what kick/call/err want). */
  | 'eventfd'
  /** A memfd of MEMORY_BYTES (what a region wants). */
  | 'memfd'
  /** A memfd of one page: far smaller than a region that claims it. */
  | 'smallMemfd'
  /** /dev/null: neither mappable nor an eventfd. */
  | 'devnull'
  /** A regular file opened read-only: not writable, not pollable. */
  | 'readonly';

export const fdKinds: readonly FdKind[] = ['eventfd', 'memfd', 'smallMemfd', 'devnull', 'readonly'];

/**
 * What must happen to a step: `reject` = a REPLY_ACK failure when it asked for a reply with
 * REPLY_ACK negotiated, else a disconnect; `disconnect` regardless; `ok` = accepted; `closed` =
 * the frontend closes right after it (a truncated message); `any` = only liveness is checked.
 */
export type StepExpect = 'ok' | 'reject' | 'disconnect' | 'closed' | 'any';

export interface MessageStep {
  /** The request, framed by the runner (ignored when `raw` is given). */
  request: number;
  /** Header flags; default VERSION, plus NEED_REPLY when the case negotiated REPLY_ACK. */
  flags?: number;
  payload: number[];
  /** The header's size field when it should not be the payload's length. */
  size?: number;
  /** Bytes written as they are, no framing. */
  raw?: number[];
  fds: FdKind[];
  /** Send only the first `cut` bytes, then close. */
  cut?: number;
  expect: StepExpect;
}

export type SetupLevel = 'fresh' | 'negotiated' | 'memory' | 'rings';

export interface MessageCase {
  name: string;
  level: SetupLevel;
  /** Negotiate REPLY_ACK and ask for replies. */
  ack: boolean;
  steps: MessageStep[];
  /** The refusal reason the backend must count (a regular expression), if any. */
  reason?: string;
}

// ---- payload builders --------------------------------------------------------------------------

const TWO_32 = 4294967296;

function le32(value: number): number[] {
  const v = value >>> 0;
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

export function u64(value: number): number[] {
  return [...le32(value % TWO_32), ...le32(Math.floor(value / TWO_32))];
}

export function u64Words(low: number, high: number): number[] {
  return [...le32(low), ...le32(high)];
}

export function vringState(index: number, num: number): number[] {
  return [...le32(index), ...le32(num)];
}

export interface RegionFields {
  gpa: number;
  size: number;
  uva: number;
  offset: number;
}

/** The one region the runner's setup uses. */
export const USER_BASE = 0x7f0000000000;
export const validRegion: RegionFields = { gpa: GUEST_BASE, size: MEMORY_BYTES, uva: USER_BASE, offset: 0 };

export function memTable(regions: readonly RegionFields[], count = regions.length): number[] {
  const out = [...le32(count), ...le32(0)];
  for (const r of regions) out.push(...u64(r.gpa), ...u64(r.size), ...u64(r.uva), ...u64(r.offset));
  return out;
}

export function vringAddr(index: number, desc: number, used: number, avail: number, flags = 0): number[] {
  return [...le32(index), ...le32(flags), ...u64(desc), ...u64(used), ...u64(avail), ...u64(0)];
}

/** Where the runner's setup puts queue `index`'s rings (frontend addresses). */
export function ringUserAddresses(index: number): { desc: number; avail: number; used: number } {
  const base = USER_BASE + 0x10000 * (index + 1);
  return { desc: base, avail: base + 0x1000, used: base + 0x2000 };
}

export function vringFd(index: number, noFd: boolean): number[] {
  return u64(index | (noFd ? 0x100 : 0));
}

function step(request: number, payload: number[], expect: StepExpect, fds: FdKind[] = [], extra: Partial<MessageStep> = {}): MessageStep {
  return { request, payload, fds, expect, ...extra };
}

// ---- the catalog -------------------------------------------------------------------------------

export interface MessageCaseKind {
  readonly name: string;
  build(prng: Prng): MessageCase;
}

function kind(name: string, level: SetupLevel, reason: string | undefined, steps: (prng: Prng) => MessageStep[], ack?: boolean): MessageCaseKind {
  return {
    name,
    build: (prng) => {
      const c: MessageCase = { name, level, ack: ack ?? prng.chance(0.5), steps: steps(prng) };
      if (reason !== undefined) c.reason = reason;
      return c;
    },
  };
}

const VRING_COUNT = 2;

export const messageKinds: readonly MessageCaseKind[] = [
  // -- sizes that lie, truncation, framing --
  kind('size-too-large', 'fresh', 'claims a N-byte payload', (prng) => [
    step(Request.getFeatures, [], 'disconnect', [], { size: prng.pick([4097, 0x10000, 0x7fffffff, 0xffffffff]) }),
  ]),
  kind('size-lies-larger-then-close', 'negotiated', 'closed in the middle of a message', () => [
    step(Request.setFeatures, u64(0), 'closed', [], { size: 16 }),
  ]),
  // The backend reads ahead while it handles a message: the bytes after the short payload may be
  // refused as a header (bad version, huge size) before the message itself is.
  kind('size-lies-smaller', 'negotiated', 'payload is N bytes, expected N|protocol version|claims a', (prng) => [
    // The header says 4 and 8 bytes follow: the message is refused, the stream is then out of step.
    step(Request.setVringNum, vringState(0, 256), 'reject', [], { size: prng.pick([0, 4]) }),
    step(Request.getFeatures, [], 'any'),
  ]),
  kind('size-wrong-for-request', 'negotiated', 'payload is N bytes, expected N', (prng) => [
    prng.pick([
      step(Request.setVringNum, [...vringState(0, 256), 0, 0, 0, 0], 'reject'),
      step(Request.setFeatures, le32(0), 'reject'),
      step(Request.setOwner, u64(0), 'reject'),
      step(Request.setVringAddr, vringAddr(0, 0, 0, 0).slice(0, 32), 'reject'),
    ]),
  ]),
  kind('truncated-header', 'negotiated', 'closed in the middle of a message', (prng) => [
    step(Request.setFeatures, u64(0), 'closed', [], { cut: prng.range(1, 11) }),
  ]),
  kind('truncated-payload', 'negotiated', 'closed in the middle of a message', (prng) => [
    step(Request.setMemTable, memTable([validRegion]), 'closed', ['memfd'], { cut: prng.range(13, 12 + 39) }),
  ]),
  kind('bad-version', 'fresh', 'protocol version', (prng) => [step(Request.getFeatures, [], 'disconnect', [], { flags: prng.pick([0, 2, 3]) })]),
  // -- requests --
  kind('unknown-request', 'negotiated', 'unknown or unsupported request', (prng) => [
    step(prng.pick([0, 22, 23, 24, 25, 30, 33, 35, 36, 37, 38, 41, 42, 99, 0x7fffffff, 0xffffffff]), prng.pick([[], u64(0)]), 'reject'),
  ]),
  kind('unsupported-logging', 'negotiated', 'dirty logging|backend request channel', (prng) =>
    [
      [step(Request.setLogBase, [...u64(0), ...u64(4096)], 'reject', ['memfd'])],
      [step(Request.setLogFd, [], 'reject', ['eventfd'])],
      [step(Request.setBackendReqFd, [], 'reject', ['eventfd'])],
    ][prng.int(3)]!,
  ),
  kind('features-not-offered', 'negotiated', 'include bits not offered', (prng) => [
    prng.chance(0.5) ? step(Request.setFeatures, u64(2 ** prng.pick([17, 22, 41, 52])), 'reject') : step(Request.setProtocolFeatures, u64(2 ** prng.pick([1, 5, 11, 40])), 'reject'),
  ]),
  // Feature words are read whole (all 64 bits); the other u64 values must fit 2^53.
  kind('u64-beyond-2^53', 'negotiated', 'at or above', () => [step(Request.setStatus, u64Words(0, 0x80000000), 'reject')]),
  kind('mtu-out-of-range', 'negotiated', 'MTU N is outside', (prng) => [step(Request.netSetMtu, u64(prng.pick([0, 67, 65536])), 'reject')]),
  kind('status-too-wide', 'negotiated', 'wider than N bits', () => [step(Request.setStatus, u64(0x100), 'reject')]),
  // -- file descriptors --
  kind('too-many-fds', 'negotiated', 'came with N file descriptors, expected N', (prng) => [
    prng.pick([
      step(Request.setFeatures, u64(0), 'reject', ['eventfd']),
      step(Request.setMemTable, memTable([validRegion]), 'reject', ['memfd', 'memfd']),
      step(Request.setVringNum, vringState(0, 256), 'reject', ['eventfd', 'eventfd']),
      step(Request.setVringKick, vringFd(0, true), 'reject', ['eventfd']),
    ]),
  ]),
  kind('too-few-fds', 'negotiated', 'came with N file descriptors, expected N', (prng) => [
    prng.pick([
      step(Request.setMemTable, memTable([validRegion, { gpa: GUEST_BASE + MEMORY_BYTES, size: 4096, uva: USER_BASE + MEMORY_BYTES, offset: 0 }]), 'reject', ['memfd']),
      step(Request.setMemTable, memTable([validRegion]), 'reject', []),
      step(Request.setLogFd, [], 'reject', []),
    ]),
  ]),
  kind('fd-flood', 'negotiated', 'too many file descriptors', (prng) => [step(Request.setFeatures, u64(0), 'disconnect', Array.from({ length: prng.range(33, 60) }, () => 'eventfd' as const))]),
  kind('kick-without-fd', 'memory', 'came with N file descriptors, expected N', (prng) => [
    step(prng.pick([Request.setVringKick, Request.setVringCall, Request.setVringErr]), vringFd(prng.int(VRING_COUNT), false), 'reject'),
  ]),
  kind('kick-nofd', 'memory', 'sends no kicks', (prng) => [step(Request.setVringKick, vringFd(prng.int(VRING_COUNT), true), 'reject')]),
  kind('vring-fd-unknown-bits', 'memory', 'unknown bits set', (prng) => [
    step(Request.setVringCall, u64Words(prng.pick([0x200, 0x10000, 0x80000000]), 0), 'reject', ['eventfd']),
  ]),
  kind('kick-not-eventfd', 'rings', 'not an eventfd', (prng) => [step(Request.setVringKick, vringFd(prng.int(VRING_COUNT), false), 'reject', [prng.pick(['memfd', 'devnull', 'readonly'] as const)])]),
  kind('call-not-eventfd', 'rings', 'not an eventfd', (prng) => [step(Request.setVringCall, vringFd(prng.int(VRING_COUNT), false), 'reject', [prng.pick(['memfd', 'devnull', 'readonly'] as const)])]),
  kind('err-not-eventfd', 'rings', 'not an eventfd', (prng) => [step(Request.setVringErr, vringFd(prng.int(VRING_COUNT), false), 'reject', [prng.pick(['memfd', 'devnull', 'readonly'] as const)])]),
  // -- memory tables --
  kind('mem-table-no-regions', 'negotiated', 'memory table has no regions', () => [step(Request.setMemTable, memTable([]), 'reject')]),
  kind('mem-table-nine-regions', 'negotiated', 'regions, at most N allowed', (prng) => {
    const n = prng.range(9, 12);
    const regions = Array.from({ length: n }, (_, i) => ({ gpa: GUEST_BASE + 0x1000 * i, size: 0x1000, uva: USER_BASE + 0x1000 * i, offset: 0x1000 * i }));
    return [step(Request.setMemTable, memTable(regions), 'reject', regions.map(() => 'memfd' as const))];
  }),
  kind('mem-table-count-lies', 'negotiated', 'payload is N bytes, expected N', (prng) => [step(Request.setMemTable, memTable([validRegion], prng.range(2, 8)), 'reject', ['memfd'])]),
  kind('mem-table-overlap', 'negotiated', 'overlaps region N', (prng) => {
    const second = prng.chance(0.5)
      ? { gpa: GUEST_BASE + MEMORY_BYTES / 2, size: MEMORY_BYTES, uva: USER_BASE + 0x10000000, offset: 0 } // guest-physical overlap
      : { gpa: GUEST_BASE + 0x10000000, size: MEMORY_BYTES, uva: USER_BASE + 0x1000, offset: 0 }; // frontend address overlap
    return [step(Request.setMemTable, memTable([validRegion, second]), 'reject', ['memfd', 'memfd'])];
  }),
  // On running rings: a backend that maps the table touches it at once (and would SIGBUS).
  kind('mem-table-out-of-file', 'rings', 'beyond the end of its file', (prng) =>
    prng.chance(0.5)
      ? [step(Request.setMemTable, memTable([validRegion]), 'reject', ['smallMemfd'])]
      : [step(Request.setMemTable, memTable([{ ...validRegion, size: 0x1000, offset: MEMORY_BYTES }]), 'reject', ['memfd'])],
  ),
  kind('mem-table-not-mappable', 'negotiated', 'cannot map guest memory|beyond the end of its file', (prng) => [
    step(Request.setMemTable, memTable([validRegion]), 'reject', [prng.pick(['eventfd', 'devnull', 'readonly'] as const)]),
  ]),
  kind('mem-table-zero-size', 'negotiated', 'has size N', () => [step(Request.setMemTable, memTable([{ ...validRegion, size: 0 }]), 'reject', ['memfd'])]),
  kind('mem-table-beyond-2^53', 'negotiated', 'at or above N\\^N|beyond N\\^N', (prng) => {
    const payload = memTable([validRegion]);
    // Set the high word of one of the four fields to 0xffffffff.
    const field = prng.int(4);
    payload.splice(8 + 8 * field + 4, 4, 0xff, 0xff, 0xff, 0xff);
    return [step(Request.setMemTable, payload, 'reject', ['memfd'])];
  }),
  kind('mem-table-unaligned-offset', 'negotiated', 'not N-byte aligned|cannot map', () => [step(Request.setMemTable, memTable([{ ...validRegion, size: MEMORY_BYTES - 4096, offset: 2 }]), 'reject', ['memfd'])]),
  // -- vrings --
  kind('vring-size-zero', 'memory', 'is not a power of two', (prng) => [step(Request.setVringNum, vringState(prng.int(VRING_COUNT), 0), 'reject')]),
  kind('vring-size-not-power-of-two', 'memory', 'is not a power of two', (prng) => [step(Request.setVringNum, vringState(prng.int(VRING_COUNT), prng.pick([3, 100, 255, 257, 1000])), 'reject')]),
  kind('vring-size-65536', 'memory', 'is not a power of two', (prng) => [step(Request.setVringNum, vringState(prng.int(VRING_COUNT), prng.pick([65536, 0x80000000])), 'reject')]),
  kind('vring-index-out-of-range', 'memory', 'vring index N is out of range', (prng) => {
    const index = prng.pick([VRING_COUNT, VRING_COUNT + 1, 255, 0x10000, 0xffffffff]);
    return [
      prng.pick([
        step(Request.setVringNum, vringState(index, 256), 'reject'),
        step(Request.setVringBase, vringState(index, 0), 'reject'),
        step(Request.setVringEnable, vringState(index, 1), 'reject'),
        step(Request.setVringAddr, vringAddr(index, USER_BASE, USER_BASE + 0x2000, USER_BASE + 0x1000), 'reject'),
        // A GET answers with data, so a refusal of it is always a disconnect.
        step(Request.getVringBase, vringState(index, 0), 'reject', [], { flags: 1 }),
        step(Request.setVringKick, vringFd(Math.min(index, 255), false), 'reject', ['eventfd']),
      ]),
    ];
  }),
  kind('vring-address-outside', 'memory', 'ring addresses are outside the memory table', (prng) => {
    const index = prng.int(VRING_COUNT);
    const good = ringUserAddresses(index);
    const bad = prng.pick([0, USER_BASE - 0x1000, USER_BASE + MEMORY_BYTES, USER_BASE + MEMORY_BYTES - 16, 0x1fffffffffffff]);
    const which = prng.int(3);
    const addr = { ...good, [['desc', 'avail', 'used'][which]!]: bad };
    // Everything else is ready, so the backend tries to start the ring at SET_VRING_ADDR.
    return [
      step(Request.setVringNum, vringState(index, 256), 'ok'),
      step(Request.setVringBase, vringState(index, 0), 'ok'),
      step(Request.setVringKick, vringFd(index, false), 'ok', ['eventfd']),
      step(Request.setVringEnable, vringState(index, 1), 'ok'),
      step(Request.setVringAddr, vringAddr(index, addr.desc, addr.used, addr.avail), 'reject'),
    ];
  }),
  kind('vring-address-unaligned', 'memory', 'not aligned', (prng) => {
    const index = prng.int(VRING_COUNT);
    const good = ringUserAddresses(index);
    return [
      step(Request.setVringNum, vringState(index, 256), 'ok'),
      step(Request.setVringBase, vringState(index, 0), 'ok'),
      step(Request.setVringKick, vringFd(index, false), 'ok', ['eventfd']),
      step(Request.setVringEnable, vringState(index, 1), 'ok'),
      step(Request.setVringAddr, vringAddr(index, good.desc + prng.pick([1, 2, 8]), good.used, good.avail), 'reject'),
    ];
  }),
  kind('vring-address-beyond-2^53', 'memory', 'at or above', (prng) => {
    const payload = vringAddr(prng.int(VRING_COUNT), 0, 0, 0);
    payload.splice(8 + 8 * prng.int(3) + 4, 4, 0xff, 0xff, 0xff, 0xff);
    return [step(Request.setVringAddr, payload, 'reject')];
  }),
  kind('vring-base-too-large', 'memory', 'beyond a split ring', (prng) => [step(Request.setVringBase, vringState(prng.int(VRING_COUNT), prng.pick([0x10000, 0xffffffff])), 'reject')]),
  kind('vring-enable-not-boolean', 'memory', 'enable must be N or N', (prng) => [step(Request.setVringEnable, vringState(prng.int(VRING_COUNT), prng.pick([2, 0xffffffff])), 'reject')]),
  kind('vring-change-while-running', 'rings', 'is running', (prng) => {
    const index = prng.int(VRING_COUNT);
    const good = ringUserAddresses(index);
    return [
      prng.pick([
        step(Request.setVringNum, vringState(index, 128), 'reject'),
        step(Request.setVringBase, vringState(index, 5), 'reject'),
        step(Request.setVringAddr, vringAddr(index, good.desc, good.used, good.avail), 'reject'),
      ]),
    ];
  }),
  // -- valid messages mixed in (the backend must keep accepting them) --
  kind('valid-reconfigure', 'rings', undefined, (prng) => {
    const index = prng.int(VRING_COUNT);
    const noCall = prng.chance(0.5);
    return [
      step(Request.getVringBase, vringState(index, 0), 'ok'),
      step(Request.setVringKick, vringFd(index, false), 'ok', ['eventfd']),
      step(Request.setVringCall, vringFd(index, noCall), 'ok', noCall ? [] : ['eventfd']),
      step(Request.setMemTable, memTable([validRegion]), 'ok', ['memfd']),
      step(Request.getStatus, [], 'ok'),
    ];
  }, true),
  // -- storms --
  kind('byte-storm', 'fresh', undefined, (prng) => [{ request: 0, payload: [], raw: prng.bytes(prng.range(1, 4096)), fds: [], expect: 'any' }]),
  kind('header-storm', 'negotiated', undefined, (prng) => headerStorm(prng)),
];

export function messageKind(name: string): MessageCaseKind {
  const k = messageKinds.find((m) => m.name === name);
  if (!k) throw new Error(`no message case named ${name}`);
  return k;
}

/** Well-framed messages with random requests, flags, payload sizes and fds. */
function headerStorm(prng: Prng): MessageStep[] {
  const steps: MessageStep[] = [];
  const n = prng.range(1, 12);
  for (let i = 0; i < n; i++) {
    const request = prng.chance(0.8) ? prng.range(1, 41) : prng.u32();
    const size = prng.pick([0, 8, 8, 8, 12, 16, 40, 40, 8 + 32 * prng.range(0, 9), prng.range(0, 64)]);
    const payload = prng.chance(0.5) ? prng.bytes(size) : Array.from({ length: size }, (_, j) => (j % 8 === 0 ? prng.pick([0, 1, 2, 0xff]) : 0));
    const fds: FdKind[] = prng.chance(0.7) ? [] : Array.from({ length: prng.range(1, 3) }, () => prng.pick(fdKinds));
    const flags = prng.chance(0.9) ? 1 | (prng.chance(0.5) ? 8 : 0) : prng.u32();
    steps.push({ request, flags, payload, fds, expect: 'any' });
  }
  return steps;
}

// ---- random cases and mutation -----------------------------------------------------------------

const INTERESTING_U32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x1ff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutateBytes(prng: Prng, bytes: number[]): number[] {
  const out = [...bytes];
  switch (prng.int(5)) {
    case 0:
      if (out.length > 0) {
        const i = prng.int(out.length);
        out[i] = (out[i]! ^ (1 << prng.int(8))) & 0xff;
      }
      break;
    case 1:
      if (out.length >= 4) {
        const at = 4 * prng.int(Math.floor(out.length / 4));
        out.splice(at, 4, ...le32(prng.pick(INTERESTING_U32)));
      }
      break;
    case 2:
      out.push(...prng.bytes(prng.pick([1, 4, 8, 32])));
      break;
    case 3:
      out.length = prng.int(out.length + 1);
      break;
    default:
      if (out.length > 0) out[prng.int(out.length)] = prng.u32() & 0xff;
  }
  return out;
}

/** 1 to 3 changes to a copy of `parent`; every step's expectation becomes `any`. */
export function mutateMessage(parent: MessageCase, prng: Prng): MessageCase {
  const c: MessageCase = structuredClone(parent);
  c.name = `mutated:${parent.name.replace(/^mutated:/, '')}`;
  delete c.reason;
  if (c.steps.length === 0) c.steps.push({ request: Request.getFeatures, payload: [], fds: [], expect: 'any' });
  const rounds = prng.range(1, 3);
  for (let r = 0; r < rounds; r++) {
    const s = prng.pick(c.steps);
    switch (prng.int(10)) {
      case 0:
      case 1:
      case 2:
        if (s.raw) s.raw = mutateBytes(prng, s.raw);
        else s.payload = mutateBytes(prng, s.payload);
        break;
      case 3:
        s.request = prng.chance(0.8) ? prng.range(0, 41) : prng.pick(INTERESTING_U32);
        break;
      case 4:
        s.flags = prng.pick([0, 1, 2, 3, 5, 9, 0xd, 0xffffffff, (s.flags ?? 1) ^ (1 << prng.int(32))]) >>> 0;
        break;
      case 5:
        s.size = prng.chance(0.3) ? undefined : prng.pick([0, 1, 7, 8, 9, s.payload.length + 1, Math.max(0, s.payload.length - 1), 4096, 4097, 0xffffffff]);
        if (s.size === undefined) delete s.size;
        break;
      case 6:
        if (s.fds.length > 0 && prng.chance(0.5)) s.fds.splice(prng.int(s.fds.length), 1);
        else s.fds.push(prng.pick(fdKinds));
        break;
      case 7:
        c.steps.splice(prng.int(c.steps.length + 1), 0, structuredClone(prng.pick(c.steps)));
        break;
      case 8:
        c.level = prng.pick(['fresh', 'negotiated', 'memory', 'rings'] as const);
        c.ack = prng.chance(0.5);
        break;
      default:
        if (c.steps.length > 1) c.steps.splice(prng.int(c.steps.length), 1);
    }
  }
  for (const s of c.steps) {
    s.expect = 'any';
    delete s.cut;
  }
  if (c.steps.length > 16) c.steps.length = 16;
  return c;
}
