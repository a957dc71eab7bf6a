/**
 * What failed in a `make test` layer, one line each, for the closing summary: a CI log keeps
 * the tail, and the tail must say what failed and why, not only how many.
 */

/** One guest test as a results JSON lists it: `zcnic run`'s shape or `zcnic selftests`'. */
export interface ListedTest {
  readonly name?: string;
  readonly ok?: boolean;
  readonly skip?: boolean;
  readonly diagnostics?: readonly string[];
  readonly zcnic?: { readonly verdict?: string; readonly diagnostics?: readonly string[] };
  readonly deviceCounters?: { readonly features?: readonly string[] } | null;
}

/**
 * The passed tests (by name) whose device did not negotiate every feature of `wanted`
 * (deviceCounters.features): a layer for a feature must not pass on a guest that declined it.
 */
export function passedWithout(tests: readonly ListedTest[], wanted: readonly string[]): string[] {
  return tests.filter((t) => t.ok === true && t.skip !== true && !wanted.every((f) => t.deviceCounters?.features?.includes(f) === true)).map((t) => t.name ?? '?');
}

/** The longest reason quoted per failure. */
const REASON_CHARS = 160;

/**
 * A diagnostic that states why a test failed, rather than what it was doing: the guest suites'
 * `MISMATCH what: got, expected` lines, a `fail` reason, a traceback's error, a timeout.
 */
const REASON_LINE = /MISMATCH|\bfail|error|expected|timed out|still running|not ok/i;

function isFailed(t: ListedTest): boolean {
  return t.zcnic ? t.zcnic.verdict === 'fail' : t.ok === false && t.skip !== true;
}

function diagnosticsOf(t: ListedTest): string[] {
  return (t.zcnic?.diagnostics ?? t.diagnostics ?? []).map((d) => d.trim()).filter((d) => d !== '');
}

/**
 * The failed tests of a results JSON, each with its first diagnostic that reads as a reason
 * (else its first diagnostic): a suite often says what it runs before it says what went wrong.
 */
export function failedTests(tests: readonly ListedTest[]): string[] {
  return tests.filter(isFailed).map((t) => {
    const lines = diagnosticsOf(t);
    const why = lines.find((d) => REASON_LINE.test(d)) ?? lines[0] ?? 'no diagnostic';
    return `${t.name ?? '(unnamed)'}: ${why.slice(0, REASON_CHARS)}`;
  });
}

/** The most diagnostic lines printed per failed test. */
const DIAGNOSTIC_LINES = 40;

/**
 * Every failed test with its diagnostics (the last DIAGNOSTIC_LINES of each), for the log of a
 * failed layer: the summary line names the reason, this keeps the context around it.
 */
export function failedTestDetails(tests: readonly ListedTest[]): string {
  return tests
    .filter(isFailed)
    .map((t) => {
      const lines = diagnosticsOf(t);
      const cut = lines.length > DIAGNOSTIC_LINES ? [`(${lines.length - DIAGNOSTIC_LINES} earlier lines left out)`, ...lines.slice(-DIAGNOSTIC_LINES)] : lines;
      return [`not ok ${t.name ?? '(unnamed)'}`, ...cut.map((l) => `  # ${l}`)].join('\n');
    })
    .join('\n');
}

/** uvu's own line for each failed test (" FAIL  suite  \"name\""), without its colours. */
export function uvuFailures(output: string): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  return plain.split('\n').filter((l) => /^\s*FAIL\s/.test(l)).map((l) => l.trim().replace(/\s+/g, ' '));
}
