/**
 * The transmitq side of virtio-net: takes the driver's chains a burst at a time, validates them
 * through DescriptorChain, strips the virtio-net header wherever it lies, classifies the chain's
 * shape, hands the frame to the consumer, and returns the chains (used length 0: the device
 * writes nothing into transmit buffers).
 */
import type { GuestMemory } from 'vfio-user-ts';
import { Counter, descriptorBucket } from './counters.js';
import { ChainError, chainErrorNames, DescriptorChain } from './descriptor-chain.js';
import type { QueueErrorReporter } from './queue-errors.js';
import { MAX_FRAME_LENGTH, TxFrame } from './tx-frame.js';
import type { Vring } from './vring.js';

export interface TxFrameConsumer {
  /** Called once per valid frame; `frame` is only valid during the call. */
  transmitted(frame: TxFrame): void;
}

const ETHERNET_HEADER_LENGTH = 14;

export class TransmitQueue {
  readonly ring: Vring;
  /** Set once the ring broke a rule; the queue does nothing more until it is set up again. */
  broken = false;
  /** Set when published used elements want a driver notification; the caller clears it. */
  needsNotify = false;
  /**
   * Emulate a NIC that needs the packet headers linear with the virtio-net header (in the first
   * buffer), like the ConnectX-4 Lx of seed 000 whose firmware raised an error completion for
   * skb_headlen == 0 frames: such chains complete with length 0 and are counted, not sent.
   */
  requireLinearHeader = false;
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
    if (this.broken) return 0;
    const ring = this.ring;
    const available = ring.availableCount();
    if (available < 0) {
      this.counters[Counter.availIndexJump]!++;
      this.breakRing('availIndexJump', `avail.idx is more than the queue size (${ring.size}) ahead of ${ring.lastAvailIdx}`);
      return 0;
    }
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
        counters[Counter.chainErrors + error - 1]!++;
        this.breakRing(chainErrorNames[error]!, `head ${head} descriptor ${chain.errorDescriptor} addr 0x${chain.errorAddress.toString(16)} len ${chain.errorLength}`);
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
      if (this.requireLinearHeader && chain.length[0]! < headerLength + ETHERNET_HEADER_LENGTH) {
        counters[Counter.linearHeaderViolations]!++;
        this.reporter.queueError(
          this.queueIndex,
          'linearHeaderViolation',
          `head ${head}: the first buffer holds ${chain.length[0]} bytes, not the ${headerLength}-byte virtio-net header and the Ethernet header; completed with an error (length 0), like an error CQE`,
          false,
        );
        continue;
      }
      counters[Counter.txFrames]!++;
      counters[Counter.txBytes]! += frame.length;
      this.consumer.transmitted(frame);
    }
    if (this.beforePublish !== null && ring.nextUsedIdx !== ring.publishedUsedIdx) this.beforePublish(ring);
    this.needsNotify = ring.publishUsed() || this.needsNotify;
    return taken;
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
