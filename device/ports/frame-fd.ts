/**
 * What ports `tap` and `wire` share: a non-blocking fd that carries one frame per read and per
 * write (a tap; one end of a wire's socket pair), opened once per datapath worker, kept while the
 * port is switched away and back, read by the port that owns it, and closed when the worker
 * shuts down (its message port closes; a running watch would keep the worker alive, and fds
 * belong to the process, not the thread).
 *
 * The watch starts with the fd and runs until the fd closes: it is level-triggered, so a wakeup
 * the owner drains (reads until EAGAIN) is not repeated, and no watcher is made per wakeup. A
 * wakeup that leads to no read before the fd is readable again (the pair's receiveq is not
 * started or broke, or the port was switched away from the fd) would fire on every turn of the
 * event loop: the fd then drops a burst of what it holds itself, counted as receiveq.noBuffers
 * like frames for a NIC without receive buffers, so a device stays idle whatever its peer sends.
 * A read of 0 bytes (the peer closed its end of a wire) or a read error ends the watch.
 *
 * A tap holds back instead of dropping (`holdsWhenNoBuffers`), as QEMU's own tap backend does:
 * the frame that found no receive buffer stays in the scratch buffer, the watch pauses, and the
 * port waits for the driver's next receiveq kick (ServiceAgain.whenBuffers), which delivers that
 * frame first and resumes the watch. Meanwhile the host's stack queues on the tap (and drops
 * past its queue length, as for any slow NIC), so a TCP sender sees backpressure rather than a
 * loss: a guest behind zcnic's tap had thousands of retransmits per 10 s iperf3 run before, none
 * behind QEMU's. A wire keeps dropping: its other end is a device, counting what it could not
 * send, and the receiving NIC's noBuffers is what the selftests read there.
 */
import { parentPort } from 'node:worker_threads';
import { byteSpace, sys, type ByteSpace, type FdWatcher } from 'vfio-user-ts';
import { Counter } from '../counters.js';
import { GsoType, NetHeader, NetHeaderFlags } from '../net-header.js';
import { MAX_GSO_FRAME_LENGTH, type WireFrame } from '../tx-frame.js';
import { ServiceAgain, type FrameReceiver, type Port } from './port.js';

/** Frames read per service call before yielding to the scheduler. */
const READ_BURST = 64;

/** The port that reads a FrameFd. */
export interface FdOwner {
  /** Asks the datapath to service the owner's pair soon: the fd has frames. */
  wake(): void;
  readonly counters: Float64Array;
}

export class FrameFd {
  /** Where frames are read to, behind `headerLength` bytes of header. */
  readonly scratch: ByteSpace;
  /** The virtio-net header in front of every frame read (a tap's; 0: none). */
  headerLength = 0;
  /** The receive header flags passed on to the receiveq (a tap's, with GUEST_CSUM). */
  receiveFlags = 0;
  /** The port that reads the fd (the last one created for it). */
  owner: FdOwner | null = null;
  /** False once close() closed the fd. */
  open = true;
  /** Wakes the owner whenever the fd is readable; stopped by close() (or the fd's end). */
  private watcher: FdWatcher | null = null;
  /** The owner was woken and has not read since. */
  private unserved = false;
  /** Keep a frame that found no receive buffer, and pause the watch, rather than drop it. */
  holdsWhenNoBuffers = false;
  /** The length (with the header) of the frame held in the scratch buffer; 0: none. */
  private heldLength = 0;

  /**
   * `what` names the fd in log lines; `headroom`: the longest header a frame is read behind.
   * Room for a GSO frame (a tap with TSO offloads hands up to 64 KiB of IP packet).
   */
  constructor(readonly fd: number, readonly what: string, headroom: number) {
    this.scratch = byteSpace(new ArrayBuffer(headroom + MAX_GSO_FRAME_LENGTH));
  }

  private readonly onReadable = (): void => {
    const owner = this.owner;
    if (owner === null) return;
    if (this.unserved) this.readInto(null, owner.counters);
    this.unserved = true;
    owner.wake();
  };

  /**
   * Reads up to a burst of frames into `receiver` (null: drops them); a frame it does not take
   * is dropped and counted (receiveq.noBuffers), like one for a NIC whose ring is empty, unless
   * the fd holds it back (holdsWhenNoBuffers). Returns ServiceAgain.now when a whole burst was
   * read (there may be more), whenBuffers while a frame is held, else onEvent.
   */
  readInto(receiver: FrameReceiver | null, counters: Float64Array): number {
    if (!this.open) return ServiceAgain.onEvent;
    this.unserved = false;
    if (this.heldLength !== 0) {
      if (receiver !== null && !this.offer(receiver, this.heldLength)) return ServiceAgain.whenBuffers;
      if (receiver === null) counters[Counter.rxNoBuffers]!++;
      this.heldLength = 0;
      this.watch();
    }
    const bytes = this.scratch.bytes;
    const headerLength = this.headerLength;
    for (let i = 0; i < READ_BURST; i++) {
      let n: number;
      try {
        n = sys.readFd(this.fd, bytes, 0, headerLength + MAX_GSO_FRAME_LENGTH);
      } catch (err) {
        // Not expected from an open tap or socket: say so and stop reading it (the
        // level-triggered watch of a broken fd would fire forever).
        this.ended(`${(err as Error).message}; no longer reading it`);
        return ServiceAgain.onEvent;
      }
      if (n === 0) {
        // Nobody writes a frame of 0 bytes (port wire sends none): the other end is closed.
        this.ended('the other end closed');
        return ServiceAgain.onEvent;
      }
      if (n <= headerLength) return ServiceAgain.onEvent;
      if (receiver !== null && this.offer(receiver, n)) continue;
      if (receiver !== null && this.holdsWhenNoBuffers) {
        this.heldLength = n;
        this.pauseWatch();
        return ServiceAgain.whenBuffers;
      }
      counters[Counter.rxNoBuffers]!++;
    }
    return ServiceAgain.now;
  }

  /** Offers the frame of `n` bytes (with the header) in the scratch buffer; whether it was taken. */
  private offer(receiver: FrameReceiver, n: number): boolean {
    const view = this.scratch.view;
    const headerLength = this.headerLength;
    // A wire carries no header; a tap's GSO fields (only with the TSO offloads its port set)
    // go on as they are: the receiveq places no type the driver did not negotiate.
    const flags = headerLength === 0 ? 0 : view.getUint8(NetHeader.flags) & this.receiveFlags;
    const partial = (flags & NetHeaderFlags.needsCsum) !== 0;
    const csumStart = partial ? view.getUint16(NetHeader.csumStart, true) : 0;
    const csumOffset = partial ? view.getUint16(NetHeader.csumOffset, true) : 0;
    const gsoType = headerLength === 0 ? GsoType.none : view.getUint8(NetHeader.gsoType);
    const gsoSize = gsoType === GsoType.none ? 0 : view.getUint16(NetHeader.gsoSize, true);
    const hdrLen = gsoType === GsoType.none ? 0 : view.getUint16(NetHeader.hdrLen, true);
    return receiver.receive(this.scratch, headerLength, n - headerLength, flags, csumStart, csumOffset, gsoType, gsoSize, hdrLen);
  }

  /** The fd will give nothing more: its watch stops, and it is closed with the others. */
  protected ended(why: string): void {
    console.error(`zcnic: ${this.what}: ${why}`);
    this.watcher?.stop();
    this.watcher = null;
    this.owner = null;
  }

  /** Stops the watch and closes the fd, once. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.watcher?.stop();
    this.watcher = null;
    this.owner = null;
    sys.close(this.fd);
  }

  /** Starts the watch (openFrameFd does, once the fd is set up; readInto after a held frame went). */
  watch(): void {
    if (this.watcher === null && this.open) this.watcher = sys.watchReadable(this.fd, this.onReadable);
  }

  /** While a frame is held: the fd stays readable, and a level-triggered watch would spin. */
  private pauseWatch(): void {
    this.watcher?.stop();
    this.watcher = null;
  }
}

/**
 * A port on a FrameFd (tap, wire): it opens the fd (once per worker) and owns it from then on,
 * reading it in service(); an fd it cannot open makes it drop everything (see `error`), the
 * worker going on.
 */
export abstract class FrameFdPort<T extends FrameFd> implements Port, FdOwner {
  /** Null when the fd could not be opened (see `error`). */
  protected readonly link: T | null = null;
  /** Why the fd could not be opened, if it could not. */
  readonly error: string | null = null;

  /**
   * `open` opens the fd (openFrameFd) or throws why it cannot, `what` (e.g. 'tap zc0') names it
   * in the error; `wake` asks the datapath to service this port's pair soon (called when the fd
   * has frames).
   */
  constructor(
    protected readonly receiver: FrameReceiver,
    readonly counters: Float64Array,
    readonly wake: () => void,
    what: string,
    open: () => T,
  ) {
    try {
      this.link = open();
      this.link.owner = this;
    } catch (err) {
      // The worker must not go down with a bad name, fd or a missing CAP_NET_ADMIN.
      this.error = `${what}: ${(err as Error).message}`;
      console.error(`zcnic: port ${what.split(' ')[0]} unusable, dropping every frame: ${this.error}`);
    }
  }

  abstract transmit(frame: WireFrame): void;

  service(_now: number): number {
    const link = this.link;
    // Not ours to read (a newer port took it, or it closed).
    if (link === null || link.owner !== this) return ServiceAgain.onEvent;
    return link.readInto(this.receiver, this.counters);
  }
}

/** This thread's open frame fds, by key ('tap zc0', 'wire 3'). */
const opened = new Map<string, FrameFd>();
let closesWithWorker = false;

/**
 * The frame fd of this thread under `key`, made by `make` (which opens and sets it up, and closes
 * what it opened if it throws) and watched the first time. A key belongs to one kind of fd: the
 * caller gets back what its own `make` made.
 */
export function openFrameFd<T extends FrameFd>(key: string, make: () => T): T {
  const existing = opened.get(key);
  if (existing) return existing as T;
  if (!closesWithWorker) {
    closesWithWorker = true;
    parentPort?.once('close', () => closeFrameFds(''));
  }
  const made = make();
  try {
    made.watch();
  } catch (err) {
    made.close();
    throw err;
  }
  opened.set(key, made);
  return made;
}

/** Stops the watch of and closes every frame fd of this thread whose key starts with `prefix`. */
export function closeFrameFds(prefix: string): void {
  for (const [key, fd] of opened) {
    if (!key.startsWith(prefix)) continue;
    fd.close();
    opened.delete(key);
  }
}
