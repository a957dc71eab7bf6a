import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KERNEL_MSG_ZEROCOPY_SUITE, SUITE_BUILDS, suiteConflict, XSKXCEIVER_SUITE } from '../../harness/suite-builds.js';
import { MSG_ZEROCOPY_TARGET } from '../../images/msg-zerocopy.js';

test('kernel-msg-zerocopy builds net/msg_zerocopy and runs on the NIC pair with IPv6 on', () => {
  const build = SUITE_BUILDS.find((b) => b.suite === KERNEL_MSG_ZEROCOPY_SUITE);
  assert.is(build?.target, MSG_ZEROCOPY_TARGET);
  assert.is(build?.network, 'zcnic-pair');
  assert.is(build?.append, 'zcnic.ipv6=1');
});

test('a suite on the NIC pair runs alone: with other suites the run is refused, naming them', () => {
  assert.is(suiteConflict([KERNEL_MSG_ZEROCOPY_SUITE]), undefined);
  assert.match(suiteConflict(['smoke', KERNEL_MSG_ZEROCOPY_SUITE, 'xdpsock']) ?? '', /^suite kernel-msg-zerocopy runs on its own NICs \(zcnic-pair\): run it alone, not with smoke, xdpsock$/);
});

test('suites on the one NIC mix freely, xskxceiver included', () => {
  assert.is(suiteConflict(['smoke', XSKXCEIVER_SUITE, 'xdpsock']), undefined);
  assert.is(suiteConflict([]), undefined);
});

test.run();
