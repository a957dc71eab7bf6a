/**
 * The receiveq side of virtio-net: places frames that a port produces into the buffers the
 * driver posted, writing the virtio-net header in front. With MRG_RXBUF a frame may take several
 * chains and the first header's num_buffers says how many (virtio 1.2 5.1.6.4); without it, one
 * chain must hold header and frame.
 *
 * avail.idx is read once per burst (beginBurst) and again only when the snapshot runs out.
 */
import { byteSpace, type ByteSpace, type GuestMemory } from 'vfio-user-ts';
import { copyBytes } from './copy-bytes.js';
import { Counter } from './counters.js';
import { ChainError, DescriptorChain } from './descriptor-chain.js';
import { followDriverReset } from './driver-reset.js';
import { NO_RECEIVE_GSO, receiveGsoAllowed, type ReceiveGsoOffloads } from './gso.js';
import { GSO_ECN, GsoType, NetHeader } from './net-header.js';
import { QueueError, type QueueErrorKind, type QueueErrorReporter } from './queue-errors.js';
import type { Virtqueue } from './virtqueue.js';

export class ReceiveQueue {
  readonly ring: Virtqueue;
  broken = false;
  /** Set when published used elements want a driver notification; the caller clears it. */
  needsNotify = false;
  private readonly chain: DescriptorChain;
  private readonly spaces: readonly ByteSpace[];
  /**
   * Guest address of the last placed frame's first byte when the frame lies whole in one buffer
   * (what the zero-copy proof checks), else -1; also -1 after a counted drop.
   */
  lastFrameAddress = -1;
  /** The GSO types the driver takes (GUEST_TSO4/TSO6/ECN/USO4/USO6): none by default. */
  receiveGso: ReceiveGsoOffloads = NO_RECEIVE_GSO;
  /** Heads known to be available and not yet taken. */
  private available = 0;
  /** The header as written in front of every frame (num_buffers filled per frame). */
  private readonly header: ByteSpace = byteSpace(new ArrayBuffer(12));
  /** Where the last scatter stopped. */
  private cursorBuffer = 0;
  private cursorOffset = 0;
  /** Where the first chain's num_buffers bytes live (the header may be split). */
  private readonly numBuffersRegion = new Int32Array(2);
  private readonly numBuffersOffset = new Float64Array(2);

  constructor(
    memory: GuestMemory,
    ring: Virtqueue,
    indirectAllowed: boolean,
    private readonly headerLength: number,
    private readonly mergeable: boolean,
    private readonly counters: Float64Array,
    private readonly reporter: QueueErrorReporter,
    private readonly queueIndex: number,
  ) {
    this.ring = ring;
    this.spaces = memory.spaces;
    this.chain = new DescriptorChain(memory, ring, indirectAllowed);
  }

  /** Takes a fresh snapshot of avail.idx. Returns how many heads are available. */
  beginBurst(): number {
    if (this.ring.driverReset()) {
      // Mid-frame (elements recorded, not published) the frame gives its chains back and
      // endBurst() follows the reset; at a burst's start it is followed here.
      if (this.ring.nextUsedIdx !== this.ring.publishedUsedIdx) {
        this.available = 0;
        return 0;
      }
      this.followDriverReset();
    }
    if (this.broken) return 0;
    const count = this.ring.availableCount();
    if (count < 0) {
      this.counters[Counter.availIndexJump]!++;
      this.breakRing(QueueError.availIndexJump, 0, this.ring.size, this.ring.resumeBase, 0);
      this.available = 0;
      return 0;
    }
    this.available = count;
    return count;
  }

  /** Publishes what the burst placed. */
  endBurst(): void {
    // A reset between taking the buffers and publishing them: publishing would overwrite the
    // driver's fresh used.idx.
    if (this.ring.driverReset()) this.followDriverReset();
    else if (this.ring.publishUsed()) this.needsNotify = true;
  }

  /**
   * The driver reset the ring (VIRTIO_F_RING_RESET): counted, reported, and started over, as a
   * fresh queue (virtio 1.2 2.6.1), whatever broke it before.
   */
  private followDriverReset(): void {
    followDriverReset(this.ring, this.counters, this.reporter, this.queueIndex);
    this.available = 0;
    this.broken = false;
    this.lastFrameAddress = -1;
  }

  /**
   * Places `length` bytes of `src` from `srcOffset` as one frame. Returns false when the driver
   * has not posted enough buffers (nothing was consumed: try again after its next kick); true
   * when the frame was placed, or dropped for a counted reason. `flags` (NEEDS_CSUM with
   * `csumStart` and `csumOffset`, or DATA_VALID) go into the header; the caller passes them only
   * when the driver negotiated GUEST_CSUM. `gsoType` (with `gsoSize` and `hdrLen`) marks a GSO
   * frame: one of a type the driver did not negotiate is never placed (dropped and counted,
   * gso.rxNotNegotiated), whatever port produced it.
   */
  receive(src: ByteSpace, srcOffset: number, length: number, flags = 0, csumStart = 0, csumOffset = 0, gsoType: number = GsoType.none, gsoSize = 0, hdrLen = 0): boolean {
    if (this.broken) return false;
    this.lastFrameAddress = -1;
    if (gsoType !== GsoType.none && !receiveGsoAllowed(this.receiveGso, gsoType, src, srcOffset, length)) {
      this.counters[Counter.rxGsoNotNegotiated]!++;
      return true;
    }
    const total = this.headerLength + length;
    const ring = this.ring;
    const chain = this.chain;
    let chains = 0;
    let written = 0;
    while (written < total) {
      if (this.available === 0 && (this.beginBurst() === 0 || this.broken)) {
        ring.untake(chains);
        ring.unpushUsed(chains);
        return false;
      }
      const error = ring.take(chain);
      const head = chain.head;
      this.available--;
      chains++;
      if (error !== ChainError.none) {
        this.counters[Counter.chainErrors + error - 1]!++;
        this.breakRing(error, head, chain.errorDescriptor, chain.errorAddress, chain.errorLength);
        ring.untake(chains);
        ring.unpushUsed(chains - 1);
        return false;
      }
      if (chain.readableBytes > 0) {
        this.counters[Counter.rxReadableBuffer]!++;
        this.breakRing(QueueError.rxReadableBuffer, head, chain.readableBytes, 0, 0);
        ring.untake(chains);
        ring.unpushUsed(chains - 1);
        return false;
      }
      this.cursorBuffer = 0;
      this.cursorOffset = 0;
      let inChain = 0;
      if (written === 0) {
        if (!this.mergeable && chain.writableBytes < total) {
          this.counters[Counter.rxBufferTooSmall]!++;
          this.reporter.queueError(this.queueIndex, QueueError.rxBufferTooSmall, false, head, chain.writableBytes, total, 0);
          ring.pushUsed(head, 0);
          return true;
        }
        if (chain.writableBytes < this.headerLength) {
          this.counters[Counter.rxBufferTooSmall]!++;
          this.breakRing(QueueError.rxBufferTooSmall, head, chain.writableBytes, this.headerLength, 1);
          ring.untake(chains);
          ring.unpushUsed(chains - 1);
          return false;
        }
        inChain = this.writeHeader(flags, csumStart, csumOffset, gsoType, gsoSize, hdrLen);
        const at = this.cursorBuffer;
        if (at < chain.count && chain.length[at]! - this.cursorOffset >= length) this.lastFrameAddress = chain.address[at]! + this.cursorOffset;
      }
      const frameDone = written === 0 ? 0 : written - this.headerLength;
      inChain += this.scatter(src, srcOffset + frameDone, length - frameDone);
      written += inChain;
      ring.pushUsed(head, inChain);
    }
    // The header says num_buffers = 1; only a frame that took more chains needs it rewritten.
    if (chains > 1 && this.headerLength >= NetHeader.numBuffers + 2) this.writeNumBuffers(chains);
    const counters = this.counters;
    counters[Counter.rxFrames]!++;
    counters[Counter.rxBytes]! += length;
    counters[Counter.rxBuffers]! += chains;
    if (gsoType !== GsoType.none) {
      const type = gsoType & ~GSO_ECN;
      counters[type === GsoType.tcpV4 ? Counter.rxGsoTcp4Frames : type === GsoType.tcpV6 ? Counter.rxGsoTcp6Frames : Counter.rxGsoUdpL4Frames]!++;
      if (length > counters[Counter.rxGsoLargestFrame]!) counters[Counter.rxGsoLargestFrame] = length;
    }
    return true;
  }

  /**
   * Writes the virtio-net header at the start of the chain just resolved (the checksum and GSO
   * fields given, num_buffers 1) and leaves the cursor behind it. Returns its length.
   */
  private writeHeader(flags: number, csumStart: number, csumOffset: number, gsoType: number, gsoSize: number, hdrLen: number): number {
    const chain = this.chain;
    const headerLength = this.headerLength;
    const hasNumBuffers = headerLength >= NetHeader.numBuffers + 2;
    if (chain.length[0]! >= headerLength) {
      // The usual case: the whole header in the first buffer, written in place.
      const region = chain.region[0]!;
      const at = chain.offset[0]!;
      const view = this.spaces[region]!.view;
      // Little-endian fields packed into 32-bit stores: three stores for the usual 12 bytes, not seven.
      view.setUint32(at + NetHeader.flags, flags | (gsoType << 8) | (hdrLen << 16), true);
      view.setUint32(at + NetHeader.gsoSize, gsoSize | (csumStart << 16), true);
      if (hasNumBuffers) {
        view.setUint32(at + NetHeader.csumOffset, csumOffset | (1 << 16), true);
        this.numBuffersRegion[0] = region;
        this.numBuffersRegion[1] = region;
        this.numBuffersOffset[0] = at + NetHeader.numBuffers;
        this.numBuffersOffset[1] = at + NetHeader.numBuffers + 1;
      } else {
        view.setUint16(at + NetHeader.csumOffset, csumOffset, true);
      }
      if (chain.length[0] === headerLength) {
        this.cursorBuffer = 1;
        this.cursorOffset = 0;
      } else {
        this.cursorOffset = headerLength;
      }
      return headerLength;
    }
    if (hasNumBuffers) this.locateNumBuffers();
    const header = this.header.view;
    header.setUint8(NetHeader.flags, flags);
    header.setUint8(NetHeader.gsoType, gsoType);
    header.setUint16(NetHeader.hdrLen, hdrLen, true);
    header.setUint16(NetHeader.gsoSize, gsoSize, true);
    header.setUint16(NetHeader.csumStart, csumStart, true);
    header.setUint16(NetHeader.csumOffset, csumOffset, true);
    header.setUint16(NetHeader.numBuffers, 1, true);
    return this.scatter(this.header, 0, headerLength);
  }

  /** Copies up to `length` bytes into the current chain from the cursor on; returns how many fit. */
  private scatter(src: ByteSpace, srcOffset: number, length: number): number {
    const chain = this.chain;
    const spaces = this.spaces;
    let done = 0;
    while (done < length && this.cursorBuffer < chain.count) {
      const b = this.cursorBuffer;
      const room = chain.length[b]! - this.cursorOffset;
      const take = room < length - done ? room : length - done;
      copyBytes(spaces[chain.region[b]!]!, chain.offset[b]! + this.cursorOffset, src, srcOffset + done, take);
      done += take;
      this.cursorOffset += take;
      if (this.cursorOffset === chain.length[b]!) {
        this.cursorBuffer++;
        this.cursorOffset = 0;
      }
    }
    return done;
  }

  /** Records where header bytes 10 and 11 (num_buffers) fall in the first chain's buffers. */
  private locateNumBuffers(): void {
    const chain = this.chain;
    for (let k = 0; k < 2; k++) {
      let at = NetHeader.numBuffers + k;
      let b = 0;
      while (at >= chain.length[b]!) at -= chain.length[b++]!;
      this.numBuffersRegion[k] = chain.region[b]!;
      this.numBuffersOffset[k] = chain.offset[b]! + at;
    }
  }

  private writeNumBuffers(chains: number): void {
    this.spaces[this.numBuffersRegion[0]!]!.view.setUint8(this.numBuffersOffset[0]!, chains & 0xff);
    this.spaces[this.numBuffersRegion[1]!]!.view.setUint8(this.numBuffersOffset[1]!, chains >> 8);
  }

  private breakRing(kind: QueueErrorKind, head: number, a: number, b: number, c: number): void {
    this.broken = true;
    // A broken ring wants no kicks; parked, a driver's reset of it shows (Virtqueue.driverReset).
    if (this.ring.followsDriverResets) this.ring.disableKicks();
    this.reporter.queueError(this.queueIndex, kind, true, head, a, b, c);
  }
}
