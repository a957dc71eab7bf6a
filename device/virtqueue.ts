/**
 * What the net device's queues (receive-queue.ts, transmit-queue.ts) and the datapath need from a
 * virtqueue's rings, whatever their layout: the split ring (vring.ts, virtio 1.2 2.7) and the
 * packed ring (packed-ring.ts, 2.8) implement it side by side. Neither the queues nor the datapath
 * read or write ring memory themselves; descriptors are read by DescriptorChain only, which the
 * ring drives through take().
 *
 * Completion is in order in both: every chain taken gets its used element (pushUsed) in the order
 * taken, or is given back (untake). The packed ring relies on it to place used elements where the
 * driver looks for them; the split ring's inflight recovery relies on it too (docs/architecture.md).
 * It is also why the device can offer VIRTIO_F_IN_ORDER, and, where every buffer is used whole,
 * publish a burst with one used element (completeInBatches).
 */
import type { ChainErrorCode, DescriptorChain } from './descriptor-chain.js';
import type { InflightRecovery } from './inflight-tracker.js';

/** How a queue's rings are laid out in guest memory (virtio 1.2 2.7 and 2.8). */
export type RingLayout = 'split' | 'packed';

/**
 * Where a queue's three areas are, by the split ring's names: for the packed layout `availAddr`
 * is the driver area (the driver's event suppression) and `usedAddr` the device area (the
 * device's), as VHOST_USER_SET_VRING_ADDR carries them.
 */
export interface VringAddresses {
  /** Queue size: a power of two, 1..MAX_QUEUE_SIZE. */
  readonly size: number;
  /** Guest-physical addresses of the three parts. */
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
}

/** Where DescriptorChain finds a ring's descriptors, and how to walk them. */
export interface DescriptorTable {
  readonly layout: RingLayout;
  readonly size: number;
  /** Region and offset in that region of the descriptor table (split) or ring (packed). */
  readonly descRegion: number;
  readonly descOffset: number;
}

export interface Virtqueue extends DescriptorTable {
  /** The driver may reset this queue on its own (VIRTIO_F_RING_RESET); see driverReset(). */
  followsDriverResets: boolean;
  /** What starting with an inflight region found; null without one. */
  readonly recovery: InflightRecovery | null;
  /** Where the driver should resume, as GET_VRING_BASE carries it for this layout. */
  readonly resumeBase: number;
  /**
   * How many chains the driver has made available since the last take; -1 when the driver
   * claims more than the ring holds (a corrupt or hostile index).
   */
  availableCount(): number;
  /**
   * Takes the next available chain and walks it with `chain` (DescriptorChain.resolve): the
   * chain's buffers and its buffer id (`chain.head`) when it returns ChainError.none. A chain
   * that breaks a rule is taken all the same (untake gives it back).
   */
  take(chain: DescriptorChain): ChainErrorCode;
  /** Gives back the last `count` chains taken (a frame that did not fit after all). */
  untake(count: number): void;
  /** Records a used element for the oldest chain taken and not yet used; visible at the next publish. */
  pushUsed(head: number, length: number): void;
  /** Forgets the last `count` used elements recorded and not yet published. */
  unpushUsed(count: number): void;
  /** Publishes the used elements recorded since the last publish; true when the driver wants a notification. */
  publishUsed(): boolean;
  /**
   * From now on a publish writes one used element for all the chains pushed since the last one,
   * the last chain's (its id and length), and moves the used position past all of them, as
   * VIRTIO_F_IN_ORDER allows: the driver takes every chain before it as used whole. Only for a
   * queue whose driver negotiated IN_ORDER and whose buffers are all used whole: the transmitq
   * (read to the end, length 0), not the receiveq (every buffer needs its own length). A split
   * ring with an inflight region goes on writing one element per chain: its recovery reads the
   * heads of published elements back from the used ring.
   */
  completeInBatches(): void;
  /** Completions as the next publishUsed() will count them (the split ring's used.idx). */
  readonly nextUsedIdx: number;
  /** Completions as last published. */
  readonly publishedUsedIdx: number;
  /** At start: whether to notify the driver now, for completions a predecessor may not have signalled. */
  notifyOnStart(): boolean;
  /** Asks the driver to kick for buffers after what was taken; check availableCount() again afterwards. */
  enableKicks(): void;
  /** Asks the driver not to kick. */
  disableKicks(): void;
  /** Whether the driver reset the ring since the device last published (only with followsDriverResets). */
  driverReset(): boolean;
  /** Starts the ring over after a driver's reset; returns how many unpublished used elements were dropped. */
  restartAfterDriverReset(): number;
}
