import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RunResults, TestRecord } from '../../harness/report.js';
import { testRecord } from '../support/test-records.js';
import { sideBySide, sideBySideCounts, sideBySideMarkdown, sideBySideTable, unretried } from '../../harness/side-by-side.js';

const rec = testRecord;
const run = (tests: TestRecord[]) => unretried({ tests } as unknown as RunResults);

test('a test that passes on the reference and not on zcnic is a regression; the other way is not', () => {
  const rows = sideBySide(run([rec('a', 'pass'), rec('b', 'fail'), rec('c', 'skip'), rec('d', 'pass')]), run([rec('a', 'pass'), rec('b', 'pass'), rec('c', 'pass'), rec('d', 'fail'), rec('e', 'pass')]));
  assert.equal(rows.map((r) => [r.name, r.zcnic.verdict, r.reference.verdict, r.regression, r.skippedOnlyHere]), [
    ['a', 'pass', 'pass', false, false],
    ['b', 'fail', 'pass', true, false],
    // A skip is a difference to explain (a feature the device lacks), not a failure.
    ['c', 'skip', 'pass', false, true],
    ['d', 'pass', 'fail', false, false],
    // Only the reference ran it (zcnic never reported it): that too is a regression.
    ['e', 'absent', 'pass', true, false],
  ]);
  assert.equal(sideBySideCounts(rows), { passed: 2, failed: 2, skipped: 1, passedOnRetry: 0 });
  assert.match(sideBySideTable(rows), /b\s+FAIL\s+ok/);
  assert.match(sideBySideMarkdown(rows), /\| b \*\*\(fails only on zcnic\)\*\* \| FAIL \| ok \|/);
  assert.match(sideBySideMarkdown(rows), /\| c \(skips only on zcnic\) \| SKIP no remote \| ok \|/);
});

test('a verdict a retry gave after a failure says so in every format, and is counted apart', () => {
  const zcnic = { results: run([rec('a', 'pass'), rec('b', 'pass'), rec('c', 'fail')]).results, firstAttempts: new Map([['a', { verdict: 'fail' as const, diagnostics: ['timed out'] }], ['b', { verdict: 'pass' as const, diagnostics: [] }], ['c', { verdict: 'fail' as const, diagnostics: ['x'] }]]) };
  const rows = sideBySide(zcnic, null);
  assert.equal(sideBySideCounts(rows), { passed: 2, failed: 1, skipped: 0, passedOnRetry: 1 });
  assert.match(sideBySideTable(rows), /a\s+ok \(retry; failed first\)/);
  // b passed both times (its file was retried for another result): nothing to mark.
  assert.match(sideBySideTable(rows), /\nb\s+ok\s/);
  assert.match(sideBySideMarkdown(rows), /\| c \| FAIL \(retry; failed first\) \|/);
  assert.equal(rows[0]!.zcnic.firstAttempt?.diagnostics, ['timed out']);
});

test('without a reference nothing is a regression', () => {
  const rows = sideBySide(run([rec('a', 'fail')]), null);
  assert.equal(rows.map((r) => [r.reference.verdict, r.regression]), [['absent', false]]);
});

test.run();
