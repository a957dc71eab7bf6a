/**
 * The frontend side of vhost-user (what QEMU or DPDK's virtio-user are): connects to a backend's
 * socket and sends it requests, on the same layers as the backend (UnixStreamConnection +
 * MessageChannel). Each typed request resolves when the backend has answered it, if the request
 * expects an answer: GET_* always do; the others only when sent with `needReply` once REPLY_ACK
 * has been negotiated, and then a refusal rejects with a VhostUserError ('ERR_VHOST_USER_NACK').
 *
 * For hostile tests (the fuzzer) there is `sendRaw` (any request, flags, payload and fds),
 * `writeBytes` (any bytes at all, e.g. a header whose size lies or a message cut short) and
 * `expectReply` (the next message the backend sends, whatever it is). `closed` resolves when the
 * connection ends, by either side, with the reason.
 *
 * Replies arrive in order; every message from the backend goes to the oldest request still
 * waiting, or into an inbox that the next `expectReply` (or typed request) reads first.
 */
import { UnixStreamConnection } from '../core/unix-socket.js';
import * as sys from '../core/sys.js';
import { featureWordBytes, featureWordHex, hasFeature, NO_FEATURES, type FeatureWord } from '../core/virtio.js';
import { MessageChannel } from '../vhost-user/message-channel.js';
import type { RawMessage } from '../vhost-user/message-validator.js';
import {
  HEADER_SIZE,
  HeaderFlags,
  MEM_REGION_SIZE,
  MEM_TABLE_HEADER,
  ProtocolFeature,
  Request,
  requestName,
  VERSION,
  VRING_ADDR_SIZE,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
} from '../vhost-user/protocol.js';

const TWO_TO_32 = 4294967296;
const EMPTY = new Uint8Array(0);
const DEFAULT_REPLY_TIMEOUT_MS = 5000;

export type VhostUserErrorCode =
  /** The connection is closed (by either side); `reason` says why. */
  | 'ERR_VHOST_USER_CLOSED'
  /** No reply within the timeout. */
  | 'ERR_VHOST_USER_TIMEOUT'
  /** The backend answered a NEED_REPLY request with a non-zero status. */
  | 'ERR_VHOST_USER_NACK'
  /** The backend's answer is not the reply the request expects. */
  | 'ERR_VHOST_USER_BAD_REPLY'
  /** The request cannot be sent as asked (e.g. needReply without REPLY_ACK). */
  | 'ERR_VHOST_USER_USAGE';

export class VhostUserError extends Error {
  override readonly name = 'VhostUserError';
  constructor(
    readonly code: VhostUserErrorCode,
    message: string,
    /** The request it is about, when there is one. */
    readonly request: number | null = null,
  ) {
    super(message);
  }
}

/** The spec's name of a request: `setMemTable` -> `SET_MEM_TABLE`. */
export function requestSpecName(request: number): string {
  const name = requestName(request);
  return name.startsWith('request ') ? name : name.replace(/([A-Z])/g, '_$1').toUpperCase();
}

export interface VhostUserClientOptions {
  /** How long a typed request waits for its reply (default 5000 ms). */
  readonly replyTimeoutMs?: number;
}

export interface RequestOptions {
  /**
   * Sets NEED_REPLY and waits for the backend's u64 status; a non-zero one rejects. Needs
   * REPLY_ACK negotiated through setProtocolFeatures() first.
   */
  readonly needReply?: boolean;
  /** Overrides the client's reply timeout for this request. */
  readonly timeoutMs?: number;
}

/** A region of SET_MEM_TABLE (the fd is sent, and stays open here). */
export interface FrontendMemoryRegion {
  readonly guestPhysAddr: number;
  readonly size: number;
  /** The region's address in the frontend's address space (rings are given in these). */
  readonly userAddr: number;
  readonly mmapOffset: number;
  readonly fd: number;
}

/** SET_VRING_ADDR: addresses in the frontend's address space. */
export interface VringUserAddresses {
  readonly desc: number;
  readonly used: number;
  readonly avail: number;
  /** The used ring's log address (only with VHOST_VRING_F_LOG in flags); default 0. */
  readonly log?: number;
  /** Bit 0: VHOST_VRING_F_LOG. Default 0. */
  readonly flags?: number;
}

interface Waiter {
  resolve(message: RawMessage): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Writes `value` (an integer in 0..2^53) as a little-endian u64 at `at`. */
function putU64(view: DataView, at: number, value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what}: ${value} is not an integer in 0..2^53`);
  view.setUint32(at, value % TWO_TO_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_TO_32), true);
}

function putU32(view: DataView, at: number, value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_TO_32) throw new RangeError(`${what}: ${value} is not a u32`);
  view.setUint32(at, value, true);
}

/** A feature word as SET_FEATURES and SET_PROTOCOL_FEATURES carry it. */
function featurePayload(features: FeatureWord, what: string): Uint8Array {
  if (features < 0n || features >= 1n << 64n) throw new RangeError(`${what}: ${featureWordHex(features)} is not a u64`);
  return featureWordBytes(features);
}

function u64Payload(value: number, what: string): Uint8Array {
  const bytes = new Uint8Array(8);
  putU64(new DataView(bytes.buffer), 0, value, what);
  return bytes;
}

/** The two u32 of a vring state (SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE). */
function vringStatePayload(index: number, num: number, what: string): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  putU32(view, 0, index, `${what} index`);
  putU32(view, 4, num, what);
  return bytes;
}

/** A 12-byte vhost-user header, for building messages by hand (see writeBytes). */
export function encodeHeader(request: number, flags: number, size: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request >>> 0, true);
  view.setUint32(4, flags >>> 0, true);
  view.setUint32(8, size >>> 0, true);
  return bytes;
}

export class VhostUserClient {
  /** Resolves once the connection has ended, with why (it never rejects). */
  readonly closed: Promise<string>;
  private readonly connection: UnixStreamConnection;
  private readonly channel: MessageChannel;
  private readonly inbox: RawMessage[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly replyTimeoutMs: number;
  private endReason: string | null = null;
  private closingHere = false;
  private resolveClosed: (reason: string) => void = () => {};
  private negotiatedProtocolFeatures: FeatureWord = NO_FEATURES;

  private constructor(connection: UnixStreamConnection, options: VhostUserClientOptions) {
    this.connection = connection;
    this.replyTimeoutMs = options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.channel = new MessageChannel(
      connection,
      (message) => this.received(message),
      (reason) => this.ended(reason),
    );
  }

  /** Connects to a backend listening at `path`. */
  static async connect(path: string, options: VhostUserClientOptions = {}): Promise<VhostUserClient> {
    return new VhostUserClient(UnixStreamConnection.connect(path), options);
  }

  /**
   * Speaks the frontend side over a connection made otherwise, e.g. one a listening frontend
   * accepted from a backend that connects (the backend's client mode).
   */
  static over(connection: UnixStreamConnection, options: VhostUserClientOptions = {}): VhostUserClient {
    return new VhostUserClient(connection, options);
  }

  /** Whether the connection has ended. */
  get isClosed(): boolean {
    return this.endReason !== null;
  }

  /** Why the connection ended; null while it is open. */
  get closeReason(): string | null {
    return this.endReason;
  }

  /** The protocol features last accepted through setProtocolFeatures(). */
  get protocolFeatures(): FeatureWord {
    return this.negotiatedProtocolFeatures;
  }

  /** Whether REPLY_ACK is negotiated, so requests may ask for `needReply`. */
  get replyAck(): boolean {
    return hasFeature(this.negotiatedProtocolFeatures, ProtocolFeature.replyAck);
  }

  /** Messages that arrived with nobody waiting for them (taken by the next expectReply). */
  get pendingMessages(): number {
    return this.inbox.length;
  }

  // ---- raw access (hostile tests, the fuzzer) ----

  /**
   * Sends one message framed correctly (the header's size is the payload's length), with `fds`
   * attached; `flags` goes out as given, version bits included. The fds stay open here.
   */
  sendRaw(request: number, flags: number, payload: Uint8Array, fds: readonly number[] = []): void {
    this.checkOpen(request);
    this.guardWrite(request, () => this.channel.send(request, flags, payload, fds));
  }

  /** Writes arbitrary bytes (and fds with the first one) on the stream: no framing at all. */
  writeBytes(bytes: Uint8Array, fds: readonly number[] = []): void {
    this.checkOpen(null);
    this.guardWrite(null, () => this.connection.write(bytes, fds));
  }

  /**
   * The next message from the backend, whatever it is; rejects with ERR_VHOST_USER_TIMEOUT when
   * none comes within `timeoutMs`, or ERR_VHOST_USER_CLOSED when the connection ends first. Fds
   * that came with it belong to the caller.
   */
  expectReply(timeoutMs: number = this.replyTimeoutMs): Promise<RawMessage> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.endReason !== null) return Promise.reject(this.closedError(null));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const at = this.waiters.indexOf(waiter);
          if (at >= 0) this.waiters.splice(at, 1);
          reject(new VhostUserError('ERR_VHOST_USER_TIMEOUT', `no message from the backend within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Closes the connection (idempotent). Requests still waiting reject with ERR_VHOST_USER_CLOSED. */
  close(): void {
    if (this.endReason !== null) return;
    this.closingHere = true;
    this.channel.close(null);
  }

  // ---- typed requests ----

  /** GET_FEATURES: all 64 bits of the backend's feature word. */
  async getFeatures(): Promise<FeatureWord> {
    return this.getFeatureWord(Request.getFeatures);
  }

  async setFeatures(features: FeatureWord, options?: RequestOptions): Promise<void> {
    await this.request(Request.setFeatures, featurePayload(features, 'SET_FEATURES'), [], options);
  }

  async getProtocolFeatures(): Promise<FeatureWord> {
    return this.getFeatureWord(Request.getProtocolFeatures);
  }

  /**
   * Sets the protocol features; from then on the client knows whether REPLY_ACK is on. A
   * `needReply` here is only possible when REPLY_ACK was negotiated before.
   */
  async setProtocolFeatures(features: FeatureWord, options?: RequestOptions): Promise<void> {
    await this.request(Request.setProtocolFeatures, featurePayload(features, 'SET_PROTOCOL_FEATURES'), [], options);
    this.negotiatedProtocolFeatures = features;
  }

  /** GET_QUEUE_NUM: queue pairs, for a net device (needs the MQ protocol feature). */
  async getQueueNum(): Promise<number> {
    return this.getU64(Request.getQueueNum);
  }

  async setOwner(options?: RequestOptions): Promise<void> {
    await this.request(Request.setOwner, EMPTY, [], options);
  }

  async resetOwner(options?: RequestOptions): Promise<void> {
    await this.request(Request.resetOwner, EMPTY, [], options);
  }

  /** SET_MEM_TABLE; the regions' fds are sent (one per region) and stay open here. */
  async setMemTable(regions: readonly FrontendMemoryRegion[], options?: RequestOptions): Promise<void> {
    const payload = new Uint8Array(MEM_TABLE_HEADER + regions.length * MEM_REGION_SIZE);
    const view = new DataView(payload.buffer);
    view.setUint32(0, regions.length, true);
    regions.forEach((r, i) => {
      const at = MEM_TABLE_HEADER + i * MEM_REGION_SIZE;
      putU64(view, at, r.guestPhysAddr, `region ${i} guest address`);
      putU64(view, at + 8, r.size, `region ${i} size`);
      putU64(view, at + 16, r.userAddr, `region ${i} user address`);
      putU64(view, at + 24, r.mmapOffset, `region ${i} mmap offset`);
    });
    await this.request(Request.setMemTable, payload, regions.map((r) => r.fd), options);
  }

  async setVringNum(index: number, size: number, options?: RequestOptions): Promise<void> {
    await this.request(Request.setVringNum, vringStatePayload(index, size, 'SET_VRING_NUM'), [], options);
  }

  async setVringBase(index: number, base: number, options?: RequestOptions): Promise<void> {
    await this.request(Request.setVringBase, vringStatePayload(index, base, 'SET_VRING_BASE'), [], options);
  }

  /** SET_VRING_ADDR with addresses in the frontend's address space (not guest-physical). */
  async setVringAddr(index: number, addresses: VringUserAddresses, options?: RequestOptions): Promise<void> {
    const payload = new Uint8Array(VRING_ADDR_SIZE);
    const view = new DataView(payload.buffer);
    putU32(view, 0, index, 'SET_VRING_ADDR index');
    putU32(view, 4, addresses.flags ?? 0, 'SET_VRING_ADDR flags');
    putU64(view, 8, addresses.desc, 'descriptor table address');
    putU64(view, 16, addresses.used, 'used ring address');
    putU64(view, 24, addresses.avail, 'available ring address');
    putU64(view, 32, addresses.log ?? 0, 'log address');
    await this.request(Request.setVringAddr, payload, [], options);
  }

  /** SET_VRING_KICK; `fd` null sends the NOFD flag instead of an fd. */
  async setVringKick(index: number, fd: number | null, options?: RequestOptions): Promise<void> {
    await this.vringFd(Request.setVringKick, index, fd, options);
  }

  /** SET_VRING_CALL; `fd` null sends the NOFD flag (the frontend polls the used ring). */
  async setVringCall(index: number, fd: number | null, options?: RequestOptions): Promise<void> {
    await this.vringFd(Request.setVringCall, index, fd, options);
  }

  /** SET_VRING_ERR; `fd` null sends the NOFD flag. */
  async setVringErr(index: number, fd: number | null, options?: RequestOptions): Promise<void> {
    await this.vringFd(Request.setVringErr, index, fd, options);
  }

  async setVringEnable(index: number, enable: boolean, options?: RequestOptions): Promise<void> {
    await this.request(Request.setVringEnable, vringStatePayload(index, enable ? 1 : 0, 'SET_VRING_ENABLE'), [], options);
  }

  /** GET_VRING_BASE: stops the ring; resolves to the avail index to resume from. */
  async getVringBase(index: number, options?: Pick<RequestOptions, 'timeoutMs'>): Promise<number> {
    this.sendRaw(Request.getVringBase, VERSION, vringStatePayload(index, 0, 'GET_VRING_BASE'), []);
    const reply = await this.receiveReply(Request.getVringBase, 8, options?.timeoutMs);
    const view = new DataView(reply.payload.buffer, reply.payload.byteOffset, 8);
    const replyIndex = view.getUint32(0, true);
    if (replyIndex !== index) {
      throw new VhostUserError('ERR_VHOST_USER_BAD_REPLY', `GET_VRING_BASE: asked about vring ${index}, the reply is about vring ${replyIndex}`, Request.getVringBase);
    }
    return view.getUint32(4, true);
  }

  /** GET_STATUS (needs the STATUS protocol feature). */
  async getStatus(): Promise<number> {
    return this.getU64(Request.getStatus);
  }

  /** SET_STATUS (needs the STATUS protocol feature); 0 resets the device. */
  async setStatus(status: number, options?: RequestOptions): Promise<void> {
    await this.request(Request.setStatus, u64Payload(status, 'SET_STATUS'), [], options);
  }

  // ---- internals ----

  private async vringFd(request: number, index: number, fd: number | null, options: RequestOptions | undefined): Promise<void> {
    const name = requestSpecName(request);
    if (!Number.isInteger(index) || index < 0 || index > VRING_INDEX_MASK) throw new RangeError(`${name}: vring index ${index} does not fit the 8-bit index field`);
    const payload = u64Payload(index | (fd === null ? VRING_NOFD_MASK : 0), name);
    await this.request(request, payload, fd === null ? [] : [fd], options);
  }

  /** Sends a request without reply of its own; with needReply, waits for the REPLY_ACK status. */
  private async request(request: number, payload: Uint8Array, fds: readonly number[], options: RequestOptions | undefined): Promise<void> {
    const needReply = options?.needReply ?? false;
    const name = requestSpecName(request);
    if (needReply && !this.replyAck) {
      throw new VhostUserError('ERR_VHOST_USER_USAGE', `${name}: needReply asked for, but REPLY_ACK is not negotiated (the backend would not answer)`, request);
    }
    this.sendRaw(request, VERSION | (needReply ? HeaderFlags.needReply : 0), payload, fds);
    if (!needReply) return;
    const reply = await this.receiveReply(request, 8, options?.timeoutMs);
    const view = new DataView(reply.payload.buffer, reply.payload.byteOffset, 8);
    const low = view.getUint32(0, true);
    const high = view.getUint32(4, true);
    if (low !== 0 || high !== 0) {
      const status = high === 0 ? String(low) : `0x${high.toString(16)}${low.toString(16).padStart(8, '0')}`;
      throw new VhostUserError('ERR_VHOST_USER_NACK', `${name}: the backend refused the request (REPLY_ACK status ${status})`, request);
    }
  }

  /** A u64 reply read whole, every bit (GET_FEATURES, GET_PROTOCOL_FEATURES). */
  private async getFeatureWord(request: number): Promise<FeatureWord> {
    this.sendRaw(request, VERSION, EMPTY, []);
    const reply = await this.receiveReply(request, 8);
    return new DataView(reply.payload.buffer, reply.payload.byteOffset, 8).getBigUint64(0, true);
  }

  private async getU64(request: number): Promise<number> {
    this.sendRaw(request, VERSION, EMPTY, []);
    const reply = await this.receiveReply(request, 8);
    const view = new DataView(reply.payload.buffer, reply.payload.byteOffset, 8);
    const high = view.getUint32(4, true);
    if (high >= 0x200000) {
      throw new VhostUserError('ERR_VHOST_USER_BAD_REPLY', `${requestSpecName(request)}: the reply 0x${high.toString(16)}... does not fit 53 bits`, request);
    }
    return view.getUint32(0, true) + high * TWO_TO_32;
  }

  /** The next message, which must be the reply to `request` with a `size`-byte payload. */
  private async receiveReply(request: number, size: number, timeoutMs?: number): Promise<RawMessage> {
    const name = requestSpecName(request);
    let message: RawMessage;
    try {
      message = await this.expectReply(timeoutMs ?? this.replyTimeoutMs);
    } catch (error) {
      if (error instanceof VhostUserError) throw new VhostUserError(error.code, `${name}: ${error.message}`, request);
      throw error;
    }
    for (const fd of message.fds) sys.close(fd); // no reply carries fds
    const problems: string[] = [];
    if (message.request !== request) problems.push(`it answers ${requestSpecName(message.request)}`);
    if ((message.flags & HeaderFlags.reply) === 0) problems.push('the reply flag is not set');
    if (message.payload.length !== size) problems.push(`its payload is ${message.payload.length} bytes, expected ${size}`);
    if (message.fds.length > 0) problems.push(`it came with ${message.fds.length} file descriptors`);
    if (problems.length > 0) throw new VhostUserError('ERR_VHOST_USER_BAD_REPLY', `${name}: unexpected reply: ${problems.join('; ')}`, request);
    return message;
  }

  /** A write the backend can no longer read (it closed its end) throws ERR_VHOST_USER_CLOSED. */
  private guardWrite(request: number | null, write: () => void): void {
    try {
      write();
    } catch (error) {
      if (sys.isSysError(error, 'EPIPE') || sys.isSysError(error, 'ECONNRESET')) {
        const what = request === null ? '' : `${requestSpecName(request)}: `;
        throw new VhostUserError('ERR_VHOST_USER_CLOSED', `${what}the backend closed the connection (${error.code})`, request);
      }
      throw error;
    }
  }

  private checkOpen(request: number | null): void {
    if (this.endReason !== null) throw this.closedError(request);
  }

  private closedError(request: number | null): VhostUserError {
    const what = request === null ? '' : `${requestSpecName(request)}: `;
    return new VhostUserError('ERR_VHOST_USER_CLOSED', `${what}the connection is closed (${this.endReason})`, request);
  }

  private received(message: RawMessage): void {
    const waiter = this.waiters.shift();
    if (!waiter) {
      this.inbox.push(message);
      return;
    }
    clearTimeout(waiter.timer);
    waiter.resolve(message);
  }

  private ended(reason: string | null): void {
    this.endReason = reason ?? (this.closingHere ? 'closed by the frontend' : 'the backend closed the connection');
    const error = this.closedError(null);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.resolveClosed(this.endReason);
  }
}
