/**
 * The transmitq side of virtio-net: takes the driver's chains a burst at a time, validates them
 * through DescriptorChain, strips the virtio-net header wherever it lies, classifies the chain's
 * shape, hands the frame to the consumer, and returns the chains (used length 0: the device
 * writes nothing into transmit buffers).
 */
import type { GuestMemory } from 'vfio-user-ts';
import { Counter, descriptorBucket } from './counters.js';
import { ChainError, chainErrorNames, DescriptorChain, type ChainErrorCode } from './descriptor-chain.js';
import type { QueueErrorReporter } from './queue-errors.js';
import { MAX_FRAME_LENGTH, TxFrame } from './tx-frame.js';
import type { Vring } from './vring.js';

export interface TxFrameConsumer {
  /** Called once per valid frame; `frame` is only valid during the call. */
  transmitted(frame: TxFrame): void;
}

const ETHERNET_HEADER_LENGTH = 14;

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
  readonly ring: Vring;
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
  /** Called before each publish of used elements (the state file commits the counts there). */
  beforePublish: ((ring: Vring) => void) | null = null;
  private readonly chain: DescriptorChain;
  private readonly frame: TxFrame;

  constructor(
    memory: GuestMemory,
    ring: Vring,
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
    if (this.broken || this.stalled) return 0;
    const ring = this.ring;
    const available = this.availableChains();
    if (available < 0) return 0;
    const n = available < budget ? available : budget;
    const counters = this.counters;
    const chain = this.chain;
    const frame = this.frame;
    const headerLength = this.headerLength;
    let taken = 0;
    for (; taken < n; taken++) {
      const head = ring.takeHead();
      const error = chain.resolve(head);
      if (error !== ChainError.none) {
        this.breakOnChainError(head, error);
        break;
      }
      ring.pushUsed(head, 0);
      if (chain.writableBytes > 0) {
        counters[Counter.txWriteOnlyBuffer]!++;
        this.reporter.queueError(this.queueIndex, 'txWriteOnlyBuffer', `head ${head}: ${chain.writableBytes} device-writable bytes in a transmit chain; dropped`, false);
        continue;
      }
      if (!frame.load(headerLength)) {
        counters[Counter.txHeaderTooShort]!++;
        this.reporter.queueError(this.queueIndex, 'txHeaderTooShort', `head ${head}: ${chain.readableBytes} bytes, the virtio-net header alone is ${headerLength}; dropped`, false);
        continue;
      }
      if (frame.length > MAX_FRAME_LENGTH) {
        // No GSO is offered: no port could take it, and linearize() has no room for it.
        counters[Counter.txFrameTooLarge]!++;
        this.reporter.queueError(this.queueIndex, 'txFrameTooLarge', `head ${head}: a ${frame.length}-byte frame, at most ${MAX_FRAME_LENGTH}; dropped`, false);
        continue;
      }
      this.countShape(chain.count, chain.length[0]!);
      const refusal = this.linearHeaderRefusal;
      if (refusal !== null && chain.length[0]! < headerLength + ETHERNET_HEADER_LENGTH) {
        counters[Counter.linearHeaderViolations]!++;
        const stall = refusal === 'stall';
        this.reporter.queueError(
          this.queueIndex,
          'linearHeaderViolation',
          `head ${head}: the first buffer holds ${chain.length[0]} bytes, not the ${headerLength}-byte virtio-net header and the Ethernet header; completed with length 0, ${stall ? 'and the queue takes no more chains until the device is reset (an error CQE, the send queue in error)' : 'and the queue goes on (a silent drop)'}`,
          false,
        );
        if (stall) {
          this.stalled = true;
          taken++;
          break;
        }
        continue;
      }
      counters[Counter.txFrames]!++;
      counters[Counter.txBytes]! += frame.length;
      this.consumer.transmitted(frame);
    }
    this.publish();
    return taken;
  }

  /**
   * Ends a stall: every chain the driver made available meanwhile completes with length 0 and
   * is not sent, as a NIC's send-queue recovery flushes the work posted to a queue in error
   * (mlx5e frees those skbs), and the queue takes chains again. Returns how many were flushed;
   * the caller notifies the driver when `needsNotify` is set afterwards. Flushing, rather than
   * sending, keeps frames of a test that stalled the queue out of the next test's counts.
   */
  resume(): number {
    if (!this.stalled || this.broken) return 0;
    this.stalled = false;
    const ring = this.ring;
    const available = this.availableChains();
    if (available < 0) return 0;
    let flushed = 0;
    for (; flushed < available; flushed++) {
      const head = ring.takeHead();
      const error = this.chain.resolve(head);
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
      this.breakRing('availIndexJump', `avail.idx is more than the queue size (${ring.size}) ahead of ${ring.lastAvailIdx}`);
    }
    return available;
  }

  /** A chain broke a descriptor rule: counted, and the ring is broken. */
  private breakOnChainError(head: number, error: ChainErrorCode): void {
    const chain = this.chain;
    this.counters[Counter.chainErrors + error - 1]!++;
    this.breakRing(chainErrorNames[error]!, `head ${head} descriptor ${chain.errorDescriptor} addr 0x${chain.errorAddress.toString(16)} len ${chain.errorLength}`);
  }

  private publish(): void {
    const ring = this.ring;
    if (this.beforePublish !== null && ring.nextUsedIdx !== ring.publishedUsedIdx) this.beforePublish(ring);
    this.needsNotify = ring.publishUsed() || this.needsNotify;
  }

  private countShape(buffers: number, firstLength: number): void {
    const counters = this.counters;
    const headerLength = this.headerLength;
    counters[Counter.descriptorsPerChain + descriptorBucket(buffers)]!++;
    if (this.chain.indirect) counters[Counter.indirectChains]!++;
    if (firstLength === headerLength) counters[Counter.vnetHeaderAlone]!++;
    if (firstLength < headerLength + ETHERNET_HEADER_LENGTH && this.frame.length >= ETHERNET_HEADER_LENGTH) {
      counters[Counter.ethernetHeaderNotWithVnetHeader]!++;
    }
    const frame = this.frame;
    if (frame.length > this.chain.length[frame.firstBuffer]! - frame.firstOffset) counters[Counter.frameSplitAcrossBuffers]!++;
  }

  private breakRing(kind: string, detail: string): void {
    this.broken = true;
    this.reporter.queueError(this.queueIndex, kind, detail, true);
  }
}
