/**
 * The transmitq side of virtio-net: takes the driver's chains a burst at a time, validates them
 * through DescriptorChain, strips the virtio-net header wherever it lies, classifies the chain's
 * shape, hands the frame to the consumer, and returns the chains (used length 0: the device
 * writes nothing into transmit buffers).
 */
import type { GuestMemory } from 'vfio-user-ts';
import { Counter, descriptorBucket } from './counters.js';
import { ChainError, DescriptorChain, type ChainErrorCode } from './descriptor-chain.js';
import { followDriverReset } from './driver-reset.js';
import { ETHERNET_HEADER_LENGTH } from './ethernet.js';
import { GSO_HEADER_VALID, GsoCheck, gsoTypeAllowed, NO_GSO_OFFLOADS, type GsoOffloads } from './gso.js';
import { checksumFits, GSO_ECN, GsoType, NetHeaderFlags } from './net-header.js';
import { FIRST_GSO_HEADER_ERROR, QueueError, type QueueErrorKind, type QueueErrorReporter } from './queue-errors.js';
import { MAX_FRAME_LENGTH, MAX_GSO_FRAME_LENGTH, TxFrame } from './tx-frame.js';
import type { Virtqueue } from './virtqueue.js';

export interface TxFrameConsumer {
  /** Called once per valid frame; `frame` is only valid during the call. */
  transmitted(frame: TxFrame): void;
}


/**
 * How a strict-layout device answers a chain whose packet headers are not linear with the
 * virtio-net header (seed 000: the ConnectX-4 Lx raised an error CQE for skb_headlen == 0 and
 * its send queue went to the error state):
 * - `stall`: the refused chain completes and the queue takes no further chain until the device
 *   is reset (the send queue in error). The driver's ring fills, virtio_net stops the netdev
 *   queue and the kernel's netdev watchdog reports a transmit timeout: the guest notices.
 * - `complete-empty`: the refused chain completes with length 0 and the queue goes on, which
 *   virtio_net cannot tell from a sent frame: a NIC that drops such frames silently.
 */
export type LinearHeaderRefusal = 'stall' | 'complete-empty';
export const linearHeaderRefusals: readonly LinearHeaderRefusal[] = ['stall', 'complete-empty'];
/** A strict device without a stated refusal behaves as seed 000's NIC did. */
export const DEFAULT_LINEAR_HEADER_REFUSAL: LinearHeaderRefusal = 'stall';

export class TransmitQueue {
  readonly ring: Virtqueue;
  /** Set once the ring broke a rule; the queue does nothing more until it is set up again. */
  broken = false;
  /** Set when published used elements want a driver notification; the caller clears it. */
  needsNotify = false;
  /**
   * Emulate a NIC that needs the packet headers linear with the virtio-net header (in the first
   * buffer), like the ConnectX-4 Lx of seed 000: other chains are counted, not sent, and refused
   * as this says (null: any layout is taken).
   */
  linearHeaderRefusal: LinearHeaderRefusal | null = null;
  /** Set by a `stall` refusal: the queue takes no chain until resume(). */
  stalled = false;
  /** The GSO features the driver negotiated: which gso_types it may send (none by default). */
  gsoOffloads: GsoOffloads = NO_GSO_OFFLOADS;
  /** Called before each publish of used elements (the state file commits the counts there). */
  beforePublish: ((ring: Virtqueue) => void) | null = null;
  private readonly chain: DescriptorChain;
  private readonly frame: TxFrame;
  private readonly gsoCheck = new GsoCheck();
  /** Guest address of the last counted chain's first buffer (see Counter.vnetHeaderSharedWithPrevious). */
  private previousHeaderAddress = -1;

  constructor(
    memory: GuestMemory,
    ring: Virtqueue,
    indirectAllowed: boolean,
    private readonly headerLength: number,
    private readonly counters: Float64Array,
    private readonly consumer: TxFrameConsumer,
    private readonly reporter: QueueErrorReporter,
    private readonly queueIndex: number,
  ) {
    this.ring = ring;
    this.chain = new DescriptorChain(memory, ring, indirectAllowed);
    this.frame = new TxFrame(memory, this.chain);
  }

  /**
   * Processes at most `budget` chains. Returns how many were taken, and publishes them; the
   * caller notifies the driver when `needsNotify` is set afterwards.
   */
  processBurst(budget: number): number {
    const ring = this.ring;
    // A driver's queue reset also ends a broken or stalled state: the queue starts as new.
    if (ring.driverReset()) this.followDriverReset();
    if (this.broken || this.stalled) return 0;
    const available = this.availableChains();
    if (available < 0) return 0;
    const n = available < budget ? available : budget;
    const counters = this.counters;
    const chain = this.chain;
    const frame = this.frame;
    const headerLength = this.headerLength;
    let taken = 0;
    for (; taken < n; taken++) {
      const error = ring.take(chain);
      const head = chain.head;
      if (error !== ChainError.none) {
        this.breakOnChainError(head, error);
        break;
      }
      ring.pushUsed(head, 0);
      if (!this.admit(head)) continue;
      this.countShape(chain.count, chain.length[0]!);
      const refusal = this.linearHeaderRefusal;
      if (refusal !== null && chain.length[0]! < headerLength + ETHERNET_HEADER_LENGTH) {
        counters[Counter.linearHeaderViolations]!++;
        const stall = refusal === 'stall';
        this.reporter.queueError(this.queueIndex, QueueError.linearHeaderViolation, false, head, chain.length[0]!, headerLength, stall ? 1 : 0);
        if (stall) {
          this.stalled = true;
          taken++;
          break;
        }
        continue;
      }
      counters[Counter.txFrames]!++;
      counters[Counter.txBytes]! += frame.length;
      if (frame.gsoType !== GsoType.none) this.countGso();
      this.consumer.transmitted(frame);
    }
    this.publish();
    return taken;
  }

  /**
   * Checks a resolved chain's frame against what the device takes: a refused one is counted,
   * reported and dropped (its chain completes; the queue goes on). True: the frame goes on.
   */
  private admit(head: number): boolean {
    const chain = this.chain;
    const frame = this.frame;
    const headerLength = this.headerLength;
    if (chain.writableBytes > 0) return this.refuse(QueueError.txWriteOnlyBuffer, Counter.txWriteOnlyBuffer, head, chain.writableBytes, 0, 0);
    if (!frame.load(headerLength)) return this.refuse(QueueError.txHeaderTooShort, Counter.txHeaderTooShort, head, chain.readableBytes, headerLength, 0);
    const gso = frame.gsoType !== GsoType.none;
    if (gso && !gsoTypeAllowed(this.gsoOffloads, frame.gsoType)) {
      // The driver must send no GSO type the features it negotiated do not allow (virtio 1.2
      // 5.1.6.2). The spec gives the device nothing to do with a driver that does; it drops the
      // frame, as Linux's tun does (virtio_net_hdr_to_skb refuses a GSO type it does not know).
      return this.refuse(QueueError.txGsoNotNegotiated, Counter.txGsoNotNegotiated, head, frame.gsoType, 0, 0);
    }
    if ((frame.flags & NetHeaderFlags.needsCsum) !== 0 && !checksumFits(frame.length, frame.csumStart, frame.csumOffset)) {
      // A checksum the device cannot complete: sending the frame would put a wrong checksum on
      // the wire. Dropped, as tun drops it (skb_partial_csum_set fails).
      return this.refuse(QueueError.txChecksumOutsideFrame, Counter.txChecksumOutsideFrame, head, frame.csumStart, frame.csumOffset, frame.length);
    }
    // A GSO frame is cut into segments a port can take; any other frame must fit a port as it is.
    const limit = gso ? MAX_GSO_FRAME_LENGTH : MAX_FRAME_LENGTH;
    if (frame.length > limit) return this.refuse(QueueError.txFrameTooLarge, Counter.txFrameTooLarge, head, frame.length, limit, 0);
    if (!gso) return true;
    const gsoCheck = this.gsoCheck;
    const kind = gsoCheck.check(frame);
    if (kind === GSO_HEADER_VALID) return true;
    return this.refuse(kind, Counter.gsoHeaderErrors + kind - FIRST_GSO_HEADER_ERROR, head, gsoCheck.a, gsoCheck.b, gsoCheck.c);
  }

  /** A frame refused (not fatal): counted under `counter`, reported as `kind`; returns false. */
  private refuse(kind: QueueErrorKind, counter: number, head: number, a: number, b: number, c: number): false {
    this.counters[counter]!++;
    this.reporter.queueError(this.queueIndex, kind, false, head, a, b, c);
    return false;
  }

  /** A GSO frame taken: counted by type, and the longest kept. */
  private countGso(): void {
    const counters = this.counters;
    const frame = this.frame;
    const type = frame.gsoType & ~GSO_ECN;
    counters[type === GsoType.tcpV4 ? Counter.gsoTcp4Frames : type === GsoType.tcpV6 ? Counter.gsoTcp6Frames : Counter.gsoUdpL4Frames]!++;
    if (frame.length > counters[Counter.gsoLargestFrame]!) counters[Counter.gsoLargestFrame] = frame.length;
  }

  /**
   * Ends a stall: every chain the driver made available meanwhile completes with length 0 and
   * is not sent, as a NIC's send-queue recovery flushes the work posted to a queue in error
   * (mlx5e frees those skbs), and the queue takes chains again. Returns how many were flushed;
   * the caller notifies the driver when `needsNotify` is set afterwards. Flushing, rather than
   * sending, keeps frames of a test that stalled the queue out of the next test's counts.
   */
  resume(): number {
    // A reset while stalled starts the queue as new: nothing is left to flush.
    if (this.ring.driverReset()) this.followDriverReset();
    if (!this.stalled || this.broken) return 0;
    this.stalled = false;
    const ring = this.ring;
    const available = this.availableChains();
    if (available < 0) return 0;
    let flushed = 0;
    for (; flushed < available; flushed++) {
      const error = ring.take(this.chain);
      const head = this.chain.head;
      if (error !== ChainError.none) {
        this.breakOnChainError(head, error);
        break;
      }
      ring.pushUsed(head, 0);
    }
    this.publish();
    return flushed;
  }

  /** Chains the driver made available, or -1 when avail.idx jumped (the ring is then broken). */
  private availableChains(): number {
    const ring = this.ring;
    const available = ring.availableCount();
    if (available < 0) {
      this.counters[Counter.availIndexJump]!++;
      this.breakRing(QueueError.availIndexJump, 0, ring.size, ring.resumeBase, 0);
    }
    return available;
  }

  /** A chain broke a descriptor rule: counted, and the ring is broken. */
  private breakOnChainError(head: number, error: ChainErrorCode): void {
    const chain = this.chain;
    this.counters[Counter.chainErrors + error - 1]!++;
    this.breakRing(error, head, chain.errorDescriptor, chain.errorAddress, chain.errorLength);
  }

  /**
   * The driver reset the ring (VIRTIO_F_RING_RESET): counted, reported, and started over, as a
   * fresh queue (virtio 1.2 2.6.1), whatever broke or stalled it before.
   */
  private followDriverReset(): void {
    followDriverReset(this.ring, this.counters, this.reporter, this.queueIndex);
    this.previousHeaderAddress = -1;
    this.broken = false;
    this.stalled = false;
  }

  private publish(): void {
    const ring = this.ring;
    // A reset between taking the chains and publishing them: publishing would overwrite the
    // driver's fresh used.idx.
    if (ring.driverReset()) {
      this.followDriverReset();
      return;
    }
    if (this.beforePublish !== null && ring.nextUsedIdx !== ring.publishedUsedIdx) this.beforePublish(ring);
    this.needsNotify = ring.publishUsed() || this.needsNotify;
  }

  private countShape(buffers: number, firstLength: number): void {
    const counters = this.counters;
    const headerLength = this.headerLength;
    counters[Counter.descriptorsPerChain + descriptorBucket(buffers)]!++;
    if (this.chain.indirect) counters[Counter.indirectChains]!++;
    if (firstLength === headerLength) counters[Counter.vnetHeaderAlone]!++;
    const headerAddress = this.chain.address[0]!;
    if (headerAddress === this.previousHeaderAddress) counters[Counter.vnetHeaderSharedWithPrevious]!++;
    this.previousHeaderAddress = headerAddress;
    if (firstLength < headerLength + ETHERNET_HEADER_LENGTH && this.frame.length >= ETHERNET_HEADER_LENGTH) {
      counters[Counter.ethernetHeaderNotWithVnetHeader]!++;
    }
    const frame = this.frame;
    if (frame.length > this.chain.length[frame.firstBuffer]! - frame.firstOffset) counters[Counter.frameSplitAcrossBuffers]!++;
  }

  private breakRing(kind: QueueErrorKind, head: number, a: number, b: number, c: number): void {
    this.broken = true;
    // A broken ring wants no kicks; parked, a driver's reset of it shows (Virtqueue.driverReset).
    if (this.ring.followsDriverResets) this.ring.disableKicks();
    this.reporter.queueError(this.queueIndex, kind, true, head, a, b, c);
  }
}
