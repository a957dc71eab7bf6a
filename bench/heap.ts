// Heap check: the zcnic device at full rate for a long time must not allocate per frame, under
// each load of --heap-loads: the sink (copying every frame when verification is on), the
// generator and reflect, at sizes that copy (1500 B) and not only 64 B. We sample
// the device's V8 heaps (from its control socket) through the run. The verdict is on the
// datapath worker, where frames are handled: per-frame garbage at millions of frames a second
// means many young-generation collections a second (the worker counts them), and a leak shows as
// a rising floor of its heap. The whole process's heap (control plane included, whose stats
// requests make a little garbage of their own) is reported beside it.

import { pause, withSession, type BenchSettings } from './cases.js';
import { framesInspected, heapCaseSpec, type HeapLoad } from './plan.js';

export interface HeapSample {
  /** Seconds since the end of the warm-up. */
  t: number;
  usedBytes: number;
  datapathBytes: number;
  collections: number;
  /** Frames of the load's queue: transmitq for sink and reflect, receiveq for gen. */
  frames: number;
  /** sink: frames copied and inspected by the verifier; reflect: frames returned on the receiveq. */
  handled: number;
}

export interface HeapLimits {
  toleranceBytes: number;
  collectionsPerSecond: number;
  collectionsPerMillionFrames: number;
}

export interface HeapResult {
  load: HeapLoad;
  seconds: number;
  frameSize: number;
  /** Frames handled during the sampled run. */
  frames: number;
  /** What the device did with them, beyond counting (null for gen, which copies by construction). */
  copied: string | null;
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
  collectionsPerMillionFrames: number;
  limits: HeapLimits;
  /** No per-frame allocation: see heapVerdict. */
  flat: boolean;
  /** Why not flat ('' when flat). */
  verdict: string;
  /**
   * Least-squares slope of the samples: a leak shows as a steady rise, while garbage that is
   * collected shows as a large range with a slope near zero.
   */
  trendBytesPerMin: number;
  /** Rate over the run, from the device's own frame counter. */
  mpps: number;
  samples: HeapSample[];
}

/**
 * Without per-frame garbage the worker allocates little (per scheduler turn and timer: measured
 * here, under one young-generation collection a second at 20 Mpps); with even one small object
 * per frame at millions of frames a second it collects hundreds of times a second. The range of
 * the samples is no verdict: young-generation fill swings it by a MiB or two either way.
 * Collections per frame bound the garbage per frame whatever the rate; collections per second
 * bound the rest (timers, turns), which does not grow with the frame count.
 */
export const HEAP_LIMITS: Omit<HeapLimits, 'toleranceBytes'> = {
  collectionsPerSecond: 5,
  collectionsPerMillionFrames: 1,
};

/**
 * The verdict: the datapath heap grew by at most the tolerance over the whole run (so growth does
 * not scale with the frame count), and collections stay below both limits. Returns '' when flat.
 */
export function heapVerdict(
  growthBytes: number,
  collections: number,
  seconds: number,
  frames: number,
  limits: HeapLimits,
): string {
  const why: string[] = [];
  if (growthBytes > limits.toleranceBytes) {
    why.push(`datapath heap grew ${(growthBytes / 1048576).toFixed(2)} MiB, over ${(limits.toleranceBytes / 1048576).toFixed(2)} MiB`);
  }
  if (frames <= 0) why.push('no frames moved');
  const perSecond = seconds > 0 ? collections / seconds : Infinity;
  if (perSecond >= limits.collectionsPerSecond) {
    why.push(`${perSecond.toFixed(2)} collections/s, limit ${limits.collectionsPerSecond}`);
  }
  const perMillion = frames > 0 ? (collections * 1e6) / frames : Infinity;
  if (frames > 0 && perMillion >= limits.collectionsPerMillionFrames) {
    why.push(`${perMillion.toFixed(3)} collections per million frames, limit ${limits.collectionsPerMillionFrames}`);
  }
  return why.join('; ');
}

export async function runHeapCheck(
  settings: BenchSettings,
  load: HeapLoad,
  frameSize: number,
  seconds: number,
  toleranceBytes: number,
): Promise<HeapResult> {
  const spec = heapCaseSpec(load, frameSize);
  const { result, end } = await withSession(spec, 'zcnic', settings, async ({ device }) => {
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
        frames: load === 'gen' ? s.receiveq.frames : s.transmitq.frames,
        handled: load === 'sink' ? framesInspected(s) : load === 'reflect' ? s.receiveq.frames : 0,
      });
    };
    await sample();
    // About 20 samples whatever the length, at least one a second.
    const stepMs = Math.max(1000, (seconds * 1000) / 20);
    while (performance.now() - start < seconds * 1000) {
      await pause(settings, Math.max(0, Math.min(stepMs, seconds * 1000 - (performance.now() - start))) / 1000);
      await sample();
      settings.log(
        `heap ${load} ${frameSize} B t=${samples.at(-1)?.t.toFixed(1)}s datapath=${((samples.at(-1)?.datapathBytes ?? 0) / 1048576).toFixed(2)} MiB ` +
          `GCs=${(samples.at(-1)?.collections ?? 0) - (samples[0]?.collections ?? 0)}`,
      );
    }
    const first = samples[0];
    const last = samples.at(-1);
    if (!first || !last || samples.length < 2) throw new Error('heap check: not enough samples');
    const used = samples.map((s) => s.usedBytes);
    const dt = last.t - first.t;
    const datapath = samples.map((s) => s.datapathBytes);
    const collections = last.collections - first.collections;
    const frames = last.frames - first.frames;
    const handled = last.handled - first.handled;
    const limits: HeapLimits = { toleranceBytes, ...HEAP_LIMITS };
    const verdict = heapVerdict(last.datapathBytes - first.datapathBytes, collections, dt, frames, limits);
    return {
      load,
      seconds: dt,
      frameSize,
      frames,
      // sink: settled below from the final counters (a sample may catch a frame in flight).
      copied: load === 'reflect' ? `${handled} frames copied back to the receiveq` : null,
      beforeBytes: first.usedBytes,
      afterBytes: last.usedBytes,
      minBytes: Math.min(...used),
      maxBytes: Math.max(...used),
      toleranceBytes,
      datapathBeforeBytes: first.datapathBytes,
      datapathAfterBytes: last.datapathBytes,
      datapathMinBytes: Math.min(...datapath),
      datapathMaxBytes: Math.max(...datapath),
      collections,
      collectionsPerSecond: dt > 0 ? collections / dt : 0,
      collectionsPerMillionFrames: frames > 0 ? (collections * 1e6) / frames : 0,
      limits,
      flat: verdict === '',
      verdict,
      trendBytesPerMin: slope(samples.map((x) => [x.t, x.usedBytes])) * 60,
      mpps: dt > 0 ? frames / dt / 1e6 : 0,
      samples,
    };
  });
  if (end.notCopied) {
    return { ...result, copied: end.notCopied, flat: false, verdict: [result.verdict, end.notCopied].filter(Boolean).join('; ') };
  }
  if (load === 'sink') {
    const copied =
      settings.sinkWork === 'copy'
        ? 'every frame copied and inspected, per the final counters'
        : 'verification off: frames counted, not read';
    return { ...result, copied };
  }
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
