/**
 * The datapath of a set of queue pairs: maps guest memory, sets up rings when the control plane
 * starts a queue, and runs the queues, either woken by the driver's kicks (default: an idle
 * device sleeps on its kick eventfds and costs no CPU, which matters when TCG wants both cores)
 * or busy-polling (`poll`: the highest rate, for the DPDK benchmark; one core stays busy).
 *
 * It runs inside a worker thread (datapath/worker.ts) so that the control plane stays
 * responsive; it takes messages through handle() and answers through `post`, so tests can also
 * drive it in-process. Its parts: scheduler.ts (when pairs run), port-factory.ts, state-keeper.ts
 * (`--state`), queue-error-reporter.ts (messages to the control plane), telemetry.ts (heap, GC),
 * worker-memory.ts (the guest memory it maps and the watch for pages the frontend took away).
 */
import { FeatureBit, hasFeature, sys, type FdWatcher, type GuestMemory, type MemoryRegion } from 'vfio-user-ts';
import { Counter } from '../counters.js';
import { FrameVerifier } from '../frame-verifier.js';
import type { InflightArea } from '../inflight-tracker.js';
import { gsoOffloads, receiveGsoOffloads } from '../gso.js';
import { negotiatedHeaderLength } from '../net-header.js';
import { PcapWriter } from '../pcap-writer.js';
import { QueuePair } from '../queue-pair.js';
import type { QueueErrorKind, QueueErrorReporter } from '../queue-errors.js';
import { ReceiveQueue } from '../receive-queue.js';
import { DEFAULT_LINEAR_HEADER_REFUSAL, TransmitQueue, type LinearHeaderRefusal } from '../transmit-queue.js';
import { PackedRing } from '../packed-ring.js';
import type { RingLayout, Virtqueue } from '../virtqueue.js';
import { Vring } from '../vring.js';
import { createZeroCopyProof } from '../zero-copy-map.js';
import { GUEST_MEMORY_TRUNCATED, type DatapathMode, type DatapathWorkerData, type FromDatapath, type QueueStart, type ToDatapath, type TxPolicy } from './messages.js';
import { WireGroup } from '../ports/wire.js';
import { createPort } from './port-factory.js';
import { RateLimitedQueueErrors } from './queue-error-reporter.js';
import { Scheduler, type SchedulerHost } from './scheduler.js';
import { StateFile } from './state-file.js';
import { StateKeeper } from './state-keeper.js';
import { HeapTelemetry } from './telemetry.js';
import { WorkerMemory } from './worker-memory.js';

export { FAULT_UNCOUNTED_VERIFIED_FRAME } from './state-keeper.js';

/** What the transmit queues do with chains whose headers are not linear (null: take any layout). */
function linearHeaderRefusal(policy: TxPolicy): LinearHeaderRefusal | null {
  return policy.requireLinearHeader ? (policy.linearHeaderRefusal ?? DEFAULT_LINEAR_HEADER_REFUSAL) : null;
}

interface ActiveQueue {
  start: QueueStart;
  watcher: FdWatcher | null;
}

export class Datapath implements QueueErrorReporter, SchedulerHost {
  private readonly memory = new WorkerMemory();
  private readonly counters: Float64Array;
  private readonly pairs = new Map<number, QueuePair>();
  /** The pairs' wire ports (port wire), so that one reads for a pair whose receiveq is unused. */
  private readonly wires = new WireGroup();
  private readonly active = new Map<number, ActiveQueue>();
  private readonly mode: DatapathMode;
  private txPolicy: TxPolicy = { requireLinearHeader: false, zeroCopyMap: null };
  private readonly pcap: PcapWriter | null;
  private readonly scheduler: Scheduler;
  private readonly reports: RateLimitedQueueErrors;
  private readonly telemetry: HeapTelemetry;
  /** Counts committed with every transmit burst (--state), restored at the first start. */
  private readonly state: StateKeeper | null;

  /** Schedules a pair (kicks, port wakeups). */
  private readonly wake = (pair: QueuePair): void => this.scheduler.schedule(pair);

  constructor(data: DatapathWorkerData, private readonly post: (message: FromDatapath) => void) {
    this.counters = new Float64Array(data.counters);
    this.mode = data.mode;
    this.pcap = data.pcapPath ? new PcapWriter(data.pcapPath) : null;
    this.state = data.statePath ? new StateKeeper(new StateFile(data.statePath), this.counters) : null;
    this.scheduler = new Scheduler(data.mode, this, this.pcap, this.state);
    this.reports = new RateLimitedQueueErrors(post, this.scheduler);
    for (const index of data.pairs) {
      const pair = new QueuePair(index, this.pcap, this.counters);
      pair.port = createPort(data.port, pair, this.counters, this.wake, this.wires);
      pair.verifier = data.verify ? new FrameVerifier(this.counters) : null;
      this.pairs.set(index, pair);
    }
    this.telemetry = new HeapTelemetry(this.counters);
  }

  handle(message: ToDatapath): void {
    switch (message.type) {
      case 'memory':
        this.post({ type: 'memoryMapped', error: this.setMemory(message.regions) });
        return;
      case 'start':
        this.post({ type: 'started', queue: message.start.queue, result: this.startQueue(message.start) });
        return;
      case 'stop':
        this.post({ type: 'stopped', queue: message.queue, base: this.stopQueue(message.queue) });
        return;
      case 'port':
        for (const pair of this.pairs.values()) {
          pair.port = createPort(message.port, pair, this.counters, this.wake, this.wires);
          const started = this.active.get(2 * pair.index) ?? this.active.get(2 * pair.index + 1);
          if (started) pair.port.setNegotiated?.(started.start.features);
          this.scheduler.schedule(pair);
        }
        this.post({ type: 'portSet' });
        return;
      case 'verify':
        for (const pair of this.pairs.values()) pair.verifier = message.on ? new FrameVerifier(this.counters) : null;
        this.post({ type: 'verifySet' });
        return;
      case 'txPolicy':
        this.setTxPolicy(message.policy);
        this.post({ type: 'txPolicySet' });
        return;
      case 'shutdown':
        this.shutdown();
        this.post({ type: 'shutDown' });
        return;
    }
  }

  queueError(queue: number, kind: QueueErrorKind, fatal: boolean, head: number, a: number, b: number, c: number): void {
    // What a queue read from pages the guard replaced is zeros, not the driver's doing: the
    // queue has counted what they looked like, but the truncation is the one error reported.
    if (this.noticeTruncation(queue)) return;
    this.reports.report(queue, kind, fatal, head, a, b, c);
  }

  /**
   * Whether the guest memory in use lost pages under this worker's mappings (the frontend
   * truncated a region's file after SET_MEM_TABLE; the SIGBUS guard put zero pages there so the
   * access completed). The first time: every queue of this worker stops (the rest of the table
   * cannot be trusted either), it is counted and reported once, fatal, against `queue` (the
   * one running when it was noticed). Costs one read while nothing happened.
   */
  noticeTruncation(queue: number): boolean {
    const memory = this.memory;
    if (!memory.newlyTruncated()) return memory.truncated;
    for (const pair of this.pairs.values()) {
      if (pair.tx) pair.tx.broken = true;
      if (pair.rx) pair.rx.broken = true;
    }
    this.counters[Counter.guestMemoryTruncated]!++;
    this.reports.send(queue, GUEST_MEMORY_TRUNCATED, `${memory.truncationDetail()}, and every queue of this worker stopped`, true);
    return true;
  }

  notify(queueIndex: number): void {
    const queue = this.active.get(queueIndex);
    if (queue && queue.start.callFd >= 0) sys.eventfdWrite(queue.start.callFd, 1);
  }

  /** Strict-layout emulation and the zero-copy proof for every transmitq; leaving stall mode ends a stall. */
  private setTxPolicy(policy: TxPolicy): void {
    this.txPolicy = policy;
    const proof = policy.zeroCopyMap ? createZeroCopyProof(policy.zeroCopyMap) : null;
    const refusal = linearHeaderRefusal(policy);
    for (const pair of this.pairs.values()) {
      pair.zeroCopy = proof;
      const tx = pair.tx;
      if (!tx) continue;
      tx.linearHeaderRefusal = refusal;
      // Leaving stall mode is the reset that ends a stall. Done before answering, so the
      // flushed chains are completed before the control plane goes on (resetCounters).
      if (tx.stalled && refusal !== 'stall') this.endStall(pair, tx);
    }
  }

  private endStall(pair: QueuePair, tx: TransmitQueue): void {
    const queue = pair.index * 2 + 1;
    const flushed = tx.resume();
    this.reports.send(queue, 'linearHeaderStallEnded', `the transmit queue takes chains again; ${flushed} chains posted while it was stalled completed unsent`, false);
    if (tx.needsNotify) {
      tx.needsNotify = false;
      this.notify(queue);
    }
    this.scheduler.schedule(pair);
  }

  /**
   * Maps a new memory table (an empty one just unmaps). The transport stops every queue first;
   * a queue still running here would point into the old mappings, so it is stopped too.
   */
  private setMemory(regions: readonly MemoryRegion[]): string | null {
    for (const queue of [...this.active.keys()]) this.stopQueue(queue);
    return this.memory.map(regions);
  }

  /** Starts a queue: the layout of the rings it runs, or why it cannot. */
  private startQueue(start: QueueStart): { layout: RingLayout } | { error: string } {
    const memory = this.memory.current;
    if (!memory) return { error: 'no memory table yet' };
    const pair = this.pairs.get(start.queue >> 1);
    if (!pair) return { error: `queue ${start.queue} is not served by this worker` };
    if (this.active.has(start.queue)) this.stopQueue(start.queue);
    const ring = this.openRing(memory, start);
    if (typeof ring === 'string') return { error: ring };
    this.attachQueue(memory, pair, ring, start);
    const queue: ActiveQueue = { start, watcher: this.mode === 'kick' ? this.watchKicks(pair, ring, start.kickFd) : null };
    if (queue.watcher === null) ring.disableKicks();
    this.active.set(start.queue, queue);
    // See Virtqueue.notifyOnStart: completions a killed predecessor published may never have been signalled.
    if (ring.notifyOnStart()) this.notify(start.queue);
    this.scheduler.schedule(pair);
    return { layout: ring.layout };
  }

  /**
   * The queue's rings, following the driver's own queue resets when it negotiated RING_RESET; a
   * split ring recovered from an inflight region says how.
   */
  private openRing(memory: GuestMemory, start: QueueStart): Virtqueue | string {
    const ring = this.ringOfLayout(memory, start);
    if (typeof ring === 'string') return ring;
    ring.followsDriverResets = hasFeature(start.features, FeatureBit.ringReset);
    const recovery = ring.recovery;
    if (recovery && !recovery.fresh) {
      const detail = `resuming at avail index ${recovery.resumeAt} (the frontend said ${recovery.baseGiven}): ${recovery.resubmitted} heads taken and not completed are served again, ${recovery.publishedUnrecorded} used elements had been published after the region last recorded used.idx`;
      this.reports.send(start.queue, 'inflightRecovery', detail, false);
    }
    return ring;
  }

  /** The rings in the layout negotiated (RING_PACKED or split), the split one with the frontend's inflight region if it keeps one. */
  private ringOfLayout(memory: GuestMemory, start: QueueStart): Virtqueue | string {
    const eventIdx = hasFeature(start.features, FeatureBit.ringEventIdx);
    if (hasFeature(start.features, FeatureBit.ringPacked)) {
      // The state file counts completions by the split ring's used.idx, which a restart reads back.
      if (this.state) return '--state needs the split ring (the packed one keeps no used index in guest memory)';
      return PackedRing.create(memory, start.addresses, eventIdx, start.base, Boolean(start.inflight));
    }
    const inflight = mapInflight(start);
    if (typeof inflight === 'string') return inflight;
    return Vring.create(memory, start.addresses, eventIdx, start.base, inflight);
  }

  /** Makes the ring the pair's transmit or receive side, as the negotiated features shape it. */
  private attachQueue(memory: GuestMemory, pair: QueuePair, ring: Virtqueue, start: QueueStart): void {
    const indirect = hasFeature(start.features, FeatureBit.ringIndirectDesc);
    const mergeable = hasFeature(start.features, FeatureBit.netMrgRxbuf);
    const headerLength = negotiatedHeaderLength(start.features);
    pair.port?.setNegotiated?.(start.features);
    if ((start.queue & 1) === 0) {
      pair.rx = new ReceiveQueue(memory, ring, indirect, headerLength, mergeable, this.counters, this, start.queue);
      pair.rx.receiveGso = receiveGsoOffloads(start.features);
      return;
    }
    // Every transmit chain is used whole (read to its end, nothing written), so with IN_ORDER a
    // burst needs one used element; the receiveq's buffers each need their own length.
    if (hasFeature(start.features, FeatureBit.inOrder)) ring.completeInBatches();
    pair.tx = new TransmitQueue(memory, ring, indirect, headerLength, this.counters, pair, this, start.queue);
    pair.tx.linearHeaderRefusal = linearHeaderRefusal(this.txPolicy);
    pair.tx.gsoOffloads = gsoOffloads(start.features);
    const event = this.state?.attach(pair, ring) ?? null;
    if (event) this.reports.send(start.queue, event.kind, event.detail, false);
  }

  /** Kick mode: the driver's kick schedules the pair (which keeps kicks off while it runs). */
  private watchKicks(pair: QueuePair, ring: Virtqueue, kickFd: number): FdWatcher {
    ring.enableKicks();
    return sys.watchReadable(kickFd, () => {
      sys.eventfdRead(kickFd);
      ring.disableKicks();
      this.scheduler.schedule(pair);
    });
  }

  /** Stops a queue and returns the avail index the driver should resume from. */
  private stopQueue(queueIndex: number): number {
    const queue = this.active.get(queueIndex);
    const pair = this.pairs.get(queueIndex >> 1);
    if (!queue || !pair) return 0;
    queue.watcher?.stop();
    this.active.delete(queueIndex);
    const side = (queueIndex & 1) === 1 ? pair.tx : pair.rx;
    const base = side ? side.ring.resumeBase : queue.start.base;
    if ((queueIndex & 1) === 1) pair.tx = null;
    else pair.rx = null;
    return base;
  }

  private shutdown(): void {
    this.scheduler.stop();
    this.telemetry.stop();
    for (const queue of [...this.active.keys()]) this.stopQueue(queue);
    this.pcap?.close();
    this.state?.close();
    this.memory.close();
  }
}

/** Maps the queue's part of the frontend's inflight region, if it gave one. */
function mapInflight(start: QueueStart): InflightArea | null | string {
  if (!start.inflight) return null;
  const { fd, mapOffset, mapSize, queueOffset } = start.inflight;
  try {
    // The mapping lives as long as the ring uses it (unmapped with the ArrayBuffer).
    return { buffer: sys.mapShared(fd, mapOffset, mapSize), offset: queueOffset };
  } catch (error) {
    return `cannot map the inflight region: ${(error as Error).message}`;
  }
}
