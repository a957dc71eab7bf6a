/** The parts of the device's stats the fuzzer compares, and differences between two readings. */
import type { DeviceStats } from '../harness/device-control.js';

export interface Snapshot {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  rxNoBuffers: number;
  errors: Record<string, number>;
  /** Protocol refusals and disconnects by reason (stats.protocolErrors). */
  protocolErrors: Record<string, number>;
  needsReset: boolean;
}

export function snapshot(stats: DeviceStats): Snapshot {
  const extra = stats as DeviceStats & { protocolErrors?: Record<string, number> };
  return {
    txFrames: stats.transmitq.frames,
    txBytes: stats.transmitq.bytes,
    rxFrames: stats.receiveq.frames,
    rxBytes: stats.receiveq.bytes,
    rxNoBuffers: stats.receiveq.noBuffers,
    errors: { ...stats.errors },
    protocolErrors: { ...(extra.protocolErrors ?? {}) },
    needsReset: stats.needsReset,
  };
}

/** Keys whose count grew from `before` to `after`, with by how much. */
export function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) {
    const d = value - (before[key] ?? 0);
    if (d !== 0) out[key] = d;
  }
  return out;
}

export interface SnapshotDelta {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  rxNoBuffers: number;
  errors: Record<string, number>;
  protocolErrors: Record<string, number>;
  needsReset: boolean;
}

export function difference(before: Snapshot, after: Snapshot): SnapshotDelta {
  return {
    txFrames: after.txFrames - before.txFrames,
    txBytes: after.txBytes - before.txBytes,
    rxFrames: after.rxFrames - before.rxFrames,
    rxBytes: after.rxBytes - before.rxBytes,
    rxNoBuffers: after.rxNoBuffers - before.rxNoBuffers,
    errors: grown(before.errors, after.errors),
    protocolErrors: grown(before.protocolErrors, after.protocolErrors),
    needsReset: after.needsReset,
  };
}
