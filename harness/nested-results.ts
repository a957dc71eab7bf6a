/**
 * The kernel's selftests report through the kselftest runner, whose KTAP nests each test's own
 * KTAP in "# " comment lines; our guest passes every runner line on as a diagnostic ("# " +
 * line), so a test's own results arrive as "# # ok 1 ping.test_v4". These become results of
 * their own, each with the device's counters for its time (since the previous nested result,
 * or the test's start), the way netdev's CI reports them. The parent keeps a record only for
 * what its subtests do not explain: a failure none of them shows (a crash after them, a
 * timeout, a kernel warning), or no subtests at all.
 */
import { KtapReader, type KtapResult } from './ktap.js';
import { testRecordFromKtap, type DeviceCountersView, type TestRecord } from './report.js';

/** A test's nested results are the runner's "# " lines inside ours. */
const NESTED_PREFIX = '# # ';
/** Counters that are not sums: a delta of them means nothing, so the later value stands. */
const NOT_SUMMED = new Set(['heap', 'features', 'queues', 'gsoLargestFrame', 'needsReset', 'port', 'verify', 'requireLinearHeader', 'zeroCopyMapPages']);

/** `now - before` for every number in the tree (both snapshots of the same device). */
export function counterDelta(now: unknown, before: unknown): unknown {
  if (typeof now === 'number') return typeof before === 'number' ? now - before : now;
  if (typeof now !== 'object' || now === null || Array.isArray(now)) return now;
  const out: Record<string, unknown> = {};
  const was = typeof before === 'object' && before !== null ? (before as Record<string, unknown>) : {};
  for (const [key, value] of Object.entries(now)) out[key] = NOT_SUMMED.has(key) ? value : counterDelta(value, was[key]);
  return out;
}

/** One test's nested results as they arrive. */
export class NestedResults {
  private readonly reader: KtapReader;
  private readonly subtests: TestRecord[] = [];
  private previous: DeviceCountersView | null = null;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly parent: string,
    private readonly suite: string,
    private readonly snapshot: () => Promise<DeviceCountersView | null>,
  ) {
    this.reader = new KtapReader({ onResult: (r) => this.result(r) });
  }

  /** A KTAP line of the parent test; true when it was one of the nested lines. */
  line(line: string): boolean {
    if (!line.startsWith(NESTED_PREFIX)) return false;
    this.reader.line(line.slice(NESTED_PREFIX.length));
    return true;
  }

  private result(r: KtapResult): void {
    this.pending = this.pending.then(async () => {
      const now = await this.snapshot().catch(() => null);
      const counters = now === null ? null : (counterDelta(now, this.previous) as DeviceCountersView);
      this.previous = now;
      this.subtests.push({ ...testRecordFromKtap(r, counters), name: `${this.parent}/${r.name}`, suite: this.suite });
    });
  }

  /**
   * The records that stand for the parent: its subtests, and the parent itself where they do not
   * explain its verdict.
   */
  async records(parent: TestRecord): Promise<TestRecord[]> {
    await this.pending;
    if (this.subtests.length === 0) return [parent];
    const failedParent = !parent.ok && !parent.skip;
    const explained = this.subtests.some((t) => !t.ok && !t.skip);
    return failedParent && !explained ? [...this.subtests, parent] : this.subtests;
  }
}
