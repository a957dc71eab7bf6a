/**
 * The worker's heap and GC gauges in its shared counters: the datapath promises to allocate
 * nothing per frame, and these show whether it keeps the promise (flat heap, few collections
 * under load). Sampled once a second, so they cost the hot path nothing.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { Counter } from '../counters.js';

const HEAP_SAMPLE_MS = 1000;

export class HeapTelemetry {
  private readonly heapSampler: NodeJS.Timeout;
  private readonly gcObserver: PerformanceObserver;

  constructor(private readonly counters: Float64Array) {
    this.sampleHeap();
    this.heapSampler = setInterval(() => this.sampleHeap(), HEAP_SAMPLE_MS).unref();
    this.gcObserver = new PerformanceObserver((list) => {
      this.counters[Counter.collections]! += list.getEntries().length;
    });
    this.gcObserver.observe({ entryTypes: ['gc'] });
  }

  private sampleHeap(): void {
    this.counters[Counter.heapUsedBytes] = getHeapStatistics().used_heap_size;
  }

  stop(): void {
    clearInterval(this.heapSampler);
    this.gcObserver.disconnect();
  }
}
