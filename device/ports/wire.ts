/**
 * `wire`: joins this NIC to another zcnic NIC back to back, queue pair for queue pair: what this
 * NIC's transmitq k sends arrives on the other's receiveq k, and the other way round. Each NIC has
 * its own `zcnic device` process (its own counters, chain shapes and failures); the link is one
 * connected unix SOCK_SEQPACKET socket pair per queue pair, whose ends whoever starts both devices
 * makes and hands to each as inherited fds (`zcnic device --port wire --wire-fds 3,4`;
 * harness/device-process.ts: createWire, ZcnicDevice.start({ wireFds })).
 *
 * SOCK_SEQPACKET rather than SOCK_DGRAM: both keep frame boundaries, and neither end of a socket
 * pair is held to net.unix.max_dgram_qlen (only the writer's send buffer bounds what waits for the
 * reader), but a seqpacket pair is a connection: when the other device exits, reads return 0
 * (the watch here stops instead of firing on a dead peer) and writes fail with EPIPE (the port
 * stops writing), where a datagram pair's reader never learns of it.
 *
 * Transmitq frames are linearized (checksum completed; a GSO frame comes here cut into wire
 * frames) and written as they are, one message each, no virtio-net header: the other NIC's
 * receiveq gets plain frames with no flags. A frame the link does not take (the other device has
 * not read its burst yet and the send buffer is full: EAGAIN; it is gone) is dropped and counted
 * (portTxDropped), as on a wire: the transmitq never waits for the other NIC. The send buffer is
 * made large (SEND_BUFFER, best effort) so that a burst is not cut at the ~90 full-size frames
 * of the default. Frames from the link go to the receiveq; one that finds no receive buffer
 * posted is dropped and counted (receiveq.noBuffers), like a NIC whose ring is empty.
 *
 * Each end is opened and watched once per worker (frame-fd.ts, shared with port tap), kept while
 * the port is switched away and back, and closed when the worker shuts down.
 */
import { sys } from 'vfio-user-ts';
import { Counter } from '../counters.js';
import { MAX_FRAME_LENGTH, type WireFrame } from '../tx-frame.js';
import { closeFrameFds, FrameFd, FrameFdPort, openFrameFd } from './frame-fd.js';
import { ServiceAgain, type FrameReceiver } from './port.js';

/** The send buffer asked for (SO_SNDBUFFORCE as root): about 3600 frames of 1514 bytes. */
export const SEND_BUFFER = 4 << 20;

/** One end of a wire, as this worker has it open. */
class WireEnd extends FrameFd {
  /** The other end is closed (EOF, EPIPE): frames are dropped without a system call. */
  peerGone = false;

  constructor(fd: number, pair: number) {
    super(fd, `port wire (queue pair ${pair}, fd ${fd})`, 0);
  }

  protected override ended(why: string): void {
    this.peerGone = true;
    super.ended(why);
  }

  /** Writes one frame; false when it is dropped. */
  write(frame: WireFrame): boolean {
    let written: number;
    try {
      written = sys.writeFd(this.fd, frame.linear, 0, frame.length);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN') {
        this.peerGone = true;
        console.error(`zcnic: ${this.what}: the other end is gone (${code}); dropping what is sent`);
      }
      return false;
    }
    return written === frame.length;
  }
}

/**
 * Why `fd` cannot be an end of a wire, or null: it must be an open unix SOCK_SEQPACKET socket
 * (socketPair()).
 */
export function wireFdProblem(fd: number): string | null {
  let type: number;
  try {
    type = sys.socketType(fd);
  } catch (err) {
    return `fd ${fd} is not open (${(err as Error).message})`;
  }
  if (type === -1) return `fd ${fd} is not a socket`;
  if (type !== sys.SocketType.seqpacket) return `fd ${fd} is a socket of type ${type}, not SOCK_SEQPACKET (${sys.SocketType.seqpacket})`;
  return null;
}

/** Stops the watches of and closes every wire end of this thread (the worker does it when it shuts down). */
export function closeWires(): void {
  closeFrameFds('wire ');
}

/** Opens (once per worker) the wire end `fd` of queue pair `pair`. */
function openWire(fd: number, pair: number): WireEnd {
  return openFrameFd(`wire ${fd}`, () => {
    const problem = wireFdProblem(fd);
    if (problem !== null) throw new Error(problem);
    try {
      sys.setSendBuffer(fd, SEND_BUFFER);
    } catch {
      // Best effort: the default buffer drops sooner, counted all the same.
    }
    return new WireEnd(fd, pair);
  });
}

/** A queue pair as the wire needs it: its index, and whether the driver uses its receiveq. */
export interface WirePair extends FrameReceiver {
  readonly index: number;
  /** Null while the driver does not use the receiveq (not started, or disabled). */
  readonly rx: unknown;
}

/**
 * One NIC's wire ports on one worker, in queue pair order (the last one made for each pair), so
 * that a pair's port can read for another's (reader).
 */
export class WireGroup {
  readonly ports = new Map<number, WirePort>();

  /**
   * The pair whose receiveq takes what arrives on `pair`'s end of the wire: `pair` itself while
   * its driver uses that receiveq, else the group's first pair whose receiveq is in use (as a
   * NIC's receive steering points only at queues in use). virtio_net on one vCPU uses one queue
   * pair of several and still sends XDP_TX on transmitq 1: queue for queue alone, those frames
   * found no receive buffer on the other NIC. Pairs on other workers are out of reach; with no
   * pair in use, `pair` (its fd then drops what it holds, counted as receiveq.noBuffers).
   */
  reader(pair: WirePair): WirePair {
    if (pair.rx !== null) return pair;
    for (const port of this.ports.values()) if (port.pair.rx !== null) return port.pair;
    return pair;
  }
}

export class WirePort extends FrameFdPort<WireEnd> {
  /**
   * `fd`: queue pair `pair`'s end of the wire (undefined: the device has none for it); `group`:
   * the NIC's wire ports on this worker; `wake` schedules the pair that reads it when it has frames.
   */
  constructor(
    readonly pair: WirePair,
    private readonly group: WireGroup,
    counters: Float64Array,
    fd: number | undefined,
    wake: (reader: WirePair) => void,
  ) {
    super(pair, counters, () => wake(group.reader(pair)), `wire of queue pair ${pair.index}`, () => {
      if (fd === undefined) throw new Error('the device has no end of it (zcnic device --wire-fds)');
      return openWire(fd, pair.index);
    });
    group.ports.set(pair.index, this);
  }

  /** Its own end, then the ends of the pairs it reads for (WireGroup.reader). */
  override service(now: number): number {
    let again = super.service(now);
    for (const other of this.group.ports.values()) {
      if (other === this || other.pair.rx !== null || this.group.reader(other.pair) !== this.pair) continue;
      const link = other.link;
      if (link === null || link.owner !== other) continue;
      if (link.readInto(this.pair, this.counters) === ServiceAgain.now) again = ServiceAgain.now;
    }
    return again;
  }

  /** A wire frame (complete checksum, one segment), written as it is. */
  transmit(frame: WireFrame): void {
    const wire = this.link;
    // A frame of 0 bytes would read as the end of the link on the other side.
    if (wire === null || !wire.open || wire.peerGone || frame.length === 0 || frame.length > MAX_FRAME_LENGTH || !frame.linearize() || !wire.write(frame)) {
      this.counters[Counter.portTxDropped]!++;
    }
  }
}
