/**
 * A whole vhost-user frontend set up in one call, for tests and the fuzzer: guest RAM is a memfd
 * of its own (mapped here as well, so the test can write descriptors and read the used rings),
 * the common virtio-net features are negotiated, the memory table is sent with a fake frontend
 * address (so the backend's user-address -> guest-physical translation is exercised), and each
 * virtqueue gets its rings, a kick and a call eventfd, and is enabled.
 *
 * Everything goes with NEED_REPLY once REPLY_ACK is negotiated, so a step the backend refuses
 * fails open() with the step's name.
 */
import * as sys from '../core/sys.js';
import { commonFeatures, DeviceStatus, FeatureBit, featureMask, hasFeature, isValidQueueSize, MAX_QUEUE_SIZE, NO_FEATURES, type FeatureWord } from '../core/virtio.js';
import { PROTOCOL_FEATURES_BIT, ProtocolFeature } from '../vhost-user/protocol.js';
import { VhostUserClient, type VhostUserClientOptions } from './vhost-user-client.js';

/** VERSION_1, MRG_RXBUF, EVENT_IDX, INDIRECT_DESC: what a frontend session asks for by default. */
export const DEFAULT_SESSION_FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringEventIdx, FeatureBit.ringIndirectDesc);
/** REPLY_ACK, MQ, STATUS. */
export const DEFAULT_SESSION_PROTOCOL_FEATURES = featureMask(ProtocolFeature.replyAck, ProtocolFeature.mq, ProtocolFeature.status);

const PAGE_SIZE = 4096;
/** A packed ring's base at its start: slot 0, the driver's wrap counter (bit 15) 1. */
const PACKED_FRESH_BASE = 0x8000;

export interface FrontendSessionOptions {
  readonly socketPath: string;
  /** Size of the guest RAM (one region, one memfd). */
  readonly memoryBytes: number;
  /** Virtqueues to set up: 0..queues-1 (a net device has receiveq 2k and transmitq 2k+1). */
  readonly queues: number;
  /** Entries per virtqueue, a power of two (default 256). */
  readonly queueSize?: number;
  /** Guest-physical address of the region (default 0x100000). */
  readonly guestPhysAddr?: number;
  /** The frontend address the region pretends to live at (default 0x7f0000000000). */
  readonly userAddr?: number;
  /** Virtio features wanted (default DEFAULT_SESSION_FEATURES); only offered ones are set. */
  readonly features?: FeatureWord;
  /** Protocol features wanted (default DEFAULT_SESSION_PROTOCOL_FEATURES); only offered ones are set. */
  readonly protocolFeatures?: FeatureWord;
  /**
   * SET_VRING_BASE per queue index. Missing entries: a fresh ring, 0 for a split one and, once
   * RING_PACKED is negotiated, slot 0 with the driver's wrap counter 1 (0x8000: bit 15 is the wrap
   * counter), where a packed driver starts.
   */
  readonly vringBase?: readonly number[];
  readonly client?: VhostUserClientOptions;
}

/** The guest RAM as the session sees it: one region, mapped read-write here. */
export class FrontendMemory {
  /** The whole region; index 0 is `guestPhysAddr`. */
  readonly bytes: Uint8Array;
  /** Little-endian words anywhere in the region. */
  readonly view: DataView;
  private next = 0;

  constructor(
    readonly guestPhysAddr: number,
    readonly size: number,
    readonly userAddr: number,
    private readonly mapping: ArrayBuffer,
  ) {
    this.bytes = new Uint8Array(mapping);
    this.view = new DataView(mapping);
  }

  /** Offset in `bytes` of [gpa, gpa + length); throws a RangeError when that is not all in the region. */
  gpaToOffset(gpa: number, length = 1): number {
    const offset = gpa - this.guestPhysAddr;
    if (!Number.isInteger(gpa) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`guest-physical range 0x${gpa.toString(16)}+${length} is outside the region 0x${this.guestPhysAddr.toString(16)}+0x${this.size.toString(16)}`);
    }
    return offset;
  }

  /** The frontend address of a guest-physical one (what SET_VRING_ADDR carries). */
  userAddrOf(gpa: number): number {
    return this.userAddr + this.gpaToOffset(gpa, 0);
  }

  /** A view of the bytes [gpa, gpa + length). */
  slice(gpa: number, length: number): Uint8Array {
    const offset = this.gpaToOffset(gpa, length);
    return this.bytes.subarray(offset, offset + length);
  }

  /** Reserves `size` bytes aligned to `align` (bump allocation, never freed); returns the gpa. */
  alloc(size: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + size > this.size) throw new RangeError(`guest memory full: ${size} bytes do not fit after offset ${at} of ${this.size}`);
    this.next = at + size;
    return this.guestPhysAddr + at;
  }

  /** Unmaps; views taken earlier become empty. */
  unmap(): void {
    if (this.mapping.byteLength > 0) sys.unmap(this.mapping);
  }
}

/** One virtqueue as the session set it up. */
export interface SessionQueue {
  readonly index: number;
  readonly size: number;
  /** Guest-physical addresses of the descriptor table, available ring and used ring. */
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
  /** Eventfds: write kickFd to notify the backend; the backend writes callFd. */
  readonly kickFd: number;
  readonly callFd: number;
}

export class FrontendSession {
  private closedHere = false;

  private constructor(
    readonly client: VhostUserClient,
    readonly memory: FrontendMemory,
    /** The memfd behind the guest RAM (sent with SET_MEM_TABLE, owned by the session). */
    readonly memoryFd: number,
    readonly queues: readonly SessionQueue[],
    /** Negotiated virtio features (SET_FEATURES). */
    readonly features: FeatureWord,
    /** Negotiated protocol features (none when the backend offers none). */
    readonly protocolFeatures: FeatureWord,
    /** GET_QUEUE_NUM's answer, or 1 without MQ. */
    readonly queuePairs: number,
  ) {}

  /** Connects, negotiates, sends the memory table and sets up `queues` virtqueues. */
  static async open(options: FrontendSessionOptions): Promise<FrontendSession> {
    const queueSize = options.queueSize ?? 256;
    if (!isValidQueueSize(queueSize)) {
      throw new RangeError(`queueSize ${queueSize} is not a power of two in 1..${MAX_QUEUE_SIZE}`);
    }
    if (!Number.isInteger(options.queues) || options.queues < 0 || options.queues > 256) throw new RangeError(`queues ${options.queues} is not in 0..256`);
    const guestPhysAddr = options.guestPhysAddr ?? 0x100000;
    const userAddr = options.userAddr ?? 0x7f0000000000;

    const fds: number[] = [];
    let client: VhostUserClient | null = null;
    let memory: FrontendMemory | null = null;
    let memoryFd = -1;
    try {
      client = await VhostUserClient.connect(options.socketPath, options.client);
      const offered = await client.getFeatures();
      const withProtocol = hasFeature(offered, PROTOCOL_FEATURES_BIT);
      let protocolFeatures = NO_FEATURES;
      if (withProtocol) {
        const offeredProtocol = await client.getProtocolFeatures();
        protocolFeatures = commonFeatures(offeredProtocol, options.protocolFeatures ?? DEFAULT_SESSION_PROTOCOL_FEATURES);
        await client.setProtocolFeatures(protocolFeatures);
      }
      const ack = { needReply: client.replyAck };
      const queuePairs = hasFeature(protocolFeatures, ProtocolFeature.mq) ? await client.getQueueNum() : 1;
      if (options.queues > 2 * queuePairs) throw new RangeError(`${options.queues} virtqueues asked for, the backend has ${queuePairs} queue pairs`);
      await client.setOwner(ack);

      const wanted = options.features ?? DEFAULT_SESSION_FEATURES;
      const features = commonFeatures(offered, wanted) | (withProtocol ? featureMask(PROTOCOL_FEATURES_BIT) : NO_FEATURES);
      const withStatus = hasFeature(protocolFeatures, ProtocolFeature.status);
      if (withStatus) await client.setStatus(DeviceStatus.acknowledge | DeviceStatus.driver, ack);
      await client.setFeatures(features, ack);
      if (withStatus) await client.setStatus(DeviceStatus.acknowledge | DeviceStatus.driver | DeviceStatus.featuresOk, ack);

      memoryFd = sys.memfdCreate('zcnic-frontend-session', options.memoryBytes);
      memory = new FrontendMemory(guestPhysAddr, options.memoryBytes, userAddr, sys.mapShared(memoryFd, 0, options.memoryBytes));
      await client.setMemTable([{ guestPhysAddr, size: options.memoryBytes, userAddr, mmapOffset: 0, fd: memoryFd }], ack);

      const queues: SessionQueue[] = [];
      for (let index = 0; index < options.queues; index++) {
        // Each part on a page of its own: more alignment than the spec's 16/2/4 never hurts. A
        // packed ring uses the first 4 bytes of the last two (its event suppression areas).
        const descGpa = memory.alloc(16 * queueSize, PAGE_SIZE);
        const availGpa = memory.alloc(6 + 2 * queueSize, PAGE_SIZE);
        const usedGpa = memory.alloc(6 + 8 * queueSize, PAGE_SIZE);
        const kickFd = sys.eventfdCreate(0, true);
        fds.push(kickFd);
        const callFd = sys.eventfdCreate(0, true);
        fds.push(callFd);
        queues.push({ index, size: queueSize, descGpa, availGpa, usedGpa, kickFd, callFd });
        await client.setVringNum(index, queueSize, ack);
        await client.setVringBase(index, options.vringBase?.[index] ?? (hasFeature(features, FeatureBit.ringPacked) ? PACKED_FRESH_BASE : 0), ack);
        await client.setVringAddr(index, { desc: memory.userAddrOf(descGpa), used: memory.userAddrOf(usedGpa), avail: memory.userAddrOf(availGpa) }, ack);
        await client.setVringKick(index, kickFd, ack);
        await client.setVringCall(index, callFd, ack);
        if (withProtocol) await client.setVringEnable(index, true, ack);
      }
      if (withStatus) await client.setStatus(DeviceStatus.acknowledge | DeviceStatus.driver | DeviceStatus.featuresOk | DeviceStatus.driverOk, ack);
      return new FrontendSession(client, memory, memoryFd, queues, features, protocolFeatures, queuePairs);
    } catch (error) {
      client?.close();
      for (const fd of fds) sys.close(fd);
      memory?.unmap();
      if (memoryFd >= 0) sys.close(memoryFd);
      throw error;
    }
  }

  /** Whether EVENT_IDX was negotiated (used_event / avail_event are in use). */
  get eventIdx(): boolean {
    return hasFeature(this.features, FeatureBit.ringEventIdx);
  }

  /** Notifies the backend that queue `index` has new buffers. */
  kick(index: number): void {
    sys.eventfdWrite(this.queue(index).kickFd, 1);
  }

  /** Reads and clears queue `index`'s call eventfd: how many interrupts since the last read. */
  takeCalls(index: number): number {
    return sys.eventfdRead(this.queue(index).callFd);
  }

  queue(index: number): SessionQueue {
    const queue = this.queues[index];
    if (!queue) throw new RangeError(`queue ${index} was not set up (${this.queues.length} were)`);
    return queue;
  }

  /** Disconnects, closes the eventfds and the memfd, unmaps the memory. Idempotent. */
  close(): void {
    if (this.closedHere) return;
    this.closedHere = true;
    this.client.close();
    for (const queue of this.queues) {
      sys.close(queue.kickFd);
      sys.close(queue.callFd);
    }
    this.memory.unmap();
    sys.close(this.memoryFd);
  }
}
