/**
 * Negative controls: the proofs of the guest suites shown failing. A run with an injected fault
 * (zcnic run --negative-control) must fail exactly the tests whose checks that fault breaks.
 * - corrupt-byte: one smoke frame leaves the guest with a byte flipped; the device's verification
 *   catches it (999 verified, 1 corrupt) and send-frames fails.
 * - count-off-by-one: every device count a guest test reads is one larger; every test that
 *   reconciles a device count (smoke's send-frames and each xdpsock test) fails on a mismatch.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NegativeControl } from '../../harness/run.js';
import { runGuest } from '../support/integration.js';

async function runWith(negativeControl: NegativeControl, suites: string[]) {
  const { outcome, progress } = await runGuest(suites, { negativeControl });
  // The run itself must be sound: only the checks fail, not the setup.
  assert.is(outcome.problem, null, progress);
  return outcome.results.tests;
}

test('corrupt-byte: the device verification catches one flipped byte', async () => {
  const tests = await runWith('corrupt-byte', ['smoke']);
  assert.equal(tests.map((t) => [t.name, t.ok]), [['link-up', true], ['send-frames', false]]);
  const counters = tests[1]!.deviceCounters as { verification: { verified: number; corrupt: number } };
  assert.equal([counters.verification.verified, counters.verification.corrupt], [999, 1]);
  assert.ok(tests[1]!.diagnostics.some((d) => d.includes('the device verified 999 of 1000 frames (corrupt 1')), tests[1]!.diagnostics.join('\n'));
});

test('count-off-by-one: every reconciliation of a device count fails', async () => {
  const tests = await runWith('count-off-by-one', ['smoke', 'xdpsock']);
  // link-up reads no device count; every other test does, and each must fail on the count.
  assert.ok(tests.length >= 9, tests.map((t) => t.name).join(', '));
  for (const t of tests) {
    if (t.name === 'link-up') {
      assert.ok(t.ok, 'link-up reads no device count');
      continue;
    }
    assert.not.ok(t.ok, `${t.suite}/${t.name} passed with every device count off by one`);
    const why = t.diagnostics.find((d) => d.startsWith('MISMATCH device') || /device verified \d+ of/.test(d));
    assert.ok(why, `${t.suite}/${t.name} failed, but not on a count:\n${t.diagnostics.join('\n')}`);
  }
});

test.run();
