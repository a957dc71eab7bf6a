/**
 * `tap`: joins the device to a host tap interface, so that a real network stack (the host's, or
 * one in a network namespace the tap was moved into) terminates the guest's flows. Transmitq
 * frames are written to the tap (linearized: a checksum the driver left partial is completed);
 * frames the host sends out of the tap go to the receiveq, and one that finds no receive buffer
 * posted is dropped and counted (receiveq.noBuffers), like a NIC whose ring is empty.
 *
 * The tap is opened by name (created if missing, IFF_TAP | IFF_NO_PI) the first time a worker
 * needs it and stays open for the life of the worker: switching the port to sink and back keeps
 * the interface (and whatever namespace and addresses the host gave it). A tap without
 * IFF_MULTI_QUEUE takes one fd, so one worker serves it: with several queue pairs on one
 * worker, every pair writes to it and the most recently created tap port reads it (one fd can
 * have one watcher per thread, so the watch belongs to the tap, and it wakes that port). The
 * watch starts with the tap and runs until closeTaps(): it is level-triggered, so a wakeup that
 * the port drains (reads until EAGAIN) is not repeated, and no watcher is made per wakeup.
 */
import { parentPort } from 'node:worker_threads';
import { byteSpace, sys, type ByteSpace, type FdWatcher } from 'vfio-user-ts';
import { Counter } from '../counters.js';
import type { WireFrame } from '../tx-frame.js';
import { ServiceAgain, type FrameReceiver, type Port } from './port.js';

/** Frames read from the tap per service call before yielding to the scheduler. */
const READ_BURST = 64;
/** A frame as large as a tap can hand us (64 KiB; the MTU keeps them far smaller). */
const READ_SIZE = 65536;

/** One open tap of this worker. */
interface Tap {
  readonly fd: number;
  readonly scratch: ByteSpace;
  /** Wakes the owner whenever the tap is readable; stopped by closeTaps() (or a read error). */
  watcher: FdWatcher | null;
  /** The port that reads the tap (the last one created for it). */
  owner: TapPort | null;
  /** False once closeTaps() closed the fd. */
  open: boolean;
}

/** This worker's open taps, by name (closed when the worker shuts down). */
const taps = new Map<string, Tap>();

/**
 * Stops every watcher and closes every tap of this thread. The datapath worker closes its
 * message port on shutdown, which calls this: a running watcher would keep the worker alive, and
 * the tap would outlive the device (fds belong to the process, not the thread).
 */
export function closeTaps(): void {
  for (const tap of taps.values()) {
    tap.watcher?.stop();
    tap.watcher = null;
    tap.owner = null;
    tap.open = false;
    sys.close(tap.fd);
  }
  taps.clear();
}

/** Opens (once per worker) the tap `name`. */
function openTap(name: string): Tap {
  let tap = taps.get(name);
  if (!tap) {
    if (taps.size === 0) parentPort?.once('close', closeTaps);
    const fd = sys.tunOpen(name);
    const opened: Tap = { fd, scratch: byteSpace(new ArrayBuffer(READ_SIZE)), watcher: null, owner: null, open: true };
    try {
      opened.watcher = sys.watchReadable(fd, () => opened.owner?.wake());
    } catch (err) {
      sys.close(fd);
      throw err;
    }
    taps.set(name, opened);
    tap = opened;
  }
  return tap;
}

export class TapPort implements Port {
  /** Null when the tap could not be opened (see `error`): the port then drops everything. */
  private readonly tap: Tap | null = null;
  /** Why the tap could not be opened, if it could not. */
  readonly error: string | null = null;

  /**
   * `wake` asks the datapath to service this port's pair soon (called when the tap becomes
   * readable).
   */
  constructor(
    private readonly receiver: FrameReceiver,
    private readonly counters: Float64Array,
    name: string,
    readonly wake: () => void,
  ) {
    try {
      this.tap = openTap(name);
      this.tap.owner = this;
    } catch (err) {
      // The worker must not go down with a bad name or a missing CAP_NET_ADMIN.
      this.error = `tap ${name}: ${(err as Error).message}`;
      console.error(`zcnic: port tap unusable, dropping every frame: ${this.error}`);
    }
  }

  transmit(frame: WireFrame): void {
    // A full tap queue (the host side is not reading) drops the frame, like a wire would.
    const tap = this.tap;
    if (!tap || !tap.open || !frame.linearize() || this.write(tap.fd, frame.linear, frame.length) !== frame.length) {
      this.counters[Counter.portTxDropped]!++;
    }
  }

  /** One frame to the tap; -1 when it cannot take it (queue full: EAGAIN; interface down: EIO). */
  private write(fd: number, bytes: Uint8Array, length: number): number {
    try {
      return sys.writeFd(fd, bytes, 0, length);
    } catch {
      return -1;
    }
  }

  service(_now: number): number {
    const tap = this.tap;
    // Not ours to read (a newer tap port took it, or the tap closed); an empty tap costs one read.
    if (!tap || tap.owner !== this) return ServiceAgain.onEvent;
    const bytes = tap.scratch.bytes;
    for (let i = 0; i < READ_BURST; i++) {
      let n: number;
      try {
        n = sys.readFd(tap.fd, bytes, 0, READ_SIZE);
      } catch (err) {
        // Not expected from an open tap; say so and stop reading it (and watching it: the
        // level-triggered watch of a broken fd would fire forever).
        console.error(`zcnic: port tap: ${(err as Error).message}; no longer reading the tap`);
        tap.watcher?.stop();
        tap.watcher = null;
        tap.owner = null;
        return ServiceAgain.onEvent;
      }
      if (n <= 0) return ServiceAgain.onEvent;
      if (!this.receiver.receive(tap.scratch, 0, n)) this.counters[Counter.rxNoBuffers]!++;
    }
    return ServiceAgain.now;
  }
}
