/**
 * Retry once, as netdev's CI does: a kselftest file (TARGET:TEST) with a failed result runs
 * again in a fresh boot, and its results become the retry's. Nothing of the first attempt is
 * lost: every result the retry replaced keeps the first attempt's verdict and diagnostics, the
 * report marks it, and the first run stays in the results JSON whole.
 */
import type { RunResults, TestRecord } from './report.js';

/** The first attempt of a result that a retry replaced. */
export interface FirstAttempt {
  readonly verdict: 'pass' | 'fail' | 'skip' | 'absent';
  readonly diagnostics: readonly string[];
}

/** A run's results after the retry, with the first attempt of each retried result. */
export interface RetriedRun {
  readonly results: RunResults;
  /** Result name to its first attempt, for every result of a retried file. */
  readonly firstAttempts: ReadonlyMap<string, FirstAttempt>;
  /** The files run again (TARGET:TEST). */
  readonly retried: readonly string[];
}

/**
 * The runner's TARGET:TEST a result belongs to: "drivers/net:ping.py/ping.test_default_v4" and
 * "drivers/net:ping.py" both give "drivers/net:ping.py". Targets hold slashes, test files none.
 */
export function selftestFileOf(resultName: string): string {
  const colon = resultName.indexOf(':');
  if (colon < 0) return resultName;
  const slash = resultName.indexOf('/', colon);
  return slash < 0 ? resultName : resultName.slice(0, slash);
}

function verdictOf(t: TestRecord | undefined): FirstAttempt['verdict'] {
  if (!t) return 'absent';
  return t.skip ? 'skip' : t.ok ? 'pass' : 'fail';
}

/** The files with a failed result, in the order they ran. */
export function filesToRetry(results: RunResults): string[] {
  const files: string[] = [];
  for (const t of results.tests) {
    const file = selftestFileOf(t.name);
    if (verdictOf(t) === 'fail' && !files.includes(file)) files.push(file);
  }
  return files;
}

/**
 * The first run with every retried file's results replaced by the retry's (in the first run's
 * order; a result only one of them has is kept, absent on the other side).
 */
export function mergeRetry(first: RunResults, retry: RunResults, retried: readonly string[]): RetriedRun {
  const isRetried = (name: string): boolean => retried.includes(selftestFileOf(name));
  const firstByName = new Map(first.tests.map((t) => [t.name, t]));
  const retryByName = new Map(retry.tests.map((t) => [t.name, t]));
  const firstAttempts = new Map<string, FirstAttempt>();
  const tests: TestRecord[] = [];
  const names = [...first.tests.map((t) => t.name), ...retry.tests.map((t) => t.name).filter((n) => !firstByName.has(n))];
  for (const name of names) {
    if (!isRetried(name)) {
      tests.push(firstByName.get(name)!);
      continue;
    }
    const before = firstByName.get(name);
    firstAttempts.set(name, { verdict: verdictOf(before), diagnostics: before && verdictOf(before) === 'fail' ? before.diagnostics.slice(-20) : [] });
    const after = retryByName.get(name);
    // A result the retry never gave failed: the file ran again and did not reach it.
    tests.push(after ?? { ...before!, ok: false, skip: false, skipReason: null, diagnostics: ['not reported by the retry'] });
  }
  // The boots stay numbered in the order they ran; the first run's last boot led to the retry.
  const before = first.attempts.map((a, i) => (i === first.attempts.length - 1 ? { ...a, retried: true } : a));
  const after = retry.attempts.map((a) => ({ ...a, attempt: first.attempts.length + a.attempt }));
  return { results: { ...first, tests, attempts: [...before, ...after] }, firstAttempts, retried };
}
