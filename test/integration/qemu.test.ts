/**
 * A real kernel in QEMU on the zcnic device: the guest's frames arrive at the device, and the
 * device verifies every one (the smoke suite asks it through zcnic_ctl and the harness records
 * its counters per test). TCG here (KVM is probed and falls back when unusable).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runGuest } from '../support/integration.js';

test('the smoke suite passes and the device verified the guest frames', async () => {
  const { outcome, progress } = await runGuest(['smoke']);
  assert.is(outcome.problem, null, progress);
  const tests = outcome.results.tests;
  assert.equal(tests.map((t) => [t.name, t.ok]), [['link-up', true], ['send-frames', true]], progress);
  const counters = tests[1]!.deviceCounters as { transmitq: { frames: number }; verification: { verified: number; corrupt: number } };
  assert.is(counters.verification.verified, 1000);
  assert.is(counters.verification.corrupt, 0);
  assert.ok(counters.transmitq.frames >= 1000);
  assert.is(tests[1]!.metrics['device_verified'], 1000);
});

test.run();
