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

/** The failed tests of a results JSON, each with its first diagnostic. */
export function failedTests(tests: readonly ListedTest[]): string[] {
  const failed: string[] = [];
  for (const t of tests) {
    const isFailed = t.zcnic ? t.zcnic.verdict === 'fail' : t.ok === false && t.skip !== true;
    if (!isFailed) continue;
    const why = (t.zcnic?.diagnostics ?? t.diagnostics ?? []).find((d) => d.trim() !== '')?.trim() ?? 'no diagnostic';
    failed.push(`${t.name ?? '(unnamed)'}: ${why.slice(0, REASON_CHARS)}`);
  }
  return failed;
}

/** uvu's own line for each failed test (" FAIL  suite  \"name\""), without its colours. */
export function uvuFailures(output: string): string[] {
  // eslint-disable-next-line no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  return plain.split('\n').filter((l) => /^\s*FAIL\s/.test(l)).map((l) => l.trim().replace(/\s+/g, ' '));
}
