/**
 * How a queue reports what a driver did wrong: the queue counts it, the reporter logs it (rate
 * limited, with context) and, for errors that break the ring, moves the device towards
 * DEVICE_NEEDS_RESET. Implemented by the datapath worker.
 */
export interface QueueErrorReporter {
  /**
   * `kind` names the counter; `fatal` means the ring can no longer be trusted and the queue has
   * stopped (the spec's DEVICE_NEEDS_RESET, 2.1.2).
   */
  queueError(queue: number, kind: string, detail: string, fatal: boolean): void;
}
