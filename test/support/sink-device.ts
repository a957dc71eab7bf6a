/** The options of a one-pair, one-worker VirtioNet with port `sink`, for tests that add their own callbacks. */
import type { VirtioNetOptions } from '../../device/virtio-net.js';

export const SINK_DEVICE_OPTIONS: Omit<VirtioNetOptions, 'onQueueError' | 'onFailure'> = {
  queuePairs: 1,
  workers: 1,
  mode: 'kick',
  port: { port: 'sink', gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56' },
  pcapPath: null,
  verify: false,
};
