/**
 * What a transport needs from the device behind it, in virtio's terms: the features it offers,
 * guest memory, and virtqueues to start and stop. No transport is named here, so vhost-user and a
 * later vfio-user server drive the same device.
 */
import type { MemoryRegion } from './memory-table.js';
import type { FeatureWord } from './virtio.js';

/** Everything a device needs to run one virtqueue. Addresses are guest-physical. */
export interface VirtqueueSetup {
  readonly size: number;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  /** First avail index to process. */
  readonly base: number;
  readonly kickFd: number;
  /** -1: the frontend wants no interrupts. */
  readonly callFd: number;
  /** The negotiated virtio features. */
  readonly features: FeatureWord;
  /**
   * The frontend's inflight region for this queue (INFLIGHT_SHMFD), or null. `fd` is valid
   * only during startQueue: map [mapOffset, mapOffset + mapSize) of it then; this queue's part
   * starts `queueOffset` bytes into that mapping.
   */
  readonly inflight?: { readonly fd: number; readonly mapOffset: number; readonly mapSize: number; readonly queueOffset: number } | null;
}

/** The device a transport serves: vhost-user's server today, a vfio-user server as well. */
export interface VirtioDevice {
  /** Virtio feature bits offered (all 64 bits). */
  readonly features: FeatureWord;
  /** Queue pairs (what vhost-user's GET_QUEUE_NUM reports for a net device). */
  readonly queuePairs: number;
  /** Maps a new memory table (the regions' fds stay open until this resolves). */
  setMemory(regions: readonly MemoryRegion[]): Promise<string | null>;
  /** Starts a virtqueue; resolves to null or why it cannot run. */
  startQueue(index: number, setup: VirtqueueSetup): Promise<string | null>;
  /** Stops a virtqueue; resolves to the avail index to resume from. */
  stopQueue(index: number): Promise<number>;
  /** DEVICE_NEEDS_RESET: set when a ring broke the rules, cleared by a reset. */
  readonly needsReset: boolean;
  /** Device reset (RESET_OWNER, RESET_DEVICE, status 0, disconnect): forget ring errors. */
  reset(): void;
  /** The frontend is gone: unmap its memory. */
  releaseMemory(): Promise<void>;
}
