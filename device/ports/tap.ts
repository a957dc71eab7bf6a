/**
 * `tap`: joins the device to a host tap interface, so that a real network stack (the host's, or
 * one in a network namespace the tap was moved into) terminates the guest's flows. Transmitq
 * frames are written to the tap with their virtio-net header (IFF_VNET_HDR), as the driver sent
 * them: the host kernel completes a partial checksum where it needs one (a frame delivered
 * locally keeps it partial, as from any offloading NIC) and segments a GSO frame where it must
 * (with --tso; a local TCP socket takes it whole). One writev per frame gathers the header and
 * the frame's bytes from the guest's buffers, without a copy (a tap takes one frame per write, so
 * frames cannot share a system call). With the pcap or the verifier on, the device does that
 * work itself so that they see wire frames, and the tap gets those with an empty header.
 * Frames the host sends out of the tap go to the receiveq; one that finds no receive buffer
 * posted is held back until the driver posts some, and the host queues behind it (frame-fd.ts,
 * holdsWhenNoBuffers), as with QEMU's own tap backend. Their
 * checksum flags go on to a driver that negotiated GUEST_CSUM: the host may then leave checksums
 * partial (TUNSETOFFLOAD TUN_F_CSUM; NEEDS_CSUM) and says which ones it checked (DATA_VALID).
 * Without GUEST_CSUM the tap takes no offloads and the flags are dropped (a DATA_VALID only
 * spares the driver a check). With GUEST_TSO4/TSO6 (zcnic device --guest-tso) the tap also takes
 * TSO (TUNSETOFFLOAD TSO4/TSO6/ECN, as negotiated): the host kernel hands TCP GSO frames (its GSO,
 * and GRO of what it forwards) of up to 64 KiB with their header, which the receiveq spreads
 * over mergeable buffers; without them the host segments every packet.
 *
 * The tap is opened by name (created if missing, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) the first
 * time a worker needs it and stays open for the life of the worker (frame-fd.ts): switching the
 * port to sink and back keeps the interface (and whatever namespace and addresses the host gave
 * it). A tap without IFF_MULTI_QUEUE takes one fd, so one worker serves it: with several queue
 * pairs on one worker, every pair writes to it and the most recently created tap port reads it
 * (one fd can have one watcher per thread, so the watch belongs to the tap, and it wakes that
 * port).
 */
import { byteSpace, FeatureBit, hasFeature, sys, type FeatureWord } from 'vfio-user-ts';
import { Counter } from '../counters.js';
import { receiveGsoOffloads } from '../gso.js';
import { GsoType, negotiatedHeaderLength, NetHeader, NetHeaderFlags, netHeaderLength } from '../net-header.js';
import { MAX_GSO_FRAME_LENGTH, type TxFrame, type WireFrame } from '../tx-frame.js';
import { closeFrameFds, FrameFd, FrameFdPort, openFrameFd } from './frame-fd.js';
import type { FrameReceiver } from './port.js';

/** The longest virtio-net header a driver negotiates (VERSION_1 or MRG_RXBUF). */
const MAX_HEADER_LENGTH = netHeaderLength(true, true);
/** What a fresh IFF_VNET_HDR tap expects (struct virtio_net_hdr) until TUNSETVNETHDRSZ. */
const TAP_DEFAULT_HEADER_LENGTH = netHeaderLength(false, false);

/** One open tap of this worker. */
class Tap extends FrameFd {
  /** The virtio-net header of the frame being written. */
  readonly txHeader = byteSpace(new ArrayBuffer(MAX_HEADER_LENGTH));
  /**
   * The writev pieces of the frame being written: the header, then the frame's bytes where they
   * lie (guest buffers, or a linear copy). Kept for the tap's life: a write allocates nothing.
   */
  readonly pieces: Uint8Array[] = new Array<Uint8Array>(sys.MAX_WRITEV_PIECES).fill(this.txHeader.bytes);
  /** Each piece's start in its buffer, and length. */
  readonly pieceOffsets = new Float64Array(sys.MAX_WRITEV_PIECES);
  readonly pieceLengths = new Float64Array(sys.MAX_WRITEV_PIECES);

  /** The TUN_F_* offloads set (TUNSETOFFLOAD): what the host may hand us partial or whole. */
  offloads = 0;

  constructor(fd: number, name: string) {
    super(fd, `port tap ${name}`, MAX_HEADER_LENGTH);
    this.headerLength = TAP_DEFAULT_HEADER_LENGTH;
    this.holdsWhenNoBuffers = true;
  }
}

/** TUN_F_* bits of linux/if_tun.h beyond TUN_F_CSUM. */
const TUN_F_TSO4 = 0x02;
const TUN_F_TSO6 = 0x04;
const TUN_F_TSO_ECN = 0x08;

/**
 * The tap offloads that match what the driver takes on receive: partial checksums with
 * GUEST_CSUM, and on top of it (the kernel wants TUN_F_CSUM with any GSO bit) TCP GSO frames of
 * the IP versions it negotiated GUEST_TSO4/TSO6 for, ECN with GUEST_ECN. Not USO: the device
 * offers no GUEST_USO4/6 (no QEMU passes them on). Without GUEST_CSUM: none, so the host kernel
 * completes and segments everything.
 */
export function tapOffloads(features: FeatureWord): number {
  const gso = receiveGsoOffloads(features);
  if (!hasFeature(features, FeatureBit.netGuestCsum)) return 0;
  let flags = sys.TUN_F_CSUM;
  if (gso.tcp4) flags |= TUN_F_TSO4;
  if (gso.tcp6) flags |= TUN_F_TSO6;
  if ((gso.tcp4 || gso.tcp6) && gso.ecn) flags |= TUN_F_TSO_ECN;
  return flags;
}

/** Stops every watcher and closes every tap of this thread (the worker does it when it shuts down). */
export function closeTaps(): void {
  closeFrameFds('tap ');
}

/** Opens (once per worker) the tap `name`. */
function openTap(name: string): Tap {
  return openFrameFd(`tap ${name}`, () => {
    const fd = sys.tunOpen(name, true);
    try {
      // A tap is created with checksum and TSO offloads on; we take none until the driver can.
      sys.tunSetOffload(fd, 0);
    } catch (err) {
      sys.close(fd);
      throw err;
    }
    return new Tap(fd, name);
  });
}

export class TapPort extends FrameFdPort<Tap> {
  constructor(receiver: FrameReceiver, counters: Float64Array, name: string, wake: () => void) {
    super(receiver, counters, wake, `tap ${name}`, () => openTap(name));
  }

  /** The driver's features: the tap's header is made the driver's, its offloads what it takes. */
  setNegotiated(features: FeatureWord): void {
    const tap = this.link;
    if (!tap || !tap.open) return;
    const headerLength = negotiatedHeaderLength(features);
    const guestChecksum = hasFeature(features, FeatureBit.netGuestCsum);
    const receiveFlags = guestChecksum ? NetHeaderFlags.needsCsum | NetHeaderFlags.dataValid : 0;
    const offloads = tapOffloads(features);
    try {
      if (headerLength !== tap.headerLength) sys.tunSetVnetHeaderSize(tap.fd, headerLength);
      tap.headerLength = headerLength;
      if (offloads !== tap.offloads) sys.tunSetOffload(tap.fd, offloads);
      tap.offloads = offloads;
      tap.receiveFlags = receiveFlags;
    } catch (err) {
      // Not expected (the kernel takes 10, 12, TUN_F_CSUM and the TSO bits); frames would be misread, so take none.
      console.error(`zcnic: port tap: ${(err as Error).message}; no longer using the tap`);
      closeTaps();
    }
  }

  /** A wire frame (complete checksum, one segment): an empty header in front. */
  transmit(frame: WireFrame): void {
    const tap = this.link;
    if (!tap || !tap.open || !frame.linearize()) {
      this.counters[Counter.portTxDropped]!++;
      return;
    }
    tap.txHeader.bytes.fill(0);
    this.writeLinear(tap, frame);
  }

  /**
   * A frame as the driver sent it, header fields and all, for the host kernel to finish; its
   * bytes go from the guest's buffers straight to the tap (one writev, no copy).
   */
  transmitWithHeader(frame: TxFrame): void {
    const tap = this.link;
    if (!tap || !tap.open || frame.length > MAX_GSO_FRAME_LENGTH) {
      this.counters[Counter.portTxDropped]!++;
      return;
    }
    const pieces = frame.gather(tap.pieces, tap.pieceOffsets, tap.pieceLengths, 1);
    if (pieces >= 0) {
      this.setHeader(tap, frame);
      this.write(tap, pieces, tap.headerLength + frame.length);
      return;
    }
    // More pieces than one writev takes (a driver's tiny buffers): the frame is copied once.
    // linearize() completes the checksum of a frame without GSO, which then goes as a wire frame.
    if (frame.gsoType === GsoType.none) {
      this.transmit(frame);
      return;
    }
    if (!frame.linearize()) {
      this.counters[Counter.portTxDropped]!++;
      return;
    }
    this.setHeader(tap, frame);
    this.writeLinear(tap, frame);
  }

  /** Fills the tap's transmit header with the frame's virtio-net header fields. */
  private setHeader(tap: Tap, frame: TxFrame): void {
    const view = tap.txHeader.view;
    view.setUint8(NetHeader.flags, frame.flags);
    view.setUint8(NetHeader.gsoType, frame.gsoType);
    view.setUint16(NetHeader.hdrLen, frame.hdrLen, true);
    view.setUint16(NetHeader.gsoSize, frame.gsoSize, true);
    view.setUint16(NetHeader.csumStart, frame.csumStart, true);
    view.setUint16(NetHeader.csumOffset, frame.csumOffset, true);
    // num_buffers, when the header has it, means nothing on transmit.
    view.setUint16(NetHeader.numBuffers, 0, true);
  }

  /** Writes the transmit header and the linearized frame. */
  private writeLinear(tap: Tap, frame: WireFrame): void {
    tap.pieces[1] = frame.linear;
    tap.pieceOffsets[1] = 0;
    tap.pieceLengths[1] = frame.length;
    this.write(tap, 2, tap.headerLength + frame.length);
  }

  /**
   * Writes the first `count` pieces to the tap: the transmit header (piece 0, always) and the
   * frame, `length` bytes in all. A frame it does not take is dropped and counted, like a wire
   * would: a full queue (the host side is not reading: EAGAIN), an interface that is down (EIO),
   * a header the kernel refuses (EINVAL).
   */
  private write(tap: Tap, count: number, length: number): void {
    tap.pieceLengths[0] = tap.headerLength;
    let written: number;
    try {
      written = sys.writevFd(tap.fd, tap.pieces, tap.pieceOffsets, tap.pieceLengths, count);
    } catch {
      written = -1;
    }
    if (written !== length) this.counters[Counter.portTxDropped]!++;
  }
}
