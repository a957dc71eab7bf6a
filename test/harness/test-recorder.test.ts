import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { diedBetweenTestsOfEmulatorFault, guestCpus, shellQuote } from '../../harness/run.js';
import { TestRecorder } from '../../harness/test-recorder.js';

const HEADER = ['KTAP version 1', '1..3', '# zcnic-suite name=smoke'];

function recorder(): TestRecorder {
  const device = { request: async () => ({ ok: true }), stats: async () => ({ transmitq: { frames: 1 } }) };
  return new TestRecorder({ device, begin: async () => undefined, peer: undefined, progress: () => undefined });
}

async function feed(lines: readonly string[], problem: string | null) {
  const r = recorder();
  for (const line of lines) r.line(line);
  return r.finish(() => problem, 'console tail');
}

const FAULT = { problem: 'QEMU exited with 1', emulatorFault: 'int3' };

test('died between tests: the reported tests stay, the rest fail, and a retry is allowed', async () => {
  const got = await feed([...HEADER, '# zcnic-begin name=a', 'ok 1 a'], 'QEMU exited with 1');
  assert.equal(got.tests.map((t) => [t.name, t.ok]), [['a', true], ['2 more planned test(s)', false]]);
  assert.is(got.anyTestFailed, false);
  assert.is(diedBetweenTestsOfEmulatorFault({ record: FAULT, anyTestFailed: got.anyTestFailed }), true);
});

test('died during a test: that test fails, and no retry may hide it', async () => {
  const got = await feed([...HEADER, '# zcnic-begin name=a', 'ok 1 a', '# zcnic-begin name=b'], 'QEMU exited with 1');
  assert.equal(got.tests.map((t) => [t.name, t.ok]), [['a', true], ['b', false], ['1 more planned test(s)', false]]);
  assert.is(got.anyTestFailed, true);
  assert.is(diedBetweenTestsOfEmulatorFault({ record: FAULT, anyTestFailed: got.anyTestFailed }), false);
});

test('a test had failed before the guest died: no retry', async () => {
  const got = await feed([...HEADER, '# zcnic-begin name=a', 'not ok 1 a'], 'QEMU exited with 1');
  assert.is(got.anyTestFailed, true);
  assert.is(diedBetweenTestsOfEmulatorFault({ record: FAULT, anyTestFailed: got.anyTestFailed }), false);
});

test('no emulator fault or no problem: no retry', () => {
  assert.is(diedBetweenTestsOfEmulatorFault({ record: { problem: 'QEMU exited with 1', emulatorFault: null }, anyTestFailed: false }), false);
  assert.is(diedBetweenTestsOfEmulatorFault({ record: { problem: null, emulatorFault: null }, anyTestFailed: false }), false);
});

test('a run that went wrong after every test passed is still one failure', async () => {
  const lines = [...HEADER, 'ok 1 a', 'ok 2 b', 'ok 3 c'];
  const clean = await feed(lines, null);
  assert.equal(clean.tests.map((t) => t.ok), [true, true, true]);
  const got = await feed(lines, 'the guest did not finish its suites');
  assert.equal(got.tests.at(-1)!.name, 'run');
  assert.equal(got.tests.at(-1)!.ok, false);
  assert.equal(got.tests.at(-1)!.diagnostics, ['the guest did not finish its suites', 'console tail']);
});

test('results and requests are answered in arrival order, counters read at the result', async () => {
  const order: string[] = [];
  const device = {
    request: async (body: Record<string, unknown>) => void order.push(`request ${String(body['cmd'])}`),
    stats: async () => (order.push('stats'), {}),
  };
  const r = new TestRecorder({ device, begin: async () => void order.push('begin'), peer: undefined, progress: () => undefined });
  r.line('KTAP version 1');
  r.line('1..2');
  r.line('ok 1 a');
  await r.answer('begin smoke b');
  assert.equal(order, ['stats', 'begin']);
});

test('--smp auto: 1 vCPU under TCG unless a suite needs a second CPU; 2 under KVM; a number stays', () => {
  assert.is(guestCpus('auto', 'tcg', ['smoke', 'xdpsock']), 1);
  assert.is(guestCpus('auto', 'tcg', ['xdpsock', 'cpumap']), 2);
  assert.is(guestCpus('auto', 'tcg', ['seeds']), 2, 'seeds includes cpumap');
  assert.is(guestCpus('auto', 'kvm', ['smoke']), 2);
  assert.is(guestCpus(4, 'tcg', ['smoke']), 4);
});

test('zcnic run -- CMD: each word reaches sh as one word, quotes and all', async () => {
  const { execFileSync } = await import('node:child_process');
  const words = ['printf', '%s|', "it's", 'a b', '$HOME', '`x`', ''];
  assert.is(execFileSync('sh', ['-c', words.map(shellQuote).join(' ')], { encoding: 'utf8' }), "it's|a b|$HOME|`x`||");
});

test.run();
