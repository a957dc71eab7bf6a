/** What the integration tests share: polling for a condition, a scratch folder per test that takes its processes with it, testpmd's txonly into the sink, a guest run. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import type { DeviceStats } from '../../harness/device-control.js';
import { ZcnicDevice } from '../../harness/device-process.js';
import { Testpmd } from '../../harness/dpdk/testpmd.js';
import { runSuites, type RunOptions, type RunOutcome } from '../../harness/run.js';

/** Reads until `done` holds for the value read, or throws after `ms` naming `what` and the last value. */
export async function until<T>(read: () => Promise<T>, done: (v: T) => boolean, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Gives each test of `suite` a fresh temporary folder (read it through the returned function);
 * after each test every testpmd and zcnic device still running is stopped by PID and the folder removed.
 */
/**
 * testpmd txonly sends 64-byte frames for 1.5 s into the device's sink: the device must count
 * exactly what testpmd sent, every byte, and no ring error. Returns the count and the stats.
 */
export async function txonlyIntoSink(zc: ZcnicDevice, tp: Testpmd): Promise<{ sent: number; stats: DeviceStats }> {
  await tp.startForwarding();
  await new Promise((r) => setTimeout(r, 1500));
  await tp.stopForwarding();
  const sent = (await tp.portStats()).txPackets;
  assert.ok(sent > 10_000, `testpmd sent ${sent}`);
  const stats = await until(() => zc.stats(), (s) => s.transmitq.frames >= sent, `${sent} frames at the device`);
  assert.is(stats.transmitq.frames, sent);
  assert.is(stats.transmitq.bytes, sent * 64);
  assert.ok(Object.values(stats.errors).every((v) => v === 0), JSON.stringify(stats.errors));
  return { sent, stats };
}

export function scratchFolderPerTest(suite: Test, prefix: string): () => string {
  let dir = '';
  suite.before.each(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  suite.after.each(async () => {
    await Testpmd.closeAll();
    await ZcnicDevice.closeAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return () => dir;
}

/**
 * A guest run with the harness's defaults (2 vCPUs, 512 MiB, one queue pair, 60 s per test,
 * accelerator probed): its outcome, and its progress lines for a failure message.
 */
export async function runGuest(suites: string[], extra: Partial<RunOptions> = {}): Promise<{ outcome: RunOutcome; progress: string }> {
  const lines: string[] = [];
  const outcome = await runSuites({
    suites,
    accel: 'auto',
    smp: 'auto',
    memMiB: 512,
    queues: 1,
    testTimeoutSec: 60,
    keep: false,
    verbose: false,
    progress: (line) => lines.push(line),
    signal: new AbortController().signal,
    ...extra,
  });
  return { outcome, progress: lines.join('\n') };
}
