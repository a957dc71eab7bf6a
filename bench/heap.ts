// Heap check: the zcnic sink at full rate for a long time must not allocate per frame. We sample
// the device's V8 heap (from its control socket) through the run; per-frame garbage shows up as
// a sawtooth (young-generation fill and scavenge) and a leak as a rising floor, so the verdict
// uses the whole range of samples, not only first and last.

import { pause, withSession, type BenchSettings } from './cases.js';

export interface HeapSample {
  /** Seconds since the end of the warm-up. */
  t: number;
  usedBytes: number;
  frames: number;
}

export interface HeapResult {
  seconds: number;
  frameSize: number;
  beforeBytes: number;
  afterBytes: number;
  minBytes: number;
  maxBytes: number;
  toleranceBytes: number;
  /** max - min <= toleranceBytes. */
  flat: boolean;
  /**
   * Least-squares slope of the samples: a leak shows as a steady rise, while garbage that is
   * collected shows as a large range with a slope near zero.
   */
  trendBytesPerMin: number;
  /** Sink rate over the run, from the device's own frame counter. */
  mpps: number;
  samples: HeapSample[];
}

export async function runHeapCheck(
  settings: BenchSettings,
  seconds: number,
  toleranceBytes: number,
  frameSize = 64,
): Promise<HeapResult> {
  const { result } = await withSession({ direction: 'transmitq', frameSize }, 'zcnic', settings, async ({ device }) => {
    if (!device) throw new Error('internal: heap check needs the zcnic device');
    await pause(settings, settings.warmupSec);
    const samples: HeapSample[] = [];
    const start = performance.now();
    const sample = async (): Promise<void> => {
      const s = await device.stats();
      samples.push({
        t: (performance.now() - start) / 1000,
        usedBytes: s.heap.usedBytes,
        frames: s.transmitq.frames,
      });
    };
    await sample();
    // About 20 samples whatever the length, at least one a second.
    const stepMs = Math.max(1000, (seconds * 1000) / 20);
    while (performance.now() - start < seconds * 1000) {
      await pause(settings, Math.max(0, Math.min(stepMs, seconds * 1000 - (performance.now() - start))) / 1000);
      await sample();
      settings.log(
        `heap t=${samples.at(-1)?.t.toFixed(1)}s used=${((samples.at(-1)?.usedBytes ?? 0) / 1048576).toFixed(2)} MiB`,
      );
    }
    const first = samples[0];
    const last = samples.at(-1);
    if (!first || !last || samples.length < 2) throw new Error('heap check: not enough samples');
    const used = samples.map((s) => s.usedBytes);
    const minBytes = Math.min(...used);
    const maxBytes = Math.max(...used);
    const dt = last.t - first.t;
    return {
      seconds: dt,
      frameSize,
      beforeBytes: first.usedBytes,
      afterBytes: last.usedBytes,
      minBytes,
      maxBytes,
      toleranceBytes,
      flat: maxBytes - minBytes <= toleranceBytes,
      trendBytesPerMin: slope(samples.map((x) => [x.t, x.usedBytes])) * 60,
      mpps: dt > 0 ? (last.frames - first.frames) / dt / 1e6 : 0,
      samples,
    };
  });
  return result;
}

function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
