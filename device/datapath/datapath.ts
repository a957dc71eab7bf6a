/**
 * The datapath of a set of queue pairs: maps guest memory, sets up rings when the control plane
 * starts a queue, and runs the queues, either woken by the driver's kicks (default: an idle
 * device sleeps on its kick eventfds and costs no CPU, which matters when TCG wants both cores)
 * or busy-polling (`poll`: the highest rate, for the DPDK benchmark; one core stays busy).
 *
 * It runs inside a worker thread (datapath/worker.ts) so that the control plane stays
 * responsive; it takes messages through handle() and answers through `post`, so tests can also
 * drive it in-process.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { GuestMemory, sys, type FdWatcher, type MemoryRegion } from 'vfio-user-ts';
import { PcapWriter } from '../pcap-writer.js';
import { GenPort } from '../ports/gen.js';
import { DEFAULT_TAP, ServiceAgain, type Port, type PortOptions } from '../ports/port.js';
import { TapPort } from '../ports/tap.js';
import { ReflectPort } from '../ports/reflect.js';
import { SinkPort } from '../ports/sink.js';
import { Counter } from '../counters.js';
import { FrameVerifier } from '../frame-verifier.js';
import { createZeroCopyProof } from '../zero-copy-map.js';
import { QueuePair } from '../queue-pair.js';
import { describeQueueError, QUEUE_ERROR_KINDS, queueErrorNames, type QueueErrorKind, type QueueErrorReporter } from '../queue-errors.js';
import { ReceiveQueue } from '../receive-queue.js';
import { DEFAULT_LINEAR_HEADER_REFUSAL, TransmitQueue, type LinearHeaderRefusal } from '../transmit-queue.js';
import { FeatureBit, hasFeature } from 'vfio-user-ts';
import type { InflightArea } from '../inflight-tracker.js';
import { Vring } from '../vring.js';
import { StateFile } from './state-file.js';
import { netHeaderLength } from '../net-header.js';
import { GUEST_MEMORY_TRUNCATED, type DatapathMode, type DatapathWorkerData, type FromDatapath, type QueueStart, type ToDatapath, type TxPolicy } from './messages.js';

/** Chains per burst: large enough to amortise the index reads, small enough to stay fair. */
const BURST = 256;
/** How long one scheduler turn may run before it yields to the event loop, in ms. */
const TURN_MS = 1;
/**
 * Reading the clock makes garbage (performance.now() allocates), so a turn reads it only after
 * this much work: a round where a pair moved frames costs BUSY_ROUND_COST, an idle round 1.
 */
const CLOCK_COST = 1024;
const BUSY_ROUND_COST = 64;
/** In kick mode, how long a pair keeps polling after its last work before it asks for kicks, in ms. */
const KICK_GRACE_MS = 0.05;
/**
 * A kind of driver error is reported to the control plane at most once per this many ms (the
 * counters count every one): a driver that posts a bad chain per descriptor must not turn the
 * worker's time into messages. Fatal errors are always reported: they stop the ring, so there is
 * at most one per queue start, and the control plane needs each to set DEVICE_NEEDS_RESET.
 */
const REPORT_INTERVAL_MS = 1000;
/**
 * An injected fault, for the negative control of the restart accounting only (set in the
 * device's environment, never in normal use): with `--state`, the first burst that verifies a
 * frame loses one of them from the counts (transmitq.frames and verification.verified), though
 * its chain is completed to the driver like the others. The reconciliations of the restart
 * tests must then report a mismatch of one.
 */
export const FAULT_UNCOUNTED_VERIFIED_FRAME = 'ZCNIC_FAULT_UNCOUNTED_VERIFIED_FRAME';

/** What the transmit queues do with chains whose headers are not linear (null: take any layout). */
function linearHeaderRefusal(policy: TxPolicy): LinearHeaderRefusal | null {
  return policy.requireLinearHeader ? (policy.linearHeaderRefusal ?? DEFAULT_LINEAR_HEADER_REFUSAL) : null;
}

interface ActiveQueue {
  start: QueueStart;
  watcher: FdWatcher | null;
}

export class Datapath implements QueueErrorReporter {
  private memory: GuestMemory | null = null;
  private readonly counters: Float64Array;
  private readonly pairs = new Map<number, QueuePair>();
  private readonly active = new Map<number, ActiveQueue>();
  private readonly mode: DatapathMode;
  private portOptions: PortOptions;
  private txPolicy: TxPolicy = { requireLinearHeader: false, zeroCopyMap: null };
  private readonly pcap: PcapWriter | null;
  /** Pairs with work pending, run at the next turn. */
  /** Pairs to run at the next turn (each at most once: QueuePair.queued), and the spare list. */
  private runnable: QueuePair[] = [];
  private running: QueuePair[] = [];
  private turnScheduled = false;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private shuttingDown = false;
  private readonly heapSampler: NodeJS.Timeout;
  private readonly gcObserver: PerformanceObserver;
  /** Counts committed with every transmit burst (--state), restored at the first start. */
  private readonly state: StateFile | null;
  private stateRestored = false;
  /** FAULT_UNCOUNTED_VERIFIED_FRAME is armed and has not struck yet. */
  private uncountedVerifiedFrame = process.env[FAULT_UNCOUNTED_VERIFIED_FRAME] === '1';
  /**
   * Rate limit of queueError, per kind: when it last sent one (ms, the scheduler's clock) and how
   * many it held back since. `clock` is the current turn's time, so a report reads no clock.
   */
  private readonly reportedAt = new Float64Array(QUEUE_ERROR_KINDS).fill(-Infinity);
  private readonly heldBack = new Float64Array(QUEUE_ERROR_KINDS);
  private clock = performance.now();
  /**
   * The SIGBUS guard's process-wide fault count when this worker last looked: a change means some
   * mapping (maybe one of another worker's) lost pages to a truncated file.
   */
  private faultsSeen = sys.guestFaults.total;
  /** The memory in use lost pages and the queues were stopped for it (until the next table). */
  private memoryTruncated = false;

  constructor(data: DatapathWorkerData, private readonly post: (message: FromDatapath) => void) {
    this.counters = new Float64Array(data.counters);
    this.mode = data.mode;
    this.portOptions = data.port;
    this.pcap = data.pcapPath ? new PcapWriter(data.pcapPath) : null;
    this.state = data.statePath ? new StateFile(data.statePath) : null;
    for (const index of data.pairs) {
      const pair = new QueuePair(index, this.pcap, this.counters);
      pair.port = this.createPort(pair);
      pair.verifier = data.verify ? new FrameVerifier(this.counters) : null;
      this.pairs.set(index, pair);
    }
    this.sampleHeap();
    this.heapSampler = setInterval(() => this.sampleHeap(), 1000).unref();
    this.gcObserver = new PerformanceObserver((list) => {
      this.counters[Counter.collections]! += list.getEntries().length;
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });
  }

  private sampleHeap(): void {
    this.counters[Counter.heapUsedBytes] = getHeapStatistics().used_heap_size;
  }

  handle(message: ToDatapath): void {
    switch (message.type) {
      case 'memory':
        this.post({ type: 'memoryMapped', error: this.setMemory(message.regions) });
        return;
      case 'start':
        this.post({ type: 'started', queue: message.start.queue, error: this.startQueue(message.start) });
        return;
      case 'stop':
        this.post({ type: 'stopped', queue: message.queue, base: this.stopQueue(message.queue) });
        return;
      case 'port':
        this.portOptions = message.port;
        for (const pair of this.pairs.values()) {
          pair.port = this.createPort(pair);
          this.schedule(pair);
        }
        this.post({ type: 'portSet' });
        return;
      case 'verify':
        for (const pair of this.pairs.values()) pair.verifier = message.on ? new FrameVerifier(this.counters) : null;
        this.post({ type: 'verifySet' });
        return;
      case 'txPolicy': {
        this.txPolicy = message.policy;
        const proof = message.policy.zeroCopyMap ? createZeroCopyProof(message.policy.zeroCopyMap) : null;
        const refusal = linearHeaderRefusal(message.policy);
        for (const pair of this.pairs.values()) {
          pair.zeroCopy = proof;
          const tx = pair.tx;
          if (!tx) continue;
          tx.linearHeaderRefusal = refusal;
          // Leaving stall mode is the reset that ends a stall. Done before answering, so the
          // flushed chains are completed before the control plane goes on (resetCounters).
          if (tx.stalled && refusal !== 'stall') {
            const flushed = tx.resume();
            this.event(pair.index * 2 + 1, 'linearHeaderStallEnded', `the transmit queue takes chains again; ${flushed} chains posted while it was stalled completed unsent`);
            if (tx.needsNotify) {
              tx.needsNotify = false;
              this.notify(pair.index * 2 + 1);
            }
            this.schedule(pair);
          }
        }
        this.post({ type: 'txPolicySet' });
        return;
      }
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
    if (!fatal && this.clock - this.reportedAt[kind]! < REPORT_INTERVAL_MS) {
      this.heldBack[kind]!++;
      return;
    }
    const heldBack = this.heldBack[kind]!;
    this.reportedAt[kind] = this.clock;
    this.heldBack[kind] = 0;
    const detail = describeQueueError(kind, head, a, b, c);
    this.post({ type: 'queueError', queue, kind: queueErrorNames[kind]!, detail: heldBack > 0 ? `${detail} (${heldBack} more of this kind since the last report, counted)` : detail, fatal });
  }

  /** What the datapath did on the control plane's behalf (restarts, recoveries): not rate limited. */
  private event(queue: number, kind: string, detail: string): void {
    this.post({ type: 'queueError', queue, kind, detail, fatal: false });
  }

  /**
   * Whether the guest memory in use lost pages under this worker's mappings (the frontend
   * truncated a region's file after SET_MEM_TABLE; the SIGBUS guard put zero pages there so the
   * access completed). The first time: every queue of this worker stops (the rest of the table
   * cannot be trusted either), it is counted and reported once, fatal, against `queue` (the
   * one running when it was noticed). Costs one read while nothing happened.
   */
  private noticeTruncation(queue: number): boolean {
    const total = sys.guestFaults.total;
    if (total === this.faultsSeen) return this.memoryTruncated;
    this.faultsSeen = total;
    const memory = this.memory;
    if (this.memoryTruncated || !memory) return this.memoryTruncated;
    const region = memory.truncatedRegion(sys.guestFaults);
    if (region < 0) return false;
    this.memoryTruncated = true;
    for (const pair of this.pairs.values()) {
      if (pair.tx) pair.tx.broken = true;
      if (pair.rx) pair.rx.broken = true;
    }
    this.counters[Counter.guestMemoryTruncated]!++;
    const { guestPhysAddr, size } = memory.regions[region]!;
    const at = memory.firstFaultOffset(region, sys.guestFaults);
    this.post({
      type: 'queueError',
      queue,
      kind: GUEST_MEMORY_TRUNCATED,
      detail: `guest memory region ${region} (gpa 0x${guestPhysAddr.toString(16)}, 0x${size.toString(16)} bytes) shrank under the device: its page at offset 0x${at.toString(16)} is beyond the end of its file (the frontend truncated it after SET_MEM_TABLE); the device read zeros there instead of dying of SIGBUS, and every queue of this worker stopped`,
      fatal: true,
    });
    return true;
  }

  private createPort(pair: QueuePair): Port {
    const options = this.portOptions;
    switch (options.port) {
      case 'sink':
        return new SinkPort();
      case 'reflect':
        return new ReflectPort(pair, this.counters);
      case 'gen':
        return new GenPort(pair, options.gen, options.mac, pair.index);
      case 'tap':
        return new TapPort(pair, this.counters, options.tap ?? DEFAULT_TAP, () => this.schedule(pair));
    }
  }

  /**
   * Maps a new memory table (an empty one just unmaps). The transport stops every queue first;
   * a queue still running here would point into the old mappings, so it is stopped too.
   */
  private setMemory(regions: readonly MemoryRegion[]): string | null {
    for (const queue of [...this.active.keys()]) this.stopQueue(queue);
    this.memory?.close();
    this.memory = null;
    this.memoryTruncated = false;
    if (regions.length === 0) return null;
    try {
      // Guarded: the frontend keeps the files and can truncate them under us.
      this.memory = new GuestMemory(regions, sys.mapGuest, sys.unmap, sys.mappingGuard);
    } catch (error) {
      return `cannot map guest memory: ${(error as Error).message}`;
    }
    return null;
  }

  private startQueue(start: QueueStart): string | null {
    const memory = this.memory;
    if (!memory) return 'no memory table yet';
    const pair = this.pairs.get(start.queue >> 1);
    if (!pair) return `queue ${start.queue} is not served by this worker`;
    if (this.active.has(start.queue)) this.stopQueue(start.queue);
    const eventIdx = hasFeature(start.features, FeatureBit.ringEventIdx);
    let inflight: InflightArea | null = null;
    if (start.inflight) {
      const { fd, mapOffset, mapSize, queueOffset } = start.inflight;
      try {
        // The mapping lives as long as the ring uses it (unmapped with the ArrayBuffer).
        inflight = { buffer: sys.mapShared(fd, mapOffset, mapSize), offset: queueOffset };
      } catch (error) {
        return `cannot map the inflight region: ${(error as Error).message}`;
      }
    }
    const ring = Vring.create(memory, start.addresses, eventIdx, start.base, inflight);
    if (typeof ring === 'string') return ring;
    ring.followsDriverResets = hasFeature(start.features, FeatureBit.ringReset);
    const recovery = ring.recovery;
    if (recovery && !recovery.fresh) {
      this.event(
        start.queue,
        'inflightRecovery',
        `resuming at avail index ${recovery.resumeAt} (the frontend said ${recovery.baseGiven}): ${recovery.resubmitted} heads taken and not completed are served again, ${recovery.publishedUnrecorded} used elements had been published after the region last recorded used.idx`,
      );
    }
    const indirect = hasFeature(start.features, FeatureBit.ringIndirectDesc);
    const mergeable = hasFeature(start.features, FeatureBit.netMrgRxbuf);
    const headerLength = netHeaderLength(hasFeature(start.features, FeatureBit.version1), mergeable);
    const isTransmit = (start.queue & 1) === 1;
    if (isTransmit) {
      pair.tx = new TransmitQueue(memory, ring, indirect, headerLength, this.counters, pair, this, start.queue);
      pair.tx.linearHeaderRefusal = linearHeaderRefusal(this.txPolicy);
      if (this.state) this.attachState(this.state, pair, ring, start.queue);
    }
    else pair.rx = new ReceiveQueue(memory, ring, indirect, headerLength, mergeable, this.counters, this, start.queue);
    const queue: ActiveQueue = { start, watcher: null };
    if (this.mode === 'kick') {
      ring.enableKicks();
      queue.watcher = sys.watchReadable(start.kickFd, () => {
        sys.eventfdRead(start.kickFd);
        ring.disableKicks();
        this.schedule(pair);
      });
    } else {
      ring.disableKicks();
    }
    this.active.set(start.queue, queue);
    // See Vring.notifyOnStart: completions a killed predecessor published may never have been signalled.
    if (ring.notifyOnStart()) this.notify(start.queue);
    this.schedule(pair);
    return null;
  }

  /**
   * Commits the counts before every publish of the transmitq (runPair marks them published
   * after it); at the first start of this process, continues from the commit marked published,
   * counting how far the ring's used.idx moved since as completed elsewhere (state-file.ts).
   */
  private attachState(state: StateFile, pair: QueuePair, ring: Vring, queue: number): void {
    const counters = this.counters;
    const saveFlows = (into: Float64Array): void => pair.verifier!.saveFlows(into);
    let verifiedBefore = counters[Counter.testFramesVerified]!;
    pair.tx!.beforePublish = (r) => {
      if (this.uncountedVerifiedFrame && counters[Counter.testFramesVerified]! > verifiedBefore) {
        this.uncountedVerifiedFrame = false;
        counters[Counter.testFramesVerified]!--;
        counters[Counter.txFrames]!--;
      }
      verifiedBefore = counters[Counter.testFramesVerified]!;
      state.commit(r.nextUsedIdx, counters, pair.verifier ? saveFlows : null);
    };
    if (this.stateRestored) return;
    this.stateRestored = true;
    const restored = state.restore(ring.publishedUsedIdx);
    if (!restored) {
      this.event(queue, 'stateFresh', `no commit in the state file is at or behind used.idx ${ring.publishedUsedIdx}: counting from zero`);
      return;
    }
    counters.set(restored.counters);
    counters[Counter.txCompletedElsewhere]! += restored.completedElsewhere;
    verifiedBefore = counters[Counter.testFramesVerified]!;
    if (restored.flows && pair.verifier) pair.verifier.loadFlows(restored.flows);
    this.event(
      queue,
      'stateRestored',
      `continuing from commit ${restored.generation} at used.idx ${restored.usedIdx} (the last published): ${counters[Counter.txFrames]} frames, ${counters[Counter.testFramesVerified]} verified so far; completedElsewhere=${restored.completedElsewhere} (used.idx is ${ring.publishedUsedIdx}: chains the frontend completed itself while no device was attached, frames the device never saw; ${counters[Counter.txCompletedElsewhere]} in all)`,
    );
  }

  /** Stops a queue and returns the avail index the driver should resume from. */
  private stopQueue(queueIndex: number): number {
    const queue = this.active.get(queueIndex);
    const pair = this.pairs.get(queueIndex >> 1);
    if (!queue || !pair) return 0;
    queue.watcher?.stop();
    this.active.delete(queueIndex);
    const side = (queueIndex & 1) === 1 ? pair.tx : pair.rx;
    const base = side ? side.ring.lastAvailIdx : queue.start.base;
    if ((queueIndex & 1) === 1) pair.tx = null;
    else pair.rx = null;
    return base;
  }

  private schedule(pair: QueuePair): void {
    pair.wantsRun = true;
    if (!pair.queued) {
      pair.queued = true;
      this.runnable.push(pair);
    }
    if (!this.turnScheduled && !this.shuttingDown) {
      this.turnScheduled = true;
      setImmediate(this.turn);
    }
  }

  /**
   * One turn of the scheduler: runs the runnable pairs round-robin until none has work left or
   * the turn has used TURN_MS, then yields to the event loop (control messages, timers, kicks).
   */
  private readonly turn = (): void => {
    this.turnScheduled = false;
    // Swap the lists instead of copying: a turn allocates nothing of its own.
    const pairs = this.runnable;
    this.runnable = this.running;
    this.running = pairs;
    for (let i = 0; i < pairs.length; i++) pairs[i]!.queued = false;
    let now = performance.now();
    const deadline = now + TURN_MS;
    let busy = pairs.length;
    let cost = 0;
    while (busy > 0) {
      if (cost >= CLOCK_COST) {
        cost = 0;
        now = performance.now();
        if (now >= deadline) break;
      }
      busy = 0;
      let worked = false;
      for (let i = 0; i < pairs.length; i++) {
        const pair = pairs[i]!;
        if (pair.wantsRun && this.runPair(pair, now)) {
          busy++;
          if (pair.moved) worked = true;
        }
      }
      cost += worked ? BUSY_ROUND_COST : 1;
    }
    for (let i = 0; i < pairs.length; i++) if (pairs[i]!.wantsRun) this.schedule(pairs[i]!);
    pairs.length = 0;
    this.pcap?.flush();
  };

  /**
   * Runs a pair once at time `now` (ms, recent enough for pacing and timestamps); sets and
   * returns pair.wantsRun (it has work now or is spinning).
   */
  private runPair(pair: QueuePair, now: number): boolean {
    const poll = this.mode === 'poll';
    pair.now = now;
    this.clock = now;
    let worked = false;
    let waiting = false;
    const tx = pair.tx;
    const txQueue = pair.index * 2 + 1;
    // A broken queue still runs when the driver may reset it (RING_RESET): that brings it back.
    if (tx && (!tx.broken || tx.ring.followsDriverResets)) {
      const n = tx.processBurst(BURST);
      this.noticeTruncation(txQueue);
      // The burst's commit (if any) is published now: a restart continues from it.
      if (this.state !== null && tx.beforePublish !== null) this.state.markPublished();
      if (n > 0) worked = true;
      if (tx.needsNotify) {
        tx.needsNotify = false;
        this.notify(txQueue);
      }
    }
    const rx = pair.rx;
    const port = pair.port;
    if (rx && (!rx.broken || rx.ring.followsDriverResets) && port) {
      rx.beginBurst();
      const again = port.service(now);
      rx.endBurst();
      this.noticeTruncation(pair.index * 2);
      if (again === ServiceAgain.now) worked = true;
      else if (again > 0) this.wakeLater(pair, again);
      else if (again === ServiceAgain.whenBuffers) waiting = true;
      if (rx.needsNotify) {
        rx.needsNotify = false;
        this.notify(pair.index * 2);
      }
    } else if (rx && rx.broken) {
      // The ring broke during this run's transmit burst (reflect places frames there): the
      // frames placed before the error are still delivered.
      rx.endBurst();
      if (rx.needsNotify) {
        rx.needsNotify = false;
        this.notify(pair.index * 2);
      }
    }
    pair.moved = worked;
    if (poll || worked) {
      pair.lastWorkAt = now;
      return (pair.wantsRun = true);
    }
    // Nothing to do. Under load the next burst usually comes sooner than a kick would wake us,
    // so spin a little before asking the driver for kicks again.
    if (now - pair.lastWorkAt < KICK_GRACE_MS) return (pair.wantsRun = true);
    let raced = false;
    // A stalled queue leaves kicks off: it takes nothing until resume() schedules the pair.
    if (tx && !tx.broken && !tx.stalled) {
      tx.ring.enableKicks();
      // Chains made available before the driver saw the request would never be kicked for.
      if (tx.ring.availableCount() !== 0) raced = true;
    }
    if (rx && !rx.broken) {
      if (waiting) {
        rx.ring.enableKicks();
        if (rx.ring.availableCount() !== 0) raced = true;
      } else {
        rx.ring.disableKicks();
      }
    }
    return (pair.wantsRun = raced);
  }

  private wakeLater(pair: QueuePair, ms: number): void {
    if (this.timers.has(pair.index)) return;
    this.timers.set(
      pair.index,
      setTimeout(() => {
        this.timers.delete(pair.index);
        this.schedule(pair);
      }, Math.max(1, Math.ceil(ms))),
    );
  }

  private notify(queueIndex: number): void {
    const queue = this.active.get(queueIndex);
    if (queue && queue.start.callFd >= 0) sys.eventfdWrite(queue.start.callFd, 1);
  }

  private shutdown(): void {
    this.shuttingDown = true;
    clearInterval(this.heapSampler);
    this.gcObserver.disconnect();
    for (const queue of [...this.active.keys()]) this.stopQueue(queue);
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.pcap?.close();
    this.state?.close();
    this.memory?.close();
    this.memory = null;
  }
}
