// The KTAP reader on real guest output (smoke-real.ktap was captured from a TCG boot with the
// device attached; smoke-real.raw is the same stream with the guest's control requests) and on hand-written fixtures in the guest's formats: timeout, skip with a
// reason, a crash mid-run, nested subtests, metrics; and its incremental behaviour.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { KtapReader, metricValue, parseKeyValues, parseKtap, type KtapBegin, type KtapResult } from '../../harness/ktap.js';

// Compiled to dist/test/harness/; fixtures stay in the source tree.
const FIXTURES = new URL('../../../test/fixtures/ktap/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8');

test('real smoke run: two passes, header, boot time, metrics, begin lines, done', () => {
  const begins: KtapBegin[] = [];
  const r = new KtapReader({ onBegin: (b) => begins.push(b) });
  r.write(fixture('smoke-real.ktap'));
  const s = r.end();
  assert.equal(begins, [
    { name: 'link-up', suite: 'smoke', index: 1 },
    { name: 'send-frames', suite: 'smoke', index: 2 },
  ]);
  assert.is(s.version, 1);
  assert.is(s.planned, 2);
  assert.equal([s.passed, s.failed, s.skipped, s.missing], [2, 0, 0, 0]);
  assert.is(s.bootMs, 2980);
  assert.is(s.done, true);
  assert.equal(s.doneCounts, { pass: 2, fail: 0, skip: 0, ms: 340 });
  assert.is(s.header['kernel'], '6.12.117+deb12-amd64');
  assert.is(s.header['iface'], 'eth0');
  assert.equal(s.errors, []);
  // boot.ms and the header are the run's, not the first test's.
  assert.equal(s.metrics, { 'boot.ms': 2980 });
  const [linkUp, send] = s.results;
  assert.ok(linkUp && send);
  assert.is(linkUp.name, 'link-up');
  assert.is(linkUp.suite, 'smoke');
  assert.is(linkUp.index, 1);
  assert.equal(linkUp.diagnostics, ['eth0 mac=52:54:00:12:34:56 mtu=1500 flags=0x1003 operstate=up carrier=1']);
  assert.equal(linkUp.metrics, { 'test.link-up.ms': 90 });
  assert.is(linkUp.durationMs, 90);
  assert.is(send.durationMs, 170);
  assert.equal(send.metrics, { frames_sent: 1000, tx_packets_delta: 1000, 'test.send-frames.ms': 170 });
  assert.equal(send.diagnostics, ['frames: {"sent":1000}']);
});

test('timeout, skip with a reason, failure diagnostics, string metrics', () => {
  const s = parseKtap(fixture('timeout-skip.ktap'));
  assert.equal([s.planned, s.passed, s.failed, s.skipped, s.missing], [4, 1, 2, 1, 0]);
  const byName = new Map(s.results.map((r) => [r.name, r]));
  const copy = byName.get('bind-copy')!;
  assert.equal(copy.metrics, { pps: 812345, mode: 'copy', 'test.bind-copy.ms': 2140 });
  const zc = byName.get('bind-zerocopy')!;
  assert.is(zc.ok, false);
  assert.is(zc.timeout, 60);
  assert.is(zc.directive, null);
  assert.is(zc.durationMs, 60010);
  const busy = byName.get('busy-poll')!;
  assert.is(busy.ok, true);
  assert.is(busy.skip, 'kernel has no SO_PREFER_BUSY_POLL');
  assert.is(busy.timeout, null);
  const drop = byName.get('rx-drop')!;
  assert.is(drop.ok, false);
  assert.is(drop.timeout, null);
  assert.equal(drop.diagnostics, ['rx-drop: exit status 1', 'received 990 of 1000 frames']);
  assert.is(s.running, null);
});

test('a crash mid-run: planned 4, got 2, the running test is known', () => {
  const s = parseKtap(fixture('crash.ktap'));
  assert.is(s.planned, 4);
  assert.is(s.results.length, 2);
  assert.is(s.missing, 2);
  assert.is(s.done, false);
  assert.is(s.doneCounts, null);
  assert.is(s.running, 'bind-zerocopy');
  // What the dead test printed is not lost: it is the run's now.
  assert.equal(s.diagnostics, ['binding eth0 queue 0 with XDP_ZEROCOPY']);
  assert.equal([s.passed, s.failed, s.skipped], [2, 0, 0]);
});

test('nested blocks become subtests of the following result line', () => {
  const s = parseKtap(fixture('nested.ktap'));
  assert.equal([s.planned, s.passed, s.failed, s.missing], [2, 1, 1, 0]);
  assert.equal(s.errors, []);
  const [example, checksum] = s.results;
  assert.ok(example && checksum);
  assert.is(example.name, 'example');
  assert.is(example.depth, 0);
  assert.equal(
    example.subtests.map((t) => [t.index, t.name, t.ok, t.skip, t.depth]),
    [
      [1, 'example_simple_test', true, null, 1],
      [2, 'example_skip_test', true, 'this test should be skipped', 1],
      [3, 'example_params_test', true, null, 1],
    ],
  );
  assert.equal(example.diagnostics, ['example: pass:2 fail:0 skip:1 total:3']);
  assert.equal(example.subtests[1]!.diagnostics, ['example_skip_test: initializing']);
  const params = example.subtests[2]!;
  assert.equal(
    params.subtests.map((t) => [t.name, t.skip, t.depth]),
    [
      ['example value 3', 'unsupported param value 3', 2],
      ['example value 2', null, 2],
    ],
  );
  assert.is(checksum.ok, false);
  assert.equal(
    checksum.subtests.map((t) => [t.name, t.ok, t.diagnostics]),
    [
      ['ipv4', true, []],
      ['ipv6', false, ['expected 0x1c46, got 0x0000']],
    ],
  );
  // Nested results keep the suite they ran in.
  assert.is(checksum.subtests[0]!.suite, 'kunit');
});

test('incremental: each result is emitted as soon as its line arrives, begin events too', () => {
  const results: KtapResult[] = [];
  const begins: KtapBegin[] = [];
  const r = new KtapReader({ onResult: (x) => results.push(x), onBegin: (b) => begins.push(b) });
  r.line('KTAP version 1');
  r.line('1..2');
  r.line('# zcnic-suite name=smoke');
  r.line('# zcnic-begin name=link-up');
  assert.equal(begins, [{ name: 'link-up', suite: 'smoke', index: 1 }]);
  r.line('ok 1 link-up');
  // No further line yet: tap-parser alone would still be holding this result back.
  assert.is(results.length, 1);
  assert.is(results[0]!.name, 'link-up');
  r.line('# zcnic-begin name=send-frames');
  assert.is(begins[1]!.index, 2);
  r.line('not ok 2 send-frames');
  assert.is(results.length, 2);
  const s = r.end();
  assert.equal([s.passed, s.failed, s.missing], [1, 1, 0]);
  assert.is(s.done, false);
});

test('write(): chunks split anywhere, CRLF, a last line without newline', () => {
  const text = 'KTAP version 1\r\n1..2\r\n# zcnic-metric test.a.ms=5\r\nok 1 a\r\nok 2 b # SKIP no reason given here';
  const seen: string[] = [];
  const r = new KtapReader({ onResult: (x) => seen.push(x.name) });
  for (let i = 0; i < text.length; i += 3) r.write(text.slice(i, i + 3));
  assert.equal(seen, ['a']);
  const s = r.end();
  assert.equal(seen, ['a', 'b']);
  assert.is(s.results[0]!.durationMs, 5);
  assert.is(s.results[1]!.skip, 'no reason given here');
  assert.equal([s.passed, s.skipped], [1, 1]);
  assert.is(r.end(), s, 'end() twice returns the same summary');
});

test('the guest\'s other directives: "no such suite", TIMEOUT without seconds, SKIP without reason', () => {
  const s = parseKtap(
    ['KTAP version 1', '1..3', '# zcnic-suite name=nope', 'not ok 1 suite-nope # no such suite', 'not ok 2 t # TIMEOUT', 'ok 3 u # SKIP'].join('\n'),
  );
  const [a, b, c] = s.results;
  assert.is(a!.name, 'suite-nope');
  assert.is(a!.directive, 'no such suite');
  assert.is(a!.timeout, null);
  assert.is(b!.timeout, 0);
  assert.is(c!.skip, '');
  assert.equal([s.passed, s.failed, s.skipped], [0, 2, 1]);
});

test('the KTAP version line is not noise, and a stream without one still parses', () => {
  const without = parseKtap('1..1\nok 1 a\n');
  assert.is(without.version, null);
  assert.is(without.passed, 1);
  assert.equal(without.errors, []);
  const v2 = parseKtap('KTAP version 2\n1..1\nok 1 a\n');
  assert.is(v2.version, 2);
  assert.equal(v2.diagnostics, []);
});

test('stream problems are reported: no plan, more results than planned, duplicates, bail out', () => {
  assert.ok(parseKtap('ok 1 a\n').errors.some((e) => e.includes('no plan')));
  const over = parseKtap('1..1\nok 1 a\nok 2 b\n');
  assert.ok(over.errors.some((e) => e.includes('2 results for a plan of 1')), over.errors.join('; '));
  assert.is(over.missing, 0);
  const dup = parseKtap('1..2\nok 1 a\nok 1 b\n');
  assert.ok(dup.errors.some((e) => e.includes('appears multiple times')), dup.errors.join('; '));
  const bail = parseKtap('1..3\nok 1 a\nBail out! out of memory\nok 2 b\n');
  assert.is(bail.bailout, 'out of memory');
  assert.is(bail.results.length, 1);
  assert.is(bail.missing, 2);
});

test('non-TAP lines are ignored; unknown zcnic-* lines stay as diagnostics; done-time lines are the run\'s', () => {
  const s = parseKtap(
    ['KTAP version 1', '1..1', '[   3.1] virtio_net virtio0 eth0: renamed', '# zcnic-frob x=1', 'ok 1 a', '# zcnic-done pass=1 fail=0 skip=0', '# bye'].join('\n'),
  );
  assert.equal(s.results[0]!.diagnostics, ['zcnic-frob x=1']);
  assert.equal(s.diagnostics, ['bye']);
  assert.equal(s.errors, []);
});

test('helpers: key=value words, metric values', () => {
  assert.equal(parseKeyValues(' name=smoke  x=a=b junk '), { name: 'smoke', x: 'a=b' });
  assert.is(metricValue('42'), 42);
  assert.is(metricValue('-1.5e3'), -1500);
  assert.is(metricValue('0x10'), '0x10');
  assert.is(metricValue(' copy '), 'copy');
});

test.run();
