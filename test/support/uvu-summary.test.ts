import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseUvuSummary, UvuSummaryError } from './uvu-summary.js';

// Compiled to dist/test/support/; fixtures stay in the source tree.
const FIXTURES = new URL('../../../test/fixtures/uvu/', import.meta.url);
/** Real uvu 0.5 output of one file: a pass, a failure, two skips, and a suite with a pass and a skip. */
const passFailSkip = readFileSync(new URL('pass-fail-skip.txt', FIXTURES), 'utf8');

test('real uvu output: skips are not in Total, so failed = Total - Passed', () => {
  assert.equal(parseUvuSummary(passFailSkip), { passed: 2, failed: 1, skipped: 3 });
});

test('the old formula (Total - Passed - Skipped) would have said -2 here', () => {
  // The regression this parser exists for: a negative count cancelled other layers' failures.
  const totals = parseUvuSummary(passFailSkip)!;
  assert.ok(totals.failed >= 0);
  assert.is.not(totals.failed, 3 - 2 - 3);
});

test('no closing block yet: null', () => {
  assert.is(parseUvuSummary(passFailSkip.slice(0, passFailSkip.indexOf('Total:'))), null);
});

test('a summary whose Passed exceeds Total is an error, not a negative count', () => {
  const broken = passFailSkip.replace(/Passed:(\s+)2/, 'Passed:$15');
  assert.throws(() => parseUvuSummary(broken), (e: unknown) => e instanceof UvuSummaryError && /negative/.test((e as Error).message));
});

test('a failure count that disagrees with the FAIL blocks printed is an error', () => {
  const noFailBlock = passFailSkip.replace(/ FAIL /, ' fail ');
  assert.throws(() => parseUvuSummary(noFailBlock), (e: unknown) => e instanceof UvuSummaryError && /FAIL blocks/.test((e as Error).message));
});

test('all passing, nothing skipped', () => {
  const clean = '  Total:     4\n  Passed:    4\n  Skipped:   0\n  Duration:  1ms\n';
  assert.equal(parseUvuSummary(clean), { passed: 4, failed: 0, skipped: 0 });
});

test.run();
