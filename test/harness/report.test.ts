// The four report formats on one run with every kind of result: counts, the exact JSON shape,
// the width-aware uncoloured/coloured table, JUnit structure and escaping, Markdown.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  counts,
  deviceSummary,
  formatDuration,
  junitXml,
  markdown,
  resultLabel,
  resultsJson,
  terminalTable,
  testRecordFromKtap,
  wantColor,
  xmlEscape,
  type RunResults,
  type TestRecord,
} from '../../harness/report.js';
import { parseKtap } from '../../harness/ktap.js';

const device = (tx: number, rx: number, verified: number, errors: Record<string, number> = {}) => ({
  transmitq: { frames: tx, bytes: tx * 128 },
  receiveq: { frames: rx, bytes: rx * 128, buffers: 256, noBuffers: 0 },
  errors: { availIndexJump: 0, descriptorLoop: 0, ...errors },
  verification: { verified, corrupt: 0, duplicates: 0, outOfOrder: 0, gaps: 0, otherFrames: 0 },
});

const rec = (over: Partial<TestRecord> & Pick<TestRecord, 'name'>): TestRecord => ({
  suite: 'smoke',
  ok: true,
  skip: false,
  skipReason: null,
  timeout: null,
  durationMs: 100,
  metrics: {},
  deviceCounters: null,
  diagnostics: [],
  ...over,
});

const run: RunResults = {
  accel: 'tcg',
  accelReason: 'KVM unusable: QEMU: KVM internal error. Suberror: 1',
  kernelRelease: '6.12.117+deb12-amd64',
  qemu: 'qemu-system-x86_64 on PATH',
  cpus: 2,
  bootSeconds: 5.8,
  suites: ['smoke', 'xsk'],
  startedAt: '2026-11-22T00:00:00.000Z',
  durationMs: 64_000,
  tests: [
    rec({ name: 'link-up', durationMs: 80, diagnostics: ['eth0 operstate=up'] }),
    rec({ name: 'send-frames', durationMs: 150, metrics: { frames_sent: 1000 }, deviceCounters: device(1000, 0, 1000) }),
    rec({ name: 'bind-zerocopy', suite: 'xsk', ok: false, timeout: 60, durationMs: 60_010 }),
    rec({ name: 'busy-poll', suite: 'xsk', ok: true, skip: true, skipReason: 'no SO_PREFER_BUSY_POLL', durationMs: 30 }),
    rec({
      name: 'rx-drop',
      suite: 'xsk',
      ok: false,
      durationMs: 1200,
      diagnostics: ['received 990 of 1000 frames', 'rx-drop: exit status 1'],
      deviceCounters: device(0, 990, 0, { availIndexJump: 2, rxBufferTooSmall: 1 }),
    }),
  ],
  attempts: [],
};
run.attempts.push({ attempt: 1, startedAt: run.startedAt, durationMs: run.durationMs, bootSeconds: 5.8, problem: null, emulatorFault: null, retried: false, tests: run.tests });

/** A run whose guest died of the emulator fault between tests once, then ran to the end. */
const retriedRun: RunResults = {
  ...run,
  attempts: [
    {
      attempt: 1,
      startedAt: run.startedAt,
      durationMs: 20_000,
      bootSeconds: 6.1,
      problem: 'QEMU exited with 1',
      emulatorFault: 'the guest oopsed in int3',
      retried: true,
      tests: [rec({ name: 'link-up' })],
    },
    { ...run.attempts[0]!, attempt: 2 },
  ],
};

test('counts: skip wins over ok, a timeout is a failure', () => {
  assert.equal(counts(run.tests), { passed: 2, failed: 2, skipped: 1 });
  assert.equal(counts([]), { passed: 0, failed: 0, skipped: 0 });
});

test('result labels and durations', () => {
  assert.equal(
    run.tests.map(resultLabel),
    ['ok', 'ok', 'TIMEOUT 60s', 'SKIP no SO_PREFER_BUSY_POLL', 'FAIL'],
  );
  assert.is(resultLabel(rec({ name: 'x', skip: true })), 'SKIP');
  assert.equal([formatDuration(null), formatDuration(850), formatDuration(1234), formatDuration(123_000)], ['-', '850ms', '1.23s', '2m03s']);
});

test('device column: frames, verified, only the errors above zero', () => {
  assert.is(deviceSummary(null), '-');
  assert.is(deviceSummary(device(1000, 0, 1000)), 'tx 1000 rx 0 ver 1000');
  assert.is(deviceSummary(device(0, 990, 0, { availIndexJump: 2, rxBufferTooSmall: 1 })), 'tx 0 rx 990 err availIndexJump=2,rxBufferTooSmall=1');
  // The control socket's stats shape (no verification block) and junk both degrade quietly.
  assert.is(deviceSummary({ transmitq: { frames: 5, bytes: 1 }, receiveq: { frames: 6, bytes: 1 }, errors: {} }), 'tx 5 rx 6');
  assert.is(deviceSummary({ transmitq: 'x' }), '-');
});

test('results JSON: exactly the agreed keys, in order', () => {
  const j = resultsJson(run);
  assert.equal(Object.keys(j), ['passed', 'failed', 'skipped', 'tests', 'accel', 'accelReason', 'kernelRelease', 'qemu', 'cpus', 'bootSeconds', 'durationMs', 'attempts']);
  assert.equal(Object.keys(j.attempts[0]!), ['attempt', 'startedAt', 'durationMs', 'bootSeconds', 'problem', 'emulatorFault', 'retried', 'tests']);
  assert.equal([j.cpus, j.bootSeconds], [2, 5.8]);
  assert.match(terminalTable(run, { color: false, columns: 200 }), '2 vCPUs, booted in 5.8 s');
  assert.equal([j.passed, j.failed, j.skipped], [2, 2, 1]);
  assert.equal(Object.keys(j.tests[0]!), ['name', 'suite', 'ok', 'skip', 'skipReason', 'timeout', 'durationMs', 'metrics', 'deviceCounters', 'diagnostics']);
  assert.is(j.tests[2]!.timeout, 60);
  assert.equal(j.tests[1]!.deviceCounters, device(1000, 0, 1000));
  // Survives a JSON round trip unchanged.
  assert.equal(JSON.parse(JSON.stringify(j)), j);
});

test('a retry keeps every attempt: JSON, the table and Markdown say what the first boot died of', () => {
  const j = resultsJson(retriedRun);
  assert.equal(j.attempts.map((a) => [a.attempt, a.retried, a.tests.length]), [[1, true, 1], [2, false, 5]]);
  assert.is(j.attempts[0]!.emulatorFault, 'the guest oopsed in int3');
  // The verdicts are the last attempt's.
  assert.equal([j.passed, j.failed, j.skipped], [2, 2, 1]);
  const table = terminalTable(retriedRun, { color: false, columns: 200 });
  assert.match(table, 'attempt 1 of 2: 1 passed, 0 failed, 0 skipped; QEMU exited with 1 (the guest oopsed in int3); booted again');
  assert.match(table, 'attempt 2 of 2: 2 passed, 2 failed, 1 skipped; ran to the end');
  assert.match(markdown(retriedRun), '## Attempts');
  // One boot: no attempt lines at all.
  assert.not.match(terminalTable(run, { color: false, columns: 200 }), 'attempt 1');
  assert.not.match(markdown(run), '## Attempts');
});

test('terminal table: plain without colour, every line within the width', () => {
  for (const columns of [100, 72, 50]) {
    const out = terminalTable(run, { columns, color: false });
    assert.not.match(out, /\x1b\[/);
    const lines = out.split('\n').filter((l) => l !== '');
    const table = lines.slice(0, run.tests.length + 1);
    for (const l of table) assert.ok(l.length <= columns, `${l.length} > ${columns}: ${l}`);
    assert.match(table[0]!, /^#\s+suite\s+test\s+result\s+time\s+device$/);
  }
  const wide = terminalTable(run, { columns: 160, color: false });
  assert.match(wide, /3 {2}xsk {4}bind-zerocopy {2}TIMEOUT 60s +1m00s {2}-/);
  assert.match(wide, /SKIP no SO_PREFER_BUSY_POLL/);
  assert.match(wide, /err availIndexJump=2,rxBufferTooSmall=1/);
  assert.match(wide, /2 passed, 2 failed, 1 skipped in 1m04s; tcg \(KVM unusable/);
  // A narrow terminal cuts the device column first, with an ellipsis.
  const narrow = terminalTable(run, { columns: 72, color: false });
  assert.match(narrow, /…/);
  assert.match(narrow, /bind-zerocopy/);
});

test('terminal table: colour on request; wantColor follows TTY and NO_COLOR', () => {
  const out = terminalTable(run, { columns: 120, color: true });
  assert.match(out, /\x1b\[32mok/);
  assert.match(out, /\x1b\[31mFAIL/);
  assert.match(out, /\x1b\[33mSKIP/);
  assert.is(wantColor({ isTTY: true }, {}), true);
  assert.is(wantColor({ isTTY: false }, {}), false);
  assert.is(wantColor({}, {}), false);
  assert.is(wantColor({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.is(wantColor({ isTTY: true }, { NO_COLOR: '' }), true);
});

test('terminal table: control characters in names cannot break a row', () => {
  const out = terminalTable({ ...run, tests: [rec({ name: 'a\nb\x1b[31m' })] }, { columns: 80, color: false });
  assert.not.match(out, /\x1b/);
  assert.is(out.split('\n')[1], '1  smoke  a b [31m  ok      100ms  -');
});

test('JUnit: one testsuite per suite, counts, failure/timeout/skipped elements', () => {
  const x = junitXml(run);
  assert.ok(x.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="zcnic" tests="5" failures="2" errors="0" skipped="1" time="64.000">'));
  assert.is(x.match(/<testsuite /g)?.length, 2);
  assert.match(x, /<testsuite name="smoke" tests="2" failures="0" errors="0" skipped="0" time="0.230" timestamp="2026-11-22T00:00:00.000Z">/);
  assert.match(x, /<testsuite name="xsk" tests="3" failures="2" errors="0" skipped="1" time="61.240"/);
  assert.match(x, /<testcase name="link-up" classname="zcnic.smoke" time="0.080">/);
  assert.match(x, /<failure message="TIMEOUT after 60s" type="timeout"><\/failure>/);
  assert.match(x, /<skipped message="no SO_PREFER_BUSY_POLL"\/>/);
  assert.match(x, /<failure message="received 990 of 1000 frames" type="failure">received 990 of 1000 frames\nrx-drop: exit status 1<\/failure>/);
  assert.match(x, /<property name="accelReason" value="KVM unusable: QEMU: KVM internal error. Suberror: 1"\/>/);
  assert.match(x, /<system-out>metric frames_sent=1000\ndevice \{/);
  assert.ok(x.endsWith('</testsuites>\n'));
  // Balanced: every opened element is closed.
  for (const el of ['testsuites', 'testsuite', 'testcase', 'properties']) {
    const open = (x.match(new RegExp(`<${el}[ >]`, 'g')) ?? []).length;
    const selfClosed = (x.match(new RegExp(`<${el} [^>]*/>`, 'g')) ?? []).length;
    const close = (x.match(new RegExp(`</${el}>`, 'g')) ?? []).length;
    assert.is(open - selfClosed, close, el);
  }
});

test('XML escaping: <&"> everywhere, control characters never reach the document', () => {
  assert.is(xmlEscape('a<b & "c" > \'d\''), 'a&lt;b &amp; "c" &gt; \'d\'');
  assert.is(xmlEscape('a<b & "c" > \'d\'', true), 'a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;');
  assert.is(xmlEscape('bell\x07 esc\x1b[0m nul\x00 del\x7f'), 'bell\\x07 esc\\x1b[0m nul\\x00 del\\x7f');
  assert.is(xmlEscape('tab\tnl\ncr\r', true), 'tab&#9;nl&#10;cr&#13;');
  assert.is(xmlEscape('tab\tnl\n'), 'tab\tnl\n');
  assert.is(xmlEscape('lone \ud800 pair \ud83d\ude00 \uffff'), 'lone \\ud800 pair \ud83d\ude00 \\uffff');

  const nasty = rec({
    name: 'x<y>&"z"',
    suite: 's&<t>',
    ok: false,
    diagnostics: ['got <nil> & "oops"\x1b[31m', 'bell\x07'],
  });
  const x = junitXml({ ...run, suites: ['s&<t>'], tests: [nasty, rec({ name: 'k', suite: 's&<t>', skip: true, skipReason: '"quoted" <r>' })] });
  assert.match(x, /<testsuite name="s&amp;&lt;t&gt;"/);
  assert.match(x, /<testcase name="x&lt;y&gt;&amp;&quot;z&quot;" classname="zcnic.s&amp;&lt;t&gt;"/);
  assert.match(x, /<failure message="got &lt;nil&gt; &amp; &quot;oops&quot;\\x1b\[31m" type="failure">got &lt;nil&gt; &amp; "oops"\\x1b\[31m\nbell\\x07<\/failure>/);
  assert.match(x, /<skipped message="&quot;quoted&quot; &lt;r&gt;"\/>/);
  // Nothing XML 1.0 forbids, and no '<' or '&' that is not markup or a reference.
  assert.not.match(x, /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/);
  assert.not.match(x, /&(?!(amp|lt|gt|quot|apos|#\d+);)/);
});

test('Markdown: summary, table with escaped cells, extra tables, failures with their diagnostics', () => {
  const md = markdown(
    { ...run, tests: [...run.tests, rec({ name: 'a|b', suite: 'xsk', ok: false, diagnostics: ['```', '<script>'] })] },
    [
      {
        title: 'pps per frame size and mode',
        columns: ['size', 'mode', 'pps'],
        rows: [
          [64, 'copy', 812345],
          [1500, 'zerocopy', null],
        ],
      },
    ],
  );
  assert.ok(md.startsWith('# zcnic results\n\n**2 passed, 3 failed, 1 skipped** in 1m04s; accel `tcg` (KVM unusable: QEMU: KVM internal error. Suberror: 1); kernel `6.12.117+deb12-amd64`'));
  assert.match(md, /\| # \| suite \| test \| result \| time \| device \|\n\| ---: \| --- \| --- \| --- \| ---: \| --- \|/);
  assert.match(md, /\| 2 \| smoke \| send-frames \| ok \| 150ms \| tx 1000 rx 0 ver 1000 \|/);
  assert.match(md, /\| 6 \| xsk \| a\\\|b \| FAIL \| 100ms \| - \|/);
  assert.match(md, /## pps per frame size and mode\n\n\| size \| mode \| pps \|\n\| --- \| --- \| --- \|\n\| 64 \| copy \| 812345 \|\n\| 1500 \| zerocopy \| {2}\|/);
  assert.match(md, /## Failures\n\n### xsk \/ bind-zerocopy: TIMEOUT 60s/);
  assert.match(md, /### xsk \/ rx-drop: FAIL\n\n```text\nreceived 990 of 1000 frames\nrx-drop: exit status 1\n```/);
  // A diagnostic holding a fence gets a longer fence around it.
  assert.match(md, /````text\n```\n<script>\n````/);
  assert.not.match(md, /## Failures[\s\S]*busy-poll/);
});

test('from KTAP results: skip reason, timeout, directive and failing subtests as diagnostics', () => {
  const s = parseKtap(
    [
      'KTAP version 1',
      '1..4',
      '# zcnic-suite name=xsk',
      '# zcnic-metric test.a.ms=12',
      'ok 1 a # SKIP no zerocopy',
      'not ok 2 b # TIMEOUT after 60s',
      'not ok 3 suite-x # no such suite',
      '    1..2',
      '    ok 1 v4',
      '    # checksum mismatch',
      '    not ok 2 v6',
      'not ok 4 csum',
    ].join('\n'),
  );
  const dev = device(1, 2, 0);
  const [a, b, x, csum] = s.results.map((r, i) => testRecordFromKtap(r, i === 0 ? dev : null));
  assert.equal(a, {
    name: 'a',
    suite: 'xsk',
    ok: true,
    skip: true,
    skipReason: 'no zerocopy',
    timeout: null,
    durationMs: 12,
    metrics: { 'test.a.ms': 12 },
    deviceCounters: dev,
    diagnostics: [],
  });
  assert.equal([b!.ok, b!.skip, b!.timeout, resultLabel(b!)], [false, false, 60, 'TIMEOUT 60s']);
  assert.equal(x!.diagnostics, ['no such suite']);
  assert.equal(csum!.diagnostics, ['subtest v6: not ok', '  checksum mismatch']);
  assert.equal(counts([a!, b!, x!, csum!]), { passed: 0, failed: 3, skipped: 1 });
});

test.run();
