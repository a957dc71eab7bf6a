/**
 * Following a driver's own reset of one queue (VIRTIO_F_RING_RESET, inferred by
 * Virtqueue.driverReset, split or packed): the ring starts over, and the reset is counted and
 * reported once, the same for the transmitq and the receiveq. The queue clears its own state
 * (broken, stalled, what it remembers of the last frame) itself.
 */
import { Counter } from './counters.js';
import { QueueError, type QueueErrorReporter } from './queue-errors.js';
import type { Virtqueue } from './virtqueue.js';

export function followDriverReset(ring: Virtqueue, counters: Float64Array, reporter: QueueErrorReporter, queueIndex: number): void {
  const was = ring.publishedUsedIdx;
  const dropped = ring.restartAfterDriverReset();
  counters[Counter.driverQueueResets]!++;
  counters[Counter.usedDroppedByQueueReset]! += dropped;
  reporter.queueError(queueIndex, QueueError.driverQueueReset, false, 0, was, dropped, 0);
}
