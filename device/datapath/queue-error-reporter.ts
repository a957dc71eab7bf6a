/**
 * What the worker tells the control plane about its queues, as queueError messages. Driver
 * errors are counted by the queues, every one; a kind is reported at most once per
 * REPORT_INTERVAL_MS, with how many were held back since, and its line is built only then.
 */
import { describeQueueError, QUEUE_ERROR_KINDS, queueErrorNames, type QueueErrorKind } from '../queue-errors.js';
import type { FromDatapath } from './messages.js';

/**
 * A kind of driver error is reported to the control plane at most once per this many ms (the
 * counters count every one): a driver that posts a bad chain per descriptor must not turn the
 * worker's time into messages. Fatal errors are always reported: they stop the ring, so there is
 * at most one per queue start, and the control plane needs each to set DEVICE_NEEDS_RESET.
 */
const REPORT_INTERVAL_MS = 1000;

/** The time of the scheduler's current run (ms), so that a report reads no clock. */
export interface RunClock {
  readonly now: number;
}

export class RateLimitedQueueErrors {
  /** Per kind: when one was last sent (ms, the run clock) and how many were held back since. */
  private readonly reportedAt = new Float64Array(QUEUE_ERROR_KINDS).fill(-Infinity);
  private readonly heldBack = new Float64Array(QUEUE_ERROR_KINDS);

  constructor(private readonly post: (message: FromDatapath) => void, private readonly clock: RunClock) {}

  /** A driver error a queue counted (see QueueErrorReporter.queueError). */
  report(queue: number, kind: QueueErrorKind, fatal: boolean, head: number, a: number, b: number, c: number): void {
    const now = this.clock.now;
    if (!fatal && now - this.reportedAt[kind]! < REPORT_INTERVAL_MS) {
      this.heldBack[kind]!++;
      return;
    }
    const heldBack = this.heldBack[kind]!;
    this.reportedAt[kind] = now;
    this.heldBack[kind] = 0;
    const detail = describeQueueError(kind, head, a, b, c);
    this.send(queue, queueErrorNames[kind]!, heldBack > 0 ? `${detail} (${heldBack} more of this kind since the last report, counted)` : detail, fatal);
  }

  /** A message that is not rate limited: what the worker did (restarts, recoveries) or a fatal condition of its own. */
  send(queue: number, kind: string, detail: string, fatal: boolean): void {
    this.post({ type: 'queueError', queue, kind, detail, fatal });
  }
}
