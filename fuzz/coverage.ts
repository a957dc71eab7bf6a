/**
 * Cheap coverage guidance without instrumenting the backend: a case's "signal" is what the
 * backend visibly did with it (which error counters moved, which refusal reasons were counted,
 * how each message was answered, whether the ring stopped). A case whose signal holds something
 * no earlier case showed, a single feature or a new combination of them, joins the corpus, and
 * later cases are often mutations of corpus entries.
 */
import type { MessageCase } from './message-cases.js';
import type { Prng } from './prng.js';
import type { RingGenome } from './ring-genome.js';

export type Genome = { readonly type: 'ring'; readonly ring: RingGenome } | { readonly type: 'message'; readonly message: MessageCase };

interface Entry {
  readonly genome: Genome;
  /** How often it was picked; fresh entries are picked more. */
  picks: number;
}

const MAX_ENTRIES = 2000;

export class Corpus {
  private readonly seen = new Set<string>();
  private readonly entries: Entry[] = [];

  get size(): number {
    return this.entries.length;
  }

  /** Distinct features seen so far. */
  get features(): number {
    return this.seen.size;
  }

  /** Records a case's signal; keeps the case and returns true when it showed something new. */
  add(genome: Genome, signal: readonly string[]): boolean {
    const features = [...new Set(signal)].sort();
    features.push(`combination:${genome.type}:${features.join('|')}`);
    let fresh = false;
    for (const f of features) {
      if (!this.seen.has(f)) {
        this.seen.add(f);
        fresh = true;
      }
    }
    if (fresh && this.entries.length < MAX_ENTRIES) this.entries.push({ genome: structuredClone(genome), picks: 0 });
    return fresh;
  }

  /**
   * A corpus entry to mutate, ring and message cases in turn (message cases find new
   * refusal reasons more easily and would crowd out the rings), favouring the recent and the
   * rarely picked; null when empty.
   */
  pick(prng: Prng): Genome | null {
    const wanted = prng.chance(0.5) ? 'ring' : 'message';
    const pool = this.entries.filter((e) => e.genome.type === wanted);
    const entries = pool.length > 0 ? pool : this.entries;
    if (entries.length === 0) return null;
    const a = entries[prng.int(entries.length)]!;
    const recent = entries[Math.max(0, entries.length - 1 - prng.int(Math.min(16, entries.length)))]!;
    const entry = a.picks <= recent.picks ? a : recent;
    entry.picks++;
    return entry.genome;
  }
}
