/**
 * The guest suites' shell library (guest/suites/lib/common.sh), run by the host's sh with a
 * stand-in for zcnic_ctl: what a test does with the harness's answers.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

// Compiled to dist/test/guest/; the library stays in the source tree.
const COMMON = fileURLToPath(new URL('../../../guest/suites/lib/common.sh', import.meta.url));

/** Runs SCRIPT after sourcing common.sh, with KTAP (fd 3) on stdout; zcnic_ctl answers ANSWER. */
function shell(script: string, answer: { out?: string; err?: string; status: number }, env: Record<string, string> = {}) {
  const stub = `zcnic_ctl() { printf '%s' '${answer.out ?? ''}'; printf '%s' '${answer.err ?? ''}' >&2; return ${answer.status}; }`;
  const r = spawnSync('sh', ['-c', `exec 3>&1; . "${COMMON}"; ${stub}; ${script}`], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env } });
  return { status: r.status, out: r.stdout };
}

test('device_wait: the counter reached its minimum, so its variable is set', () => {
  const r = shell('device_wait transmitq.frames 100 5; echo "got $transmitq_frames"', { out: 'transmitq_frames=120', status: 0 });
  assert.is(r.status, 0);
  assert.match(r.out, 'got 120');
});

test('device_wait: still short at the deadline, the test fails with the value (it used to go on)', () => {
  const err = 'zcnic_ctl wait transmitq.frames 100 5: error transmitq.frames is 7 after 5 s, below 100';
  const r = shell('device_wait transmitq.frames 100 5; echo went on', { err, status: 1 });
  assert.is(r.status, 1);
  assert.not.match(r.out, 'went on');
  assert.match(r.out, `# waiting for the device: ${err}`);
});

test('device_stats: an answer that is not plain words is never evaluated', () => {
  const r = shell('device_stats x; echo went on', { out: 'x=1;reboot', status: 0 });
  assert.is(r.status, 1);
  assert.match(r.out, 'unexpected answer from the harness');
});

test('negative control count-off-by-one: every number answered is one larger, words stay', () => {
  const r = shell('device_stats a b c; echo "$a $b $c"', { out: 'a=5 b=ab12 c=0', status: 0 }, { ZCNIC_FAULT: 'count-off-by-one' });
  assert.is(r.status, 0);
  assert.match(r.out, '6 ab12 1');
  const plain = shell('device_stats a; echo "$a"', { out: 'a=5', status: 0 });
  assert.match(plain.out, /^5$/m);
});

test.run();
