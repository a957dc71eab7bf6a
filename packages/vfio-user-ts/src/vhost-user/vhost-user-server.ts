/**
 * The backend side of vhost-user: listens on a unix socket (mode 0600), serves one frontend at a
 * time (QEMU, DPDK's virtio-user, our fuzzer), accepts the next after a disconnect. It validates
 * every message (message-validator.ts) before acting, keeps the per-virtqueue state the protocol
 * builds up (size, addresses, base, kick/call/err fds, enable), and starts a queue on the device
 * when everything it needs is there. Protocol errors never throw past the connection: a bad
 * message gets a REPLY_ACK failure when the frontend asked for one, otherwise the connection is
 * closed with one log line saying what was wrong. Each refusal and each disconnect the frontend
 * caused is also counted by reason (protocolErrorCounts()), for the device's stats.
 *
 * The device behind it is transport-independent (VirtioDevice); a vfio-user server would
 * drive the same interface.
 */
import { readlinkSync } from 'node:fs';
import { checkRegions, MemoryTable, type MemoryRegion } from '../core/memory-table.js';
import { RateLimitedLog, type LogSink } from '../core/rate-limited-log.js';
import * as sys from '../core/sys.js';
import type { UnixStreamConnection } from '../core/unix-socket.js';
import type { VirtioDevice, VirtqueueSetup } from '../core/virtio-device.js';
import { DeviceStatus, FeatureBit, featureMask, featuresWithin, featureWordBytes, featureWordHex, hasFeature, NO_FEATURES, type FeatureWord } from '../core/virtio.js';
import { ConnectingSource, ListeningSource, type ConnectionSource } from './connection-source.js';
import { MessageChannel } from './message-channel.js';
import { validateMessage, type RawMessage, type VhostUserMessage } from './message-validator.js';
import { HeaderFlags, inflightMessage, inflightQueueBytes, MAX_MEM_REGIONS, PROTOCOL_FEATURES_BIT, ProtocolFeature, Request, requestName } from './protocol.js';

/** The inflight region the frontend gave (SET_INFLIGHT_FD) or we made (GET_INFLIGHT_FD). */
interface InflightRegion {
  fd: number;
  mmapOffset: number;
  mmapSize: number;
  queues: number;
  queueSize: number;
}

/** Distinct refusal reasons counted; later new ones are counted as 'other'. */
const MAX_PROTOCOL_ERROR_KINDS = 200;

/** A refusal reason as a counter name: the same for every message that broke the same rule. */
export function protocolErrorKind(reason: string): string {
  return reason.replace(/0x[0-9a-f]+/gi, 'N').replace(/\d+/g, 'N');
}

/** Whether `fd` is an eventfd (what kick, call and err fds must be: the datapath reads and writes them as such). */
function isEventfd(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventfd]';
  } catch {
    return false;
  }
}

/** Inflight regions are laid out for split rings only (InflightSplit); a packed ring runs without one. */
const PACKED_INFLIGHT_REFUSAL = 'inflight regions of packed rings (InflightPacked) are not supported: the device keeps split rings\' only';

/** The bytes of a ring's three areas from their addresses: split (2.7) or packed (2.8: two 4-byte event suppression structures). */
function ringAreaBytes(size: number, packed: boolean): { desc: number; avail: number; used: number } {
  return packed ? { desc: 16 * size, avail: 4, used: 4 } : { desc: 16 * size, avail: 6 + 2 * size, used: 6 + 8 * size };
}

const OFFERED_PROTOCOL_FEATURES = featureMask(
  ProtocolFeature.mq,
  ProtocolFeature.replyAck,
  ProtocolFeature.netMtu,
  ProtocolFeature.inflightShmfd,
  ProtocolFeature.resetDevice,
  ProtocolFeature.status,
);

interface VringState {
  size: number;
  desc: number;
  used: number;
  avail: number;
  hasAddresses: boolean;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  /** SET_VRING_KICK seen (the ring is started, in the spec's words) and not stopped since. */
  started: boolean;
  enabled: boolean;
  running: boolean;
}

function freshVring(): VringState {
  return { size: 0, desc: 0, used: 0, avail: 0, hasAddresses: false, base: 0, kickFd: -1, callFd: -1, errFd: -1, started: false, enabled: false, running: false };
}

function u64Payload(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, value % 4294967296, true);
  view.setUint32(4, Math.floor(value / 4294967296), true);
  return bytes;
}

/** A message's decoded fields for --trace (JSON, a feature word in hex). */
function traceFields(message: VhostUserMessage): string {
  return JSON.stringify({ ...message, request: undefined, kind: undefined }, (_key, value: unknown) => (typeof value === 'bigint' ? featureWordHex(value) : value));
}

export interface VhostUserServerOptions {
  /**
   * Where connections come from: a path to listen on (the usual arrangement), a path of a
   * listening frontend to connect to (QEMU `server=on`), or any ConnectionSource.
   */
  readonly socketPath?: string;
  readonly connectPath?: string;
  readonly source?: ConnectionSource;
  readonly device: VirtioDevice;
  readonly log: LogSink;
  /** Log every message (request and decoded fields) as it arrives. */
  readonly trace?: boolean;
}

export class VhostUserServer {
  private readonly source: ConnectionSource;
  private readonly device: VirtioDevice;
  private readonly log: RateLimitedLog;
  private channel: MessageChannel | null = null;
  private readonly vrings: VringState[];
  private memory: MemoryTable | null = null;
  private features: FeatureWord = NO_FEATURES;
  private protocolFeatures: FeatureWord = NO_FEATURES;
  private featuresSet = false;
  private status = 0;
  private inflight: InflightRegion | null = null;
  /** SET_BACKEND_REQ_FD's socket (see offeredProtocolFeatures), or -1. */
  private backendReqFd = -1;
  /** Messages are handled one at a time, in order, even when handling one waits for the device. */
  private work: Promise<void> = Promise.resolve();
  private connections = 0;
  private closing = false;
  private readonly trace: boolean;
  private readonly protocolErrors = new Map<string, number>();

  constructor(options: VhostUserServerOptions) {
    this.device = options.device;
    this.log = new RateLimitedLog(options.log);
    this.trace = options.trace ?? false;
    this.vrings = Array.from({ length: options.device.queuePairs * 2 }, freshVring);
    const given = [options.socketPath, options.connectPath, options.source].filter((x) => x !== undefined).length;
    if (given !== 1) throw new TypeError('VhostUserServer: give exactly one of socketPath, connectPath, source');
    this.source =
      options.source ??
      (options.connectPath !== undefined
        ? new ConnectingSource(options.connectPath, { log: (line) => options.log(line) })
        : new ListeningSource(options.socketPath!));
    this.source.start((connection) => this.accept(connection));
  }

  /** "listening on PATH" or "connecting to PATH". */
  get description(): string {
    return this.source.description;
  }

  /** Offered virtio features, with vhost-user's protocol-features bit. */
  get offeredFeatures(): FeatureWord {
    return this.device.features | featureMask(PROTOCOL_FEATURES_BIT);
  }

  /**
   * Offered protocol features. BACKEND_REQ only with ACCESS_PLATFORM: QEMU refuses a backend
   * that offers ACCESS_PLATFORM without it and REPLY_ACK (vhost_user_backend_init), because
   * with a vIOMMU the backend would ask for IOTLB entries on that channel. Without a vIOMMU
   * nothing is ever sent on it; the backend keeps the fd and never writes.
   */
  get offeredProtocolFeatures(): FeatureWord {
    return hasFeature(this.device.features, FeatureBit.accessPlatform) ? OFFERED_PROTOCOL_FEATURES | featureMask(ProtocolFeature.backendReq) : OFFERED_PROTOCOL_FEATURES;
  }

  get connected(): boolean {
    return this.channel !== null;
  }

  /** Refusals and frontend-caused disconnects so far, by kind (protocolErrorKind of the reason). */
  protocolErrorCounts(): Record<string, number> {
    return Object.fromEntries(this.protocolErrors);
  }

  private countProtocolError(reason: string): void {
    let kind = protocolErrorKind(reason);
    if (!this.protocolErrors.has(kind) && this.protocolErrors.size >= MAX_PROTOCOL_ERROR_KINDS) kind = 'other';
    this.protocolErrors.set(kind, (this.protocolErrors.get(kind) ?? 0) + 1);
  }

  /** Signals the frontend that a vring broke (SET_VRING_ERR's eventfd), if it gave one. */
  signalVringError(index: number): void {
    const fd = this.vrings[index]?.errFd ?? -1;
    if (fd >= 0) sys.eventfdWrite(fd, 1);
  }

  /**
   * Closes the frontend's connection for something it did outside the protocol (e.g. it truncated
   * guest memory under the device): logged as one disconnect line with `reason` and counted
   * under it, like a refusal; the next frontend finds a reset device.
   */
  disconnect(reason: string): void {
    this.channel?.close(reason);
  }

  /** Stops serving: closes the connection (stopping its queues) and the listening socket. */
  async close(): Promise<void> {
    this.closing = true;
    this.source.close();
    this.channel?.close('backend shutting down');
    await this.work;
  }

  private accept(connection: UnixStreamConnection): void {
    if (this.channel || this.closing) {
      this.log.log('vhost-user: refusing a second frontend while one is connected');
      connection.close();
      return;
    }
    const id = ++this.connections;
    this.log.log(`vhost-user: frontend ${id} connected`);
    const channel: MessageChannel = new MessageChannel(
      connection,
      (message) => this.enqueue(() => this.handle(message, channel), channel),
      (reason) => {
        this.log.log(`vhost-user: frontend ${id} disconnected${reason ? `: ${reason}` : ''}`);
        if (reason && !this.closing) this.countProtocolError(reason);
        this.channel = null;
        this.enqueue(async () => {
          await this.resetConnectionState();
          // Only now may the next frontend come: its messages must find a clean state.
          if (!this.closing) this.source.connectionEnded();
        }, null);
      },
    );
    this.channel = channel;
  }

  /** Runs `task` after everything queued before it; a throw closes the connection it came from. */
  private enqueue(task: () => Promise<void>, channel: MessageChannel | null): void {
    this.work = this.work.then(task).catch((error: unknown) => {
      this.log.log(`vhost-user: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      channel?.close('internal error');
    });
  }

  private async handle(raw: RawMessage, channel: MessageChannel): Promise<void> {
    // A message queued behind a slow one from a frontend that has since left is not for the
    // next frontend: drop it (and its fds).
    if (channel !== this.channel) {
      for (const fd of raw.fds) sys.close(fd);
      return;
    }
    const validated = validateMessage(raw, { queueCount: this.vrings.length, maxRegions: MAX_MEM_REGIONS, packedRing: this.packedRing });
    const wantsAck = (raw.flags & HeaderFlags.needReply) !== 0 && hasFeature(this.protocolFeatures, ProtocolFeature.replyAck);
    if (!validated.ok) {
      for (const fd of raw.fds) sys.close(fd);
      return this.refuse(channel, raw.request, wantsAck, validated.error);
    }
    if (this.trace) this.log.log(`vhost-user: ${requestName(raw.request)} ${traceFields(validated.message)}`);
    const result = await this.apply(validated.message);
    if (result.reply) {
      channel.reply(raw.request, result.reply, result.replyFds ?? []);
    }
    else if (result.error !== null) this.refuse(channel, raw.request, wantsAck, `${requestName(raw.request)}: ${result.error}`);
    else if (wantsAck) channel.reply(raw.request, u64Payload(0));
  }

  /** A message we cannot act on: a failed REPLY_ACK if one was asked for, else a disconnect. */
  private refuse(channel: MessageChannel, request: number, wantsAck: boolean, error: string): void {
    if (wantsAck) {
      this.log.log(`vhost-user: refused ${error}`);
      this.countProtocolError(error);
      channel.reply(request, u64Payload(1));
    } else {
      // The disconnect handler logs the reason: one line per refusal.
      channel.close(error);
    }
  }

  private async apply(message: VhostUserMessage): Promise<{ reply?: Uint8Array; replyFds?: number[]; error: string | null }> {
    const ok = { error: null };
    switch (message.kind) {
      case 'empty':
        switch (message.request) {
          case Request.getFeatures:
            return { reply: featureWordBytes(this.offeredFeatures), error: null };
          case Request.getProtocolFeatures:
            return { reply: featureWordBytes(this.offeredProtocolFeatures), error: null };
          case Request.getQueueNum:
            return { reply: u64Payload(this.device.queuePairs), error: null };
          case Request.getStatus:
            return { reply: u64Payload(this.status | (this.device.needsReset ? DeviceStatus.needsReset : 0)), error: null };
          case Request.setOwner:
            return ok;
          default: // RESET_OWNER, RESET_DEVICE
            await this.resetDevice();
            return ok;
        }
      case 'features':
        return this.applyFeatures(message.request, message.value);
      case 'u64':
        return this.applyU64(message.request, message.value);
      case 'memTable':
        return { error: await this.setMemTable(message.regions) };
      case 'vringState':
        return this.applyVringState(message.request, message.index, message.num);
      case 'vringAddr': {
        const vring = this.vrings[message.index]!;
        if (vring.running) return { error: `vring ${message.index} is running` };
        Object.assign(vring, { desc: message.desc, used: message.used, avail: message.avail, hasAddresses: true });
        return { error: await this.startIfReady(message.index) };
      }
      case 'vringFd':
        return { error: await this.setVringFd(message.request, message.index, message.fd) };
      case 'fd':
        if (message.request === Request.setBackendReqFd && hasFeature(this.protocolFeatures, ProtocolFeature.backendReq)) {
          if (this.backendReqFd >= 0) sys.close(this.backendReqFd);
          this.backendReqFd = message.fd;
          return ok;
        }
        sys.close(message.fd);
        return { error: message.request === Request.setLogFd ? 'dirty logging is not supported' : 'the backend request channel is not offered' };
      case 'logBase':
        sys.close(message.fd);
        return { error: 'dirty logging (live migration) is not supported: LOG_SHMFD was not offered' };
      case 'getInflight':
        return this.getInflight(message.queues, message.queueSize);
      case 'setInflight':
        return { error: this.setInflight(message) };
    }
  }

  /** RING_PACKED was negotiated: the rings' areas and bases take the packed layout (virtio 1.2 2.8). */
  private get packedRing(): boolean {
    return hasFeature(this.features, FeatureBit.ringPacked);
  }

  /**
   * GET_INFLIGHT_FD: a zeroed memfd laid out for the frontend's queues (split layout). It is
   * also the region in use until the frontend sends one back with SET_INFLIGHT_FD.
   */
  private getInflight(queues: number, queueSize: number): { reply?: Uint8Array; replyFds?: number[]; error: string | null } {
    if (this.packedRing) return { error: PACKED_INFLIGHT_REFUSAL };
    const mmapSize = queues * inflightQueueBytes(queueSize);
    const fd = sys.memfdCreate('zcnic-inflight', mmapSize);
    this.replaceInflight({ fd, mmapOffset: 0, mmapSize, queues, queueSize });
    return { reply: inflightMessage({ mmapSize, mmapOffset: 0, queues, queueSize }), replyFds: [fd], error: null };
  }

  private setInflight(message: Extract<VhostUserMessage, { kind: 'setInflight' }>): string | null {
    const { fd, mmapOffset, mmapSize, queues, queueSize } = message;
    if (this.packedRing) {
      sys.close(fd);
      return PACKED_INFLIGHT_REFUSAL;
    }
    let bytes: number;
    try {
      bytes = sys.fileSize(fd);
    } catch (error) {
      sys.close(fd);
      return `cannot tell the size of the inflight region's file (${(error as Error).message})`;
    }
    if (mmapOffset + mmapSize > bytes) {
      sys.close(fd);
      return `inflight region [0x${mmapOffset.toString(16)}+0x${mmapSize.toString(16)}) is beyond its file's ${bytes} bytes`;
    }
    const running = this.vrings.findIndex((v) => v.running);
    if (running >= 0) {
      sys.close(fd);
      return `vring ${running} is running`;
    }
    this.replaceInflight({ fd, mmapOffset, mmapSize, queues, queueSize });
    return null;
  }

  private replaceInflight(region: InflightRegion | null): void {
    if (this.inflight) sys.close(this.inflight.fd);
    this.inflight = region;
  }

  private async applyFeatures(request: number, value: FeatureWord): Promise<{ error: string | null }> {
    if (request === Request.setProtocolFeatures) {
      if (!featuresWithin(value, this.offeredProtocolFeatures)) return { error: `protocol features ${featureWordHex(value)} include bits not offered` };
      this.protocolFeatures = value;
      return { error: null };
    }
    if (!featuresWithin(value, this.offeredFeatures)) return { error: `features ${featureWordHex(value)} include bits not offered (${featureWordHex(this.offeredFeatures)})` };
    // QEMU sets ACCESS_PLATFORM only when a vIOMMU translates addresses (vhost_dev_has_iommu),
    // and then sends IOTLB messages, which this backend does not take (no PROTOCOL_F_IOTLB).
    if (hasFeature(value, FeatureBit.accessPlatform)) return { error: 'ACCESS_PLATFORM with an IOMMU translating the addresses needs IOTLB messages, which this backend does not handle: run the guest without a vIOMMU' };
    this.features = value;
    this.featuresSet = true;
    return { error: await this.startAllReady() };
  }

  private async applyU64(request: number, value: number): Promise<{ error: string | null }> {
    switch (request) {
      case Request.setStatus:
        if (value > 0xff) return { error: `status 0x${value.toString(16)} is wider than 8 bits` };
        this.status = value;
        if (value === 0) await this.resetDevice();
        return { error: null };
      default: // NET_SET_MTU, SEND_RARP: nothing for the backend to do
        return { error: null };
    }
  }

  private async applyVringState(request: number, index: number, num: number): Promise<{ reply?: Uint8Array; error: string | null }> {
    const vring = this.vrings[index]!;
    switch (request) {
      case Request.setVringNum:
        if (vring.running) return { error: `vring ${index} is running` };
        vring.size = num;
        return { error: null };
      case Request.setVringBase:
        if (vring.running) return { error: `vring ${index} is running` };
        vring.base = num;
        return { error: null };
      case Request.getVringBase: {
        // Stops the ring (the spec's "ring is stopped"); the kick fd goes with it.
        await this.stopIfRunning(index);
        vring.started = false;
        this.replaceFd(vring, 'kickFd', -1);
        const reply = new Uint8Array(8);
        new DataView(reply.buffer).setUint32(0, index, true);
        new DataView(reply.buffer).setUint32(4, vring.base, true);
        return { reply, error: null };
      }
      default: // SET_VRING_ENABLE
        vring.enabled = num === 1;
        if (!vring.enabled) {
          await this.stopIfRunning(index);
          return { error: null };
        }
        return { error: await this.startIfReady(index) };
    }
  }

  private async setVringFd(request: number, index: number, fd: number): Promise<string | null> {
    const vring = this.vrings[index]!;
    const wasRunning = vring.running;
    if (fd >= 0 && !isEventfd(fd)) {
      // Anything else would make the datapath's reads and writes of it fail (or block).
      sys.close(fd);
      return `vring ${index}: the ${request === Request.setVringKick ? 'kick' : request === Request.setVringCall ? 'call' : 'err'} fd is not an eventfd`;
    }
    if (request === Request.setVringErr) {
      this.replaceFd(vring, 'errFd', fd);
      return null;
    }
    await this.stopIfRunning(index);
    if (request === Request.setVringCall) {
      this.replaceFd(vring, 'callFd', fd);
      return wasRunning ? this.startIfReady(index) : null;
    }
    if (fd < 0) return `vring ${index}: the frontend sends no kicks (NOFD); the backend needs a kick fd`;
    this.replaceFd(vring, 'kickFd', fd);
    vring.started = true;
    return this.startIfReady(index);
  }

  private replaceFd(vring: VringState, which: 'kickFd' | 'callFd' | 'errFd', fd: number): void {
    if (vring[which] >= 0) sys.close(vring[which]);
    vring[which] = fd;
  }

  private async setMemTable(regions: readonly MemoryRegion[]): Promise<string | null> {
    const problem = checkRegions(regions, MAX_MEM_REGIONS, sys.fileSize);
    if (problem) {
      for (const r of regions) sys.close(r.fd);
      return problem;
    }
    const running = this.vrings.map((v, i) => (v.running ? i : -1)).filter((i) => i >= 0);
    for (const index of running) await this.stopIfRunning(index);
    const error = await this.device.setMemory(regions);
    // Mapped (or failed): the mappings keep the memory, the fds are no longer needed.
    for (const r of regions) sys.close(r.fd);
    if (error) {
      this.memory = null;
      return error;
    }
    this.memory = new MemoryTable(regions);
    return this.startAllReady();
  }

  /** Starts every vring the protocol has fully set up (after the last missing piece arrived). */
  private async startAllReady(): Promise<string | null> {
    const errors: string[] = [];
    for (let i = 0; i < this.vrings.length; i++) {
      const error = await this.startIfReady(i);
      if (error) errors.push(error);
    }
    return errors.length > 0 ? errors.join('; ') : null;
  }

  /** Starts vring `index` if the protocol has given it everything; null or why it cannot run. */
  private async startIfReady(index: number): Promise<string | null> {
    const vring = this.vrings[index]!;
    const enabled = vring.enabled || !hasFeature(this.features, PROTOCOL_FEATURES_BIT);
    if (vring.running || !vring.started || !enabled || !vring.hasAddresses || vring.size === 0 || !this.memory || !this.featuresSet) return null;
    const memory = this.memory;
    const bytes = ringAreaBytes(vring.size, this.packedRing);
    const descAddr = memory.guestAddrOfUserRange(vring.desc, bytes.desc);
    const availAddr = memory.guestAddrOfUserRange(vring.avail, bytes.avail);
    const usedAddr = memory.guestAddrOfUserRange(vring.used, bytes.used);
    if (descAddr < 0 || availAddr < 0 || usedAddr < 0) return `vring ${index}: ring addresses are outside the memory table`;
    const region = this.inflight;
    let inflight: VirtqueueSetup['inflight'] = null;
    if (region && index < region.queues) {
      if (region.queueSize !== vring.size) return `vring ${index}: size ${vring.size} differs from the inflight region's queue size ${region.queueSize}`;
      inflight = { fd: region.fd, mapOffset: region.mmapOffset, mapSize: region.mmapSize, queueOffset: index * inflightQueueBytes(region.queueSize) };
    }
    const error = await this.device.startQueue(index, {
      ...(inflight ? { inflight } : {}),
      size: vring.size,
      descAddr,
      availAddr,
      usedAddr,
      base: vring.base,
      kickFd: vring.kickFd,
      callFd: vring.callFd,
      features: this.features,
    });
    if (error) return `vring ${index}: ${error}`;
    vring.running = true;
    return null;
  }

  private async stopIfRunning(index: number): Promise<void> {
    const vring = this.vrings[index]!;
    if (!vring.running) return;
    vring.base = await this.device.stopQueue(index);
    vring.running = false;
  }

  /** Stops every ring and forgets per-ring progress (a device reset). */
  private async resetDevice(): Promise<void> {
    for (let i = 0; i < this.vrings.length; i++) await this.stopIfRunning(i);
    for (const vring of this.vrings) {
      vring.started = false;
      vring.base = 0;
      this.replaceFd(vring, 'kickFd', -1);
    }
    this.device.reset();
  }

  /** After a disconnect: everything the frontend set up is gone. */
  private async resetConnectionState(): Promise<void> {
    for (let i = 0; i < this.vrings.length; i++) await this.stopIfRunning(i);
    for (const vring of this.vrings) {
      for (const which of ['kickFd', 'callFd', 'errFd'] as const) this.replaceFd(vring, which, -1);
      Object.assign(vring, freshVring());
    }
    this.memory = null;
    this.replaceInflight(null);
    if (this.backendReqFd >= 0) sys.close(this.backendReqFd);
    this.backendReqFd = -1;
    this.features = NO_FEATURES;
    this.protocolFeatures = NO_FEATURES;
    this.featuresSet = false;
    this.status = 0;
    this.device.reset();
    await this.device.releaseMemory();
  }
}
