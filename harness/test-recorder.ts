/**
 * The guest's tests as the harness records them: KTAP lines in, one TestRecord per result out,
 * each with the device's counters for that test. Counters are read when the result line
 * arrives and before the guest's next request is answered (its next `begin` resets them), so
 * results and requests go through one queue in the order they arrived.
 */
import { answerGuestRequest, type BeginHook, type DeviceRequests, type PeerRequests, type PeerUnavailable } from './guest-requests.js';
import { KtapReader, type KtapSummary } from './ktap.js';
import { NestedResults } from './nested-results.js';
import { testRecordFromKtap, type DeviceCountersView, type TestRecord } from './report.js';

export interface RecordedDevice extends DeviceRequests {
  stats(): Promise<DeviceCountersView>;
}

export interface TestRecorderOptions {
  readonly device: RecordedDevice;
  readonly begin: BeginHook;
  readonly peer: PeerRequests | PeerUnavailable | undefined;
  readonly progress: (line: string) => void;
  /** Suites whose tests nest their own KTAP in "# " lines (the kernel's selftests: harness/nested-results.ts). */
  readonly nestingSuites?: readonly string[];
}

/** What the guest reported, and the failures that stand for what it never reported. */
export interface RecordedTests {
  /** Why the run went wrong, or null. */
  readonly problem: string | null;
  readonly summary: KtapSummary;
  readonly tests: TestRecord[];
  /** A test failed before the run ended (the guest reported it, or it was running when it died). */
  readonly anyTestFailed: boolean;
}

export class TestRecorder {
  private readonly records: TestRecord[] = [];
  private readonly reader: KtapReader;
  private queue: Promise<unknown> = Promise.resolve();
  private plannedTests = 0;
  private sawKtap = false;
  private suite: string | null = null;
  /** The running test's nested results, in a nesting suite. */
  private nested: NestedResults | null = null;

  constructor(private readonly o: TestRecorderOptions) {
    this.reader = new KtapReader({
      onBegin: (b) => o.progress(`test ${b.index}${this.plannedTests ? `/${this.plannedTests}` : ''} ${b.suite ?? ''}/${b.name}`),
      onResult: (r) => {
        o.progress(`  ${r.skip !== null ? `skip (${r.skip})` : r.ok ? 'ok' : 'FAILED'} ${r.name}${r.durationMs !== null ? ` (${(r.durationMs / 1000).toFixed(1)} s)` : ''}`);
        const nested = this.nested;
        this.nested = null;
        this.queue = this.queue.then(async () => {
          const counters = await o.device.stats().catch(() => null);
          const record = testRecordFromKtap(r, counters);
          this.records.push(...(nested ? await nested.records(record) : [record]));
        });
      },
    });
  }

  get planned(): number {
    return this.plannedTests;
  }

  /** The guest printed its "KTAP version" line. */
  get started(): boolean {
    return this.sawKtap;
  }

  /** A KTAP line from the guest; returns true for the first "KTAP version" line. */
  line(line: string): boolean {
    const first = !this.sawKtap && line.startsWith('KTAP version');
    if (first) this.sawKtap = true;
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) this.plannedTests = Number(plan[1]);
    this.followNesting(line);
    this.reader.line(line);
    return first;
  }

  /** Starts a test's nested results at its begin line, in a nesting suite; feeds them its lines. */
  private followNesting(line: string): void {
    const suite = /^# zcnic-suite name=(\S+)/.exec(line);
    if (suite) this.suite = suite[1]!;
    const begin = /^# zcnic-begin name=(\S+)/.exec(line);
    if (begin) {
      const nesting = this.suite !== null && (this.o.nestingSuites ?? []).includes(this.suite);
      this.nested = nesting ? new NestedResults(begin[1]!, this.suite!, () => this.o.device.stats()) : null;
      return;
    }
    this.nested?.line(line);
  }

  /** A `zcnic_ctl` request, answered after everything that arrived before it. */
  answer(request: string): Promise<string> {
    const answer = this.queue.then(() => answerGuestRequest(request, this.o.device, this.o.begin, this.o.peer));
    this.queue = answer.catch(() => undefined);
    return answer;
  }

  /**
   * The tests once the guest is gone. When the run went wrong (`judge` names the problem, given
   * the KTAP summary), the test that was
   * running and those never reported become failures, so every count (JSON, JUnit, make test)
   * sees them; a run that went wrong with nothing left to blame is one failed record of its own.
   */
  async finish(judge: (summary: KtapSummary) => string | null, consoleTail: string): Promise<RecordedTests> {
    await this.queue.catch(() => undefined);
    const summary = this.reader.end();
    const problem = judge(summary);
    const tests = [...this.records];
    const anyTestFailed = tests.some((t) => !t.ok && !t.skip) || summary.running !== null;
    if (problem === null) return { problem, summary, tests, anyTestFailed };
    const failure = (name: string, diagnostics: string[]): TestRecord => ({
      name,
      suite: '',
      ok: false,
      skip: false,
      skipReason: null,
      timeout: null,
      durationMs: null,
      metrics: {},
      deviceCounters: null,
      diagnostics,
    });
    if (summary.running) tests.push(failure(summary.running, [`not finished: ${problem}`, consoleTail]));
    const unreported = summary.missing - (summary.running ? 1 : 0);
    if (unreported > 0) tests.push(failure(`${unreported} more planned test(s)`, [`never ran: ${problem}`]));
    if (!tests.some((t) => !t.ok && !t.skip)) tests.push(failure('run', [problem, consoleTail]));
    return { problem, summary, tests, anyTestFailed };
  }
}
