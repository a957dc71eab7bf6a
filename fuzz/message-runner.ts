/**
 * Runs one message case: connects, sets the backend up validly to the case's level, sends the
 * steps (framed or raw, with whatever fds they name), and observes each reaction: a reply (and
 * its REPLY_ACK status), a disconnect, or silence. A step without a reply of its own is followed
 * by GET_FEATURES, whose answer proves the backend read past it. Afterwards the backend's
 * refusal counters must show the case's reason.
 */
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  commonFeatures,
  FeatureBit,
  featureMask,
  HeaderFlags,
  PROTOCOL_FEATURES_BIT,
  ProtocolFeature,
  Request,
  requestName,
  sys,
  VERSION,
  type RawMessage,
  type FeatureWord,
} from 'vfio-user-ts';
import { encodeHeader, VhostUserError, type VhostUserClient } from 'vfio-user-ts/vhost-user-frontend';
import { connectClient } from './connect.js';
import { GUEST_BASE, MEMORY_BYTES } from './layout.js';
import { ringUserAddresses, USER_BASE, type FdKind, type MessageCase, type MessageStep, type SetupLevel } from './message-cases.js';
import { grown, snapshot, type Snapshot } from './snapshot.js';
import type { Target } from './target.js';

export type StepOutcome = 'ok' | 'refused' | 'disconnect' | 'closed' | 'timeout' | 'garbled' | 'skipped';

export interface MessageOutcome {
  readonly outcomes: StepOutcome[];
  readonly mismatches: string[];
  /** Refusal counters that grew (null without a control socket). */
  readonly protocol: Record<string, number> | null;
  /** Error kinds reached: `protocol:<reason>`. */
  readonly kinds: string[];
  /** A finer signature for coverage: request and outcome of every step. */
  readonly signature: string[];
}

export interface MessageRunOptions {
  /** Reply timeout for steps whose reaction is known (default 2000 ms). */
  readonly replyTimeoutMs?: number;
  /** Reply timeout for `any` steps (default 150 ms): storms often leave the backend waiting. */
  readonly anyTimeoutMs?: number;
}

const GET_REQUESTS: ReadonlySet<number> = new Set([Request.getFeatures, Request.getProtocolFeatures, Request.getQueueNum, Request.getVringBase, Request.getStatus]);
const SELF_FILE = fileURLToPath(import.meta.url);

/** fds opened for one case, closed when it ends (the backend got its own copies). */
class FdPool {
  private readonly fds: number[] = [];

  make(kind: FdKind): number {
    let fd: number;
    switch (kind) {
      case 'eventfd':
        fd = sys.eventfdCreate(0, true);
        break;
      case 'memfd':
        fd = sys.memfdCreate('zcnic-fuzz', MEMORY_BYTES);
        break;
      case 'smallMemfd':
        fd = sys.memfdCreate('zcnic-fuzz-small', 4096);
        break;
      case 'devnull':
        fd = openSync('/dev/null', 'r+');
        break;
      case 'readonly':
        fd = openSync(SELF_FILE, 'r');
        break;
    }
    this.fds.push(fd);
    return fd;
  }

  closeAll(): void {
    for (const fd of this.fds.splice(0)) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

const WANTED_FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringIndirectDesc, FeatureBit.ringEventIdx);

/** Brings a fresh connection to `level` with valid messages; returns whether REPLY_ACK is on. */
async function setUpTo(client: VhostUserClient, offered: FeatureWord, level: SetupLevel, ack: boolean, pool: FdPool): Promise<boolean> {
  if (level === 'fresh') return false;
  const offeredProtocol = await client.getProtocolFeatures();
  const wanted = featureMask(...(ack ? [ProtocolFeature.replyAck] : []), ProtocolFeature.mq, ProtocolFeature.status);
  await client.setProtocolFeatures(commonFeatures(offeredProtocol, wanted));
  const replyAck = client.replyAck;
  const opt = { needReply: replyAck };
  await client.setOwner(opt);
  await client.setFeatures(commonFeatures(offered, WANTED_FEATURES) | featureMask(PROTOCOL_FEATURES_BIT), opt);
  if (level !== 'negotiated') {
    await client.setMemTable([{ guestPhysAddr: GUEST_BASE, size: MEMORY_BYTES, userAddr: USER_BASE, mmapOffset: 0, fd: pool.make('memfd') }], opt);
    if (level === 'rings') {
      for (let index = 0; index < 2; index++) {
        const rings = ringUserAddresses(index);
        await client.setVringNum(index, 256, opt);
        await client.setVringBase(index, 0, opt);
        await client.setVringAddr(index, rings, opt);
        await client.setVringKick(index, pool.make('eventfd'), opt);
        await client.setVringCall(index, pool.make('eventfd'), opt);
        await client.setVringEnable(index, true, opt);
      }
    }
  }
  // Without REPLY_ACK nothing above was answered: one round trip proves it was all accepted.
  if (!replyAck) await client.getFeatures();
  return replyAck;
}

function frame(step: MessageStep, flags: number): Uint8Array {
  if (step.raw) return Uint8Array.from(step.raw);
  const header = encodeHeader(step.request, flags, step.size ?? step.payload.length);
  const bytes = new Uint8Array(header.length + step.payload.length);
  bytes.set(header);
  bytes.set(step.payload, header.length);
  return bytes;
}

async function nextMessage(client: VhostUserClient, timeoutMs: number): Promise<RawMessage | StepOutcome> {
  try {
    const message = await client.expectReply(timeoutMs);
    for (const fd of message.fds) sys.close(fd);
    return message;
  } catch (error) {
    if (error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_TIMEOUT') return 'timeout';
    if (error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_CLOSED') return 'disconnect';
    throw error;
  }
}

/** GET_FEATURES: does the backend still read and answer us? */
async function probe(client: VhostUserClient, timeoutMs: number): Promise<StepOutcome> {
  if (client.isClosed) return 'disconnect';
  try {
    client.sendRaw(Request.getFeatures, VERSION, new Uint8Array(0));
  } catch (error) {
    if (error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_CLOSED') return 'disconnect';
    throw error;
  }
  const reply = await nextMessage(client, timeoutMs);
  if (typeof reply === 'string') return reply;
  return reply.request === Request.getFeatures && reply.payload.length === 8 ? 'ok' : 'garbled';
}

function expectedOutcome(step: MessageStep, ackAsked: boolean): StepOutcome | null {
  switch (step.expect) {
    case 'reject':
      return ackAsked ? 'refused' : 'disconnect';
    case 'ok':
      return 'ok';
    case 'disconnect':
      return 'disconnect';
    case 'closed':
      return 'closed';
    case 'any':
      return null;
  }
}

async function sendStep(client: VhostUserClient, step: MessageStep, replyAck: boolean, pool: FdPool, timeoutMs: number): Promise<{ outcome: StepOutcome; ackAsked: boolean }> {
  const flags = (step.flags ?? VERSION | (replyAck ? HeaderFlags.needReply : 0)) >>> 0;
  const ackAsked = !step.raw && replyAck && (flags & HeaderFlags.needReply) !== 0 && (flags & HeaderFlags.versionMask) === VERSION;
  let bytes = frame(step, flags);
  if (step.cut !== undefined) bytes = bytes.subarray(0, Math.max(1, Math.min(step.cut, bytes.length)));
  if (bytes.length === 0) return { outcome: 'skipped', ackAsked };
  const fds = step.fds.map((kind) => pool.make(kind));
  try {
    client.writeBytes(bytes, fds);
  } catch (error) {
    if (error instanceof VhostUserError && error.code === 'ERR_VHOST_USER_CLOSED') return { outcome: 'disconnect', ackAsked };
    throw error;
  } finally {
    pool.closeAll();
  }
  if (step.cut !== undefined || step.expect === 'closed') {
    client.close();
    return { outcome: 'closed', ackAsked };
  }
  const isGet = !step.raw && GET_REQUESTS.has(step.request);
  if (!isGet && !ackAsked) return { outcome: await probe(client, timeoutMs), ackAsked };
  const reply = await nextMessage(client, timeoutMs);
  if (typeof reply === 'string') return { outcome: reply, ackAsked };
  if (reply.request !== (step.request >>> 0)) return { outcome: 'garbled', ackAsked };
  if (isGet && !ackAsked) return { outcome: 'ok', ackAsked };
  if (reply.payload.length !== 8) return { outcome: 'garbled', ackAsked };
  const view = new DataView(reply.payload.buffer, reply.payload.byteOffset, 8);
  const status = view.getUint32(0, true) + view.getUint32(4, true);
  return { outcome: status === 0 || isGet ? 'ok' : 'refused', ackAsked };
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runMessageCase(target: Target, c: MessageCase, options: MessageRunOptions = {}): Promise<MessageOutcome> {
  const definiteTimeout = options.replyTimeoutMs ?? 2000;
  const anyTimeout = options.anyTimeoutMs ?? 150;
  const before: Snapshot | null = target.hasControl ? snapshot(await target.stats()) : null;
  const pool = new FdPool();
  const outcomes: StepOutcome[] = [];
  const mismatches: string[] = [];
  const signature: string[] = [];
  const { client, offered } = await connectClient(target.socketPath, definiteTimeout);
  let definite = true;
  let ended = false;
  try {
    let replyAck: boolean;
    try {
      replyAck = await setUpTo(client, offered, c.level, c.ack, pool);
    } catch (error) {
      throw new Error(`valid setup to level "${c.level}" failed: ${(error as Error).message}`);
    } finally {
      pool.closeAll();
    }
    for (const [i, step] of c.steps.entries()) {
      const timeout = step.expect === 'any' ? anyTimeout : definiteTimeout;
      if (client.isClosed) {
        outcomes.push('skipped');
        continue;
      }
      const { outcome, ackAsked } = await sendStep(client, step, replyAck, pool, timeout);
      outcomes.push(outcome);
      signature.push(`${step.raw ? 'raw' : requestName(step.request >>> 0)}:${outcome}`);
      const wanted = expectedOutcome(step, ackAsked);
      if (wanted === null) definite = false;
      else if (wanted !== outcome) {
        const what = step.raw ? `raw bytes (${step.raw.length})` : `${requestName(step.request >>> 0)} (step ${i + 1})`;
        mismatches.push(`${what}: expected ${wanted}, got ${outcome}`);
      }
      if (outcome === 'disconnect' || outcome === 'closed' || outcome === 'timeout' || outcome === 'garbled') {
        ended = true;
        break;
      }
    }
    if (!ended && !client.isClosed && definite && mismatches.length === 0) {
      const alive = await probe(client, definiteTimeout);
      if (alive !== 'ok') mismatches.push(`the backend stopped answering after the case (${alive})`);
    }
  } finally {
    client.close();
    pool.closeAll();
  }

  let protocol: Record<string, number> | null = null;
  if (before) {
    // A disconnect we caused is seen by the backend a moment later.
    const wantsCount = outcomes.some((o) => o === 'refused' || o === 'disconnect' || o === 'closed');
    const deadline = Date.now() + (wantsCount ? 500 : 0);
    for (;;) {
      protocol = grown(before.protocolErrors, snapshot(await target.stats()).protocolErrors);
      const counted = c.reason ? Object.keys(protocol).some((k) => new RegExp(c.reason!).test(k)) : Object.keys(protocol).length > 0;
      if (!wantsCount || counted || Date.now() > deadline) break;
      await pause(2);
    }
    // An exception inside the backend's message handling is a bug, whatever the message was.
    if (protocol['internal error']) mismatches.push('the backend threw while handling the case (internal error; its log has the stack)');
    if (c.reason && mismatches.length === 0 && !Object.keys(protocol).some((k) => new RegExp(c.reason!).test(k))) {
      mismatches.push(`no refusal counted with reason /${c.reason}/ (counted: ${JSON.stringify(protocol)})`);
    }
  }
  const kinds = protocol ? Object.keys(protocol).map((k) => `protocol:${k}`) : [];
  return { outcomes, mismatches, protocol, kinds, signature };
}
