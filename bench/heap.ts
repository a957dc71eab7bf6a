// Heap check: the zcnic sink at full rate for a long time must not allocate per frame. We sample
// the device's V8 heaps (from its control socket) through the run. The verdict is on the
// datapath worker, where frames are handled: per-frame garbage at millions of frames a second
// means many young-generation collections a second (the worker counts them), and a leak shows as
// a rising floor of its heap. The whole process's heap (control plane included, whose stats
// requests make a little garbage of their own) is reported beside it.

import { pause, withSession, type BenchSettings } from './cases.js';

export interface HeapSample {
  /** Seconds since the end of the warm-up. */
  t: number;
  usedBytes: number;
  datapathBytes: number;
  collections: number;
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
  /** The datapath worker's heap, and its garbage collections during the run. */
  datapathBeforeBytes: number;
  datapathAfterBytes: number;
  datapathMinBytes: number;
  datapathMaxBytes: number;
  collections: number;
  collectionsPerSecond: number;
  /** The datapath heap grew by at most toleranceBytes, and it collected less than MAX_COLLECTIONS_PER_SECOND. */
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
        datapathBytes: s.heap.datapathUsedBytes,
        collections: s.heap.datapathCollections,
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
    const datapath = samples.map((s) => s.datapathBytes);
    const datapathMinBytes = Math.min(...datapath);
    const datapathMaxBytes = Math.max(...datapath);
    const collections = last.collections - first.collections;
    const collectionsPerSecond = dt > 0 ? collections / dt : 0;
    return {
      seconds: dt,
      frameSize,
      beforeBytes: first.usedBytes,
      afterBytes: last.usedBytes,
      minBytes,
      maxBytes,
      toleranceBytes,
      datapathBeforeBytes: first.datapathBytes,
      datapathAfterBytes: last.datapathBytes,
      datapathMinBytes,
      datapathMaxBytes,
      collections,
      collectionsPerSecond,
      flat: last.datapathBytes - first.datapathBytes <= toleranceBytes && collectionsPerSecond < MAX_COLLECTIONS_PER_SECOND,
      trendBytesPerMin: slope(samples.map((x) => [x.t, x.usedBytes])) * 60,
      mpps: dt > 0 ? (last.frames - first.frames) / dt / 1e6 : 0,
      samples,
    };
  });
  return result;
}

/**
 * Without per-frame garbage the worker allocates little (per scheduler turn and timer: measured
 * here, under one young-generation collection a second at 20 Mpps); with even one small object
 * per frame at millions of frames a second it collects hundreds of times a second. The range of
 * the samples is no verdict: young-generation fill swings it by a MiB or two either way.
 */
const MAX_COLLECTIONS_PER_SECOND = 5;

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
