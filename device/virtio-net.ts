/**
 * The virtio-net device as the control plane sees it: which features it offers, how its queue
 * pairs are spread over datapath workers, and its counters. Transports (the vhost-user server
 * today) drive it through VirtioDevice; the control API reads stats and switches ports.
 */
import { FeatureBit, featureMask, featureNames, hasFeature, NO_FEATURES, type FeatureWord, type MemoryRegion, type VirtioDevice, type VirtqueueSetup } from 'vfio-user-ts';
import { Counter, createCounters, describeCounters, MAXIMUM_COUNTERS, sumCounters, type DeviceCounters } from './counters.js';
import { DatapathWorker } from './datapath/datapath-worker.js';
import type { DatapathMode, TxPolicy } from './datapath/messages.js';
import type { PortOptions } from './ports/port.js';
import type { RingLayout } from './virtqueue.js';

export interface VirtioNetOptions {
  readonly queuePairs: number;
  /** Datapath worker threads; pair k is served by worker k % workers. */
  readonly workers: number;
  readonly mode: DatapathMode;
  readonly port: PortOptions;
  /** A pcap file of every frame in both directions; with several workers, one file each (-wN). */
  readonly pcapPath: string | null;
  /** Verify test frames on the transmitq (docs/test-frame.md). */
  readonly verify: boolean;
  /** Offer VIRTIO_F_RING_RESET (see FeatureBit.ringReset): AF_XDP zero-copy binds need it. */
  readonly ringReset?: boolean;
  /**
   * Offer HOST_TSO4, HOST_TSO6, HOST_ECN and HOST_USO: the driver may send TCP and UDP GSO frames
   * of up to 64 KiB, which the device checks and cuts into wire frames (device/gso.ts). USO comes
   * with TSO rather than with an option of its own: the same checks and segmenter serve both, and
   * neither QEMU 7.2 (which does not know the bit) nor QEMU 10 (whose vhost-user netdev answers no
   * to has_uso, so virtio_net_get_features clears it) passes HOST_USO on to a guest, so only a
   * frontend that forwards it (the test frontend, the fuzzer) ever negotiates it.
   */
  readonly tso?: boolean;
  /**
   * Offer GUEST_TSO4, GUEST_TSO6 and GUEST_ECN: a port that has GSO frames (port tap, its host
   * kernel's GSO and GRO output) hands them to the driver whole, spread over mergeable buffers.
   * Not GUEST_USO4/6: neither QEMU 7.2 nor 10 passes them on to a guest (see HOST_USO).
   */
  readonly guestTso?: boolean;
  /**
   * Offer the split ring only: VIRTIO_F_RING_PACKED withheld. It is offered otherwise, and a
   * frontend takes it only when asked to (QEMU's `packed=on`, DPDK virtio-user's `packed_vq=1`).
   */
  readonly splitRingOnly?: boolean;
  /**
   * Offer VIRTIO_F_IN_ORDER (default true): the device completes every queue's chains in the
   * order taken whatever it offers, so the bit promises nothing new, and a transmitq whose driver
   * takes it publishes each burst with one used element. false withholds it.
   */
  readonly inOrder?: boolean;
  /** Offer VIRTIO_F_ACCESS_PLATFORM (see FeatureBit.accessPlatform): so does virtio_net's DMA API use. */
  readonly accessPlatform?: boolean;
  /** Counts that survive a kill (datapath/state-file.ts); one queue pair, one worker. */
  readonly statePath?: string | null;
  /** A queue error: logged by the caller; `fatal` means the device now needs a reset. */
  readonly onQueueError: (queue: number, kind: string, detail: string, fatal: boolean) => void;
  /** A worker died: the device cannot go on. */
  readonly onFailure: (reason: string) => void;
}

/** A queue as it was last started: which ring ran, and how. */
export interface QueueStats {
  readonly index: number;
  /** The layout of the rings the device read (the datapath says which). */
  readonly layout: RingLayout;
  readonly size: number;
  /** Notifications suppressed by event index (EVENT_IDX) rather than by flags. */
  readonly eventIdx: boolean;
  /** The frontend keeps an inflight region for it (INFLIGHT_SHMFD). */
  readonly inflight: boolean;
  /** Not stopped since; a stopped queue keeps its entry, so the last stats still show what ran. */
  readonly running: boolean;
}

export interface DeviceStats extends DeviceCounters {
  /** The virtio features negotiated for the last queue started, by name (featureNames); [] before any. */
  features: string[];
  /** Every queue started since the device was created, as last started, by index. */
  queues: QueueStats[];
  port: PortOptions['port'];
  verify: boolean;
  requireLinearHeader: boolean;
  /** Pages in the zero-copy map (0: no map, no proof attempted). */
  zeroCopyMapPages: number;
  needsReset: boolean;
  /**
   * Messages the transport refused and disconnects the frontend caused, by reason (numbers
   * written N), e.g. "setMemTable: memory table has no regions".
   */
  protocolErrors: Record<string, number>;
  /**
   * V8 heap in use: the whole process (control plane and datapath workers) and the datapath
   * workers alone. Flat under load, since the datapath allocates nothing per frame.
   */
  heap: { usedBytes: number; datapathUsedBytes: number; datapathCollections: number };
}

export class VirtioNet implements VirtioDevice {
  readonly features: FeatureWord;
  readonly queuePairs: number;
  needsReset = false;
  private readonly workers: DatapathWorker[];
  private readonly counterBlocks: Float64Array[];
  private port: PortOptions;
  private verify: boolean;
  private txPolicy: TxPolicy = { requireLinearHeader: false, zeroCopyMap: null };
  /** Counters at the last reset, subtracted from what the workers count. */
  private baseline: Float64Array;
  /** The transport's refusal counts (VhostUserServer.protocolErrorCounts); set by whoever runs it. */
  protocolErrorSource: () => Record<string, number> = () => ({});
  private protocolBaseline: Record<string, number> = {};
  /** The features the transport gave with the last queue start (the negotiated ones). */
  private negotiated: FeatureWord = NO_FEATURES;
  private readonly queues = new Map<number, QueueStats>();

  private constructor(options: VirtioNetOptions, workers: DatapathWorker[], counterBlocks: Float64Array[]) {
    this.queuePairs = options.queuePairs;
    this.workers = workers;
    this.counterBlocks = counterBlocks;
    this.port = options.port;
    this.verify = options.verify;
    this.baseline = sumCounters([]);
    const bits: number[] = [
      FeatureBit.version1,
      FeatureBit.netCsum,
      FeatureBit.netGuestCsum,
      FeatureBit.netMtu,
      FeatureBit.netMac,
      FeatureBit.netMrgRxbuf,
      FeatureBit.netStatus,
      FeatureBit.ringIndirectDesc,
      FeatureBit.ringEventIdx,
    ];
    if (options.splitRingOnly !== true) bits.push(FeatureBit.ringPacked);
    if (options.inOrder !== false) bits.push(FeatureBit.inOrder);
    if (options.queuePairs > 1) bits.push(FeatureBit.netMq);
    if (options.ringReset === true) bits.push(FeatureBit.ringReset);
    if (options.accessPlatform === true) bits.push(FeatureBit.accessPlatform);
    if (options.guestTso === true) bits.push(FeatureBit.netGuestTso4, FeatureBit.netGuestTso6, FeatureBit.netGuestEcn);
    if (options.tso === true) bits.push(FeatureBit.netHostTso4, FeatureBit.netHostTso6, FeatureBit.netHostEcn, FeatureBit.netHostUso);
    this.features = featureMask(...bits);
  }

  static async create(options: VirtioNetOptions): Promise<VirtioNet> {
    const count = Math.max(1, Math.min(options.workers, options.queuePairs));
    const workers: DatapathWorker[] = [];
    const blocks: Float64Array[] = [];
    for (let w = 0; w < count; w++) {
      const counters = createCounters();
      blocks.push(counters);
      const pairs = [];
      for (let p = w; p < options.queuePairs; p += count) pairs.push(p);
      const pcapPath = options.pcapPath && count > 1 ? `${options.pcapPath}-w${w}` : options.pcapPath;
      workers.push(
        new DatapathWorker(
          { counters: counters.buffer as SharedArrayBuffer, pairs, mode: options.mode, port: options.port, pcapPath, verify: options.verify, statePath: options.statePath ?? null },
          (e) => options.onQueueError(e.queue, e.kind, e.detail, e.fatal),
          options.onFailure,
        ),
      );
    }
    const device = new VirtioNet(options, workers, blocks);
    await Promise.all(workers.map((w) => w.whenReady()));
    return device;
  }

  private workerOf(queueIndex: number): DatapathWorker {
    return this.workers[(queueIndex >> 1) % this.workers.length]!;
  }

  async setMemory(regions: readonly MemoryRegion[]): Promise<string | null> {
    // The workers stop whatever still runs on the old table.
    for (const index of this.queues.keys()) this.markStopped(index);
    const answers = await Promise.all(this.workers.map((w) => w.request({ type: 'memory', regions }, 'memoryMapped')));
    return answers.find((a) => a.error !== null)?.error ?? null;
  }

  releaseMemory(): Promise<void> {
    return this.setMemory([]).then(() => undefined);
  }

  async startQueue(index: number, setup: VirtqueueSetup): Promise<string | null> {
    const { size, descAddr, availAddr, usedAddr, base, kickFd, callFd, features, inflight } = setup;
    const { result } = await this.workerOf(index).request(
      { type: 'start', start: { queue: index, addresses: { size, descAddr, availAddr, usedAddr }, base, kickFd, callFd, features, inflight: inflight ?? null } },
      'started',
    );
    if ('error' in result) return result.error;
    this.negotiated = features;
    this.queues.set(index, { index, layout: result.layout, size, eventIdx: hasFeature(features, FeatureBit.ringEventIdx), inflight: Boolean(inflight), running: true });
    return null;
  }

  async stopQueue(index: number): Promise<number> {
    const { base } = await this.workerOf(index).request({ type: 'stop', queue: index }, 'stopped');
    this.markStopped(index);
    return base;
  }

  private markStopped(index: number): void {
    const queue = this.queues.get(index);
    if (queue?.running) this.queues.set(index, { ...queue, running: false });
  }

  reset(): void {
    this.needsReset = false;
  }

  /** Marks the device broken (DEVICE_NEEDS_RESET) after a fatal queue error. */
  markNeedsReset(): void {
    this.needsReset = true;
  }

  get portOptions(): PortOptions {
    return this.port;
  }

  async setPort(port: PortOptions): Promise<void> {
    this.port = port;
    await Promise.all(this.workers.map((w) => w.request({ type: 'port', port }, 'portSet')));
  }

  /** Counters since the last resetCounters(), plus state. */
  stats(): DeviceStats {
    const total = sumCounters(this.counterBlocks);
    for (let i = 0; i < total.length; i++) total[i]! -= this.baseline[i]!;
    // The heap gauge is absolute: read it from the workers' blocks, not the baseline-adjusted sum.
    const absolute = sumCounters(this.counterBlocks);
    const datapathUsedBytes = absolute[Counter.heapUsedBytes]!;
    const datapathCollections = absolute[Counter.collections]!;
    // A maximum does not subtract: resetCounters() restarts it instead.
    for (const counter of MAXIMUM_COUNTERS) total[counter] = absolute[counter]!;
    return {
      ...describeCounters(total),
      features: featureNames(this.negotiated),
      queues: [...this.queues.values()].sort((a, b) => a.index - b.index),
      port: this.port.port,
      verify: this.verify,
      requireLinearHeader: this.txPolicy.requireLinearHeader,
      zeroCopyMapPages: this.txPolicy.zeroCopyMap?.pages.length ?? 0,
      needsReset: this.needsReset,
      protocolErrors: this.protocolErrorsSinceReset(),
      heap: { usedBytes: process.memoryUsage().heapUsed + datapathUsedBytes, datapathUsedBytes, datapathCollections },
    };
  }

  /**
   * Starts counting from zero (the workers' own counters keep running; we subtract), and
   * verification from a clean slate: a new test's sequence numbers start at 0 again.
   */
  async resetCounters(): Promise<void> {
    await this.setVerify(this.verify);
    this.baseline = sumCounters(this.counterBlocks);
    // The workers keep raising the maximum in the shared blocks; a frame that races this write
    // may leave its length from before the reset, which a maximum tolerates.
    for (const block of this.counterBlocks) for (const counter of MAXIMUM_COUNTERS) block[counter] = 0;
    this.protocolBaseline = this.protocolErrorSource();
  }

  private protocolErrorsSinceReset(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, count] of Object.entries(this.protocolErrorSource())) {
      const since = count - (this.protocolBaseline[kind] ?? 0);
      if (since > 0) out[kind] = since;
    }
    return out;
  }

  get verifying(): boolean {
    return this.verify;
  }

  get transmitPolicy(): TxPolicy {
    return this.txPolicy;
  }

  /** Strict-layout emulation and the zero-copy map, for every queue pair. */
  async setTxPolicy(policy: TxPolicy): Promise<void> {
    this.txPolicy = policy;
    await Promise.all(this.workers.map((w) => w.request({ type: 'txPolicy', policy }, 'txPolicySet')));
  }

  async setVerify(on: boolean): Promise<void> {
    this.verify = on;
    await Promise.all(this.workers.map((w) => w.request({ type: 'verify', on }, 'verifySet')));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.shutdown()));
  }
}
