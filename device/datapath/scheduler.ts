/**
 * When each queue pair of a worker runs. Kick mode: a pair is scheduled by a kick (or a port's
 * wakeup) and a turn runs the runnable pairs round-robin for at most TURN_MS; a pair that runs
 * dry polls KICK_GRACE_MS more before it asks the driver for kicks again (enable, then re-check
 * the index). Poll mode: pairs never leave the run list.
 *
 * This is the hot loop: a turn allocates nothing and makes no closures; it calls the queues'
 * bursts, each of which moves up to CHAINS_PER_BURST chains.
 */
import type { PcapWriter } from '../pcap-writer.js';
import { ServiceAgain } from '../ports/port.js';
import type { QueuePair } from '../queue-pair.js';
import type { DatapathMode } from './messages.js';
import type { RunClock } from './queue-error-reporter.js';
import type { StateKeeper } from './state-keeper.js';

/**
 * Chains per transmit burst: large enough to amortise the index reads, small enough to stay
 * fair. Under VIRTIO_F_IN_ORDER a burst is published as one used element (the fuzzer's model
 * predicts where bursts end from this).
 */
export const CHAINS_PER_BURST = 256;
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

/** What a pair's receive side did in one run. */
const ReceiveOutcome = { idle: 0, worked: 1, waitingForBuffers: 2 } as const;
type ReceiveOutcome = (typeof ReceiveOutcome)[keyof typeof ReceiveOutcome];

/** What the scheduler needs from the datapath around a pair's bursts. */
export interface SchedulerHost {
  /** Signals the driver on the queue's call eventfd. */
  notify(queue: number): void;
  /** Checks after a burst whether guest memory lost pages (Datapath.noticeTruncation). */
  noticeTruncation(queue: number): boolean;
}

export class Scheduler implements RunClock {
  /** The time of the run in progress (ms): recent enough for pacing, timestamps and report limits. */
  now = performance.now();
  /** Pairs to run at the next turn (each at most once: QueuePair.queued), and the spare list. */
  private runnable: QueuePair[] = [];
  private running: QueuePair[] = [];
  private turnScheduled = false;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly mode: DatapathMode,
    private readonly host: SchedulerHost,
    private readonly pcap: PcapWriter | null,
    private readonly state: StateKeeper | null,
  ) {}

  schedule(pair: QueuePair): void {
    pair.wantsRun = true;
    if (!pair.queued) {
      pair.queued = true;
      this.runnable.push(pair);
    }
    if (!this.turnScheduled && !this.stopped) {
      this.turnScheduled = true;
      setImmediate(this.turn);
    }
  }

  /** No more turns; pending wakeups are cancelled. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /**
   * One turn: runs the runnable pairs round-robin until none has work left or the turn has used
   * TURN_MS, then yields to the event loop (control messages, timers, kicks).
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
    pair.now = now;
    this.now = now;
    const transmitted = this.runTransmit(pair);
    const received = this.runReceive(pair, now);
    const worked = transmitted || received === ReceiveOutcome.worked;
    pair.moved = worked;
    if (this.mode === 'poll' || worked) {
      pair.lastWorkAt = now;
      return (pair.wantsRun = true);
    }
    // Nothing to do. Under load the next burst usually comes sooner than a kick would wake us,
    // so spin a little before asking the driver for kicks again.
    if (now - pair.lastWorkAt < KICK_GRACE_MS) return (pair.wantsRun = true);
    return (pair.wantsRun = this.rearmKicks(pair, received === ReceiveOutcome.waitingForBuffers));
  }

  /** One transmitq burst; whether it moved chains. */
  private runTransmit(pair: QueuePair): boolean {
    const tx = pair.tx;
    // A broken queue still runs when the driver may reset it (RING_RESET): that brings it back.
    if (tx === null || (tx.broken && !tx.ring.followsDriverResets)) return false;
    const queue = pair.index * 2 + 1;
    const moved = tx.processBurst(CHAINS_PER_BURST);
    this.host.noticeTruncation(queue);
    // The burst's commit (if any) is published now: a restart continues from it.
    if (this.state !== null && tx.beforePublish !== null) this.state.markPublished();
    if (tx.needsNotify) {
      tx.needsNotify = false;
      this.host.notify(queue);
    }
    return moved > 0;
  }

  /** Lets the port fill the receiveq once, and publishes what it placed. */
  private runReceive(pair: QueuePair, now: number): ReceiveOutcome {
    const rx = pair.rx;
    if (rx === null) return ReceiveOutcome.idle;
    const port = pair.port;
    const queue = pair.index * 2;
    let outcome: ReceiveOutcome = ReceiveOutcome.idle;
    if (port !== null && (!rx.broken || rx.ring.followsDriverResets)) {
      rx.beginBurst();
      const again = port.service(now);
      rx.endBurst();
      this.host.noticeTruncation(queue);
      if (again === ServiceAgain.now) outcome = ReceiveOutcome.worked;
      else if (again > 0) this.wakeLater(pair, again);
      else if (again === ServiceAgain.whenBuffers) outcome = ReceiveOutcome.waitingForBuffers;
    } else if (rx.broken) {
      // The ring broke during this run's transmit burst (reflect places frames there): the
      // frames placed before the error are still delivered.
      rx.endBurst();
    } else {
      return ReceiveOutcome.idle;
    }
    if (rx.needsNotify) {
      rx.needsNotify = false;
      this.host.notify(queue);
    }
    return outcome;
  }

  /**
   * A pair that ran dry asks the driver for kicks again: the transmitq always, the receiveq when
   * its port waits for buffers. Returns whether buffers came meanwhile (run again now).
   */
  private rearmKicks(pair: QueuePair, waitingForBuffers: boolean): boolean {
    const tx = pair.tx;
    const rx = pair.rx;
    let raced = false;
    // A stalled queue leaves kicks off: it takes nothing until resume() schedules the pair.
    if (tx && !tx.broken && !tx.stalled) {
      tx.ring.enableKicks();
      // Chains made available before the driver saw the request would never be kicked for.
      if (tx.ring.availableCount() !== 0) raced = true;
    }
    if (rx && !rx.broken) {
      if (waitingForBuffers) {
        rx.ring.enableKicks();
        if (rx.ring.availableCount() !== 0) raced = true;
      } else {
        rx.ring.disableKicks();
      }
    }
    return raced;
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
}
