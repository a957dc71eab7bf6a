// A run's results in four shapes: a terminal table for people watching, results JSON for
// tools, JUnit XML for CI test viewers, Markdown for job summaries and bench write-ups.
// Every function here is pure (the terminal defaults read process.stdout/env only when the
// caller leaves them out), so the formats can be checked without a run.

import type { KtapResult, MetricValue } from './ktap.js';

export type { MetricValue };

/**
 * Device counters for one test (a snapshot or a delta), e.g. the device's DeviceCounters or
 * DeviceStats. Any object: the device owns the shape, and this module reads it defensively.
 */
export type DeviceCountersView = object;

export interface TestRecord {
  name: string;
  suite: string;
  ok: boolean;
  skip: boolean;
  skipReason: string | null;
  /** Seconds the guest waited before killing the test; null when it did not time out. */
  timeout: number | null;
  durationMs: number | null;
  metrics: Record<string, MetricValue>;
  deviceCounters: DeviceCountersView | null;
  diagnostics: string[];
}

/**
 * One boot of the guest. A run boots again only when the guest died of an emulator fault before
 * or between tests, or (zcnic selftests, as netdev's CI does) to run a failed selftest file once
 * more; every boot stays in the results, so a retry never hides what happened.
 */
export interface AttemptRecord {
  attempt: number;
  /** ISO 8601 time the boot started. */
  startedAt: string;
  durationMs: number;
  /** From QEMU's start to the guest's first KTAP line (the boot), or null if it never came. */
  bootSeconds: number | null;
  /** Why the boot went wrong (QEMU died, timed out, the device crashed), or null. */
  problem: string | null;
  /** The emulator fault the guest died of, or null. */
  emulatorFault: string | null;
  /** The run booted again after this attempt. */
  retried: boolean;
  tests: TestRecord[];
}

export interface RunResults {
  accel: string;
  accelReason: string;
  kernelRelease: string;
  /** Which QEMU ran the guest. */
  qemu: string;
  /** The guest's vCPUs. */
  cpus: number;
  /** The last attempt's boot: QEMU's start to the first KTAP line, or null. */
  bootSeconds: number | null;
  suites: string[];
  /** ISO 8601 time the run started. */
  startedAt: string;
  durationMs: number;
  /** The last attempt's tests: the verdicts. */
  tests: TestRecord[];
  /** Every boot, the last one included. */
  attempts: AttemptRecord[];
}

/** A table a suite contributes to the Markdown report, e.g. "pps per frame size and mode". */
export interface ExtraTable {
  title: string;
  columns: string[];
  rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null>>;
}

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export interface ResultsJson extends Counts {
  tests: TestRecord[];
  accel: string;
  accelReason: string;
  kernelRelease: string;
  qemu: string;
  cpus: number;
  /** The last attempt's boot (QEMU's start to the first KTAP line), seconds. */
  bootSeconds: number | null;
  durationMs: number;
  attempts: AttemptRecord[];
}

/**
 * A TestRecord from the KTAP reader's result and the device's counters for that test.
 * A directive the guest put on the result line ("no such suite") and the failing nested
 * results become diagnostics, so they reach every format.
 */
export function testRecordFromKtap(r: KtapResult, deviceCounters: DeviceCountersView | null = null): TestRecord {
  const diagnostics = [...r.diagnostics];
  if (r.directive !== null) diagnostics.unshift(r.directive);
  const failing = (list: readonly KtapResult[], path: string): void => {
    for (const t of list) {
      const name = `${path}${t.name}`;
      if (!t.ok && t.todo === null && t.skip === null) {
        diagnostics.push(`subtest ${name}: not ok${t.timeout !== null ? ' (TIMEOUT)' : ''}`, ...t.diagnostics.map((d) => `  ${d}`));
      }
      failing(t.subtests, `${name} > `);
    }
  };
  failing(r.subtests, '');
  return {
    name: r.name,
    suite: r.suite ?? '',
    ok: r.ok,
    skip: r.skip !== null,
    skipReason: r.skip === null || r.skip === '' ? null : r.skip,
    timeout: r.timeout,
    durationMs: r.durationMs,
    metrics: r.metrics,
    deviceCounters,
    diagnostics,
  };
}

// ------------------------------------------------------------------ shared pieces

/** A skipped test counts as skipped whatever its ok; a timeout is a failure. */
export function counts(tests: readonly TestRecord[]): Counts {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const t of tests) {
    if (t.skip) skipped++;
    else if (t.ok) passed++;
    else failed++;
  }
  return { passed, failed, skipped };
}

type Outcome = 'ok' | 'fail' | 'skip' | 'timeout';

function outcome(t: TestRecord): Outcome {
  if (t.skip) return 'skip';
  if (t.ok) return 'ok';
  return t.timeout !== null ? 'timeout' : 'fail';
}

/** The result column: ok / FAIL / SKIP reason / TIMEOUT 60s. */
export function resultLabel(t: TestRecord): string {
  switch (outcome(t)) {
    case 'ok':
      return 'ok';
    case 'skip':
      return t.skipReason ? `SKIP ${t.skipReason}` : 'SKIP';
    case 'timeout':
      return t.timeout ? `TIMEOUT ${t.timeout}s` : 'TIMEOUT';
    case 'fail':
      return 'FAIL';
  }
}

export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

function isRecord(v: unknown): v is { readonly [key: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * The short device column: "tx 1000 rx 0 ver 1000 err availIndexJump=1".
 * Reads the device's stats shape (transmitq/receiveq.frames, verification.verified, errors),
 * skipping what is absent, so a partial or older counter object still shows what it has.
 */
export function deviceSummary(counters: DeviceCountersView | null): string {
  if (!isRecord(counters)) return '-';
  const c = counters;
  const parts: string[] = [];
  const tx = isRecord(c['transmitq']) ? num(c['transmitq']['frames']) : null;
  const rx = isRecord(c['receiveq']) ? num(c['receiveq']['frames']) : null;
  const verified = isRecord(c['verification']) ? num(c['verification']['verified']) : num(c['verified']);
  if (tx !== null) parts.push(`tx ${tx}`);
  if (rx !== null) parts.push(`rx ${rx}`);
  if (verified !== null && verified > 0) parts.push(`ver ${verified}`);
  const errors = isRecord(c['errors'])
    ? Object.entries(c['errors']).filter((e): e is [string, number] => typeof e[1] === 'number' && e[1] > 0)
    : [];
  if (errors.length > 0) parts.push(`err ${errors.map(([k, v]) => `${k}=${v}`).join(',')}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

function summaryLine(run: RunResults): string {
  const c = counts(run.tests);
  return `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;
}

// ------------------------------------------------------------------ results JSON

/** The results object, keys in this order and no others. */
export function resultsJson(run: RunResults): ResultsJson {
  const c = counts(run.tests);
  return {
    passed: c.passed,
    failed: c.failed,
    skipped: c.skipped,
    tests: run.tests.map(testJson),
    accel: run.accel,
    accelReason: run.accelReason,
    kernelRelease: run.kernelRelease,
    qemu: run.qemu,
    cpus: run.cpus,
    bootSeconds: run.bootSeconds,
    durationMs: run.durationMs,
    attempts: run.attempts.map((a) => ({
      attempt: a.attempt,
      startedAt: a.startedAt,
      durationMs: a.durationMs,
      bootSeconds: a.bootSeconds,
      problem: a.problem,
      emulatorFault: a.emulatorFault,
      retried: a.retried,
      tests: a.tests.map(testJson),
    })),
  };
}

/** A test record, keys in this order and no others. */
function testJson(t: TestRecord): TestRecord {
  return {
    name: t.name,
    suite: t.suite,
    ok: t.ok,
    skip: t.skip,
    skipReason: t.skipReason,
    timeout: t.timeout,
    durationMs: t.durationMs,
    metrics: t.metrics,
    deviceCounters: t.deviceCounters,
    diagnostics: t.diagnostics,
  };
}

/** One line per boot that was not the last, or none: what a retry happened after. */
export function attemptLines(run: RunResults): string[] {
  if (run.attempts.length < 2) return [];
  return run.attempts.map((a) => {
    const c = counts(a.tests);
    const what = a.problem ? `${a.problem}${a.emulatorFault ? ` (${a.emulatorFault})` : ''}` : 'ran to the end';
    const next = a.retried ? '; booted again' : '';
    return `attempt ${a.attempt} of ${run.attempts.length}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped; ${what}${next}`;
  });
}

export function formatResultsJson(run: RunResults): string {
  return `${JSON.stringify(resultsJson(run), null, 2)}\n`;
}

// ------------------------------------------------------------------ terminal table

export interface TerminalOptions {
  /** Width to fit (default process.stdout.columns, else 100). */
  columns?: number;
  /** ANSI colours (default: stdout is a TTY and NO_COLOR is unset or empty). */
  color?: boolean;
}

/** https://no-color.org: any non-empty NO_COLOR turns colour off. */
export function wantColor(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env['NO_COLOR'] ?? '') === '';
}

const ANSI = { red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', bold: '\x1b[1m', dim: '\x1b[2m', reset: '\x1b[0m' } as const;

function truncate(s: string, width: number): string {
  if (s.length <= width) return s;
  if (width <= 1) return s.slice(0, width);
  return `${s.slice(0, width - 1)}…`;
}

/** Terminal cells hold one line: control characters (tabs, newlines, escapes) become spaces. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, ' ');
}

interface Column {
  title: string;
  align: 'left' | 'right';
  /** Narrowest it may be squeezed to, and the order of squeezing (lower first). */
  min: number;
  squeeze: number;
}

const COLUMNS: Column[] = [
  { title: '#', align: 'right', min: 1, squeeze: 9 },
  { title: 'suite', align: 'left', min: 5, squeeze: 3 },
  { title: 'test', align: 'left', min: 10, squeeze: 2 },
  { title: 'result', align: 'left', min: 7, squeeze: 1 },
  { title: 'time', align: 'right', min: 4, squeeze: 9 },
  { title: 'device', align: 'left', min: 8, squeeze: 0 },
];
const GAP = '  ';

/** Column widths that fit `total`: the widest columns give way first, in squeeze order. */
function fitWidths(natural: number[], total: number): number[] {
  const widths = [...natural];
  const used = () => widths.reduce((a, b) => a + b, 0) + GAP.length * (widths.length - 1);
  const order = COLUMNS.map((c, i) => ({ i, c })).sort((a, b) => a.c.squeeze - b.c.squeeze);
  for (const { i, c } of order) {
    const over = used() - total;
    if (over <= 0) break;
    const w = widths[i]!;
    widths[i] = Math.max(Math.min(c.min, w), w - over);
  }
  return widths;
}

export function terminalTable(run: RunResults, opts: TerminalOptions = {}): string {
  const total = opts.columns ?? (process.stdout.columns || 100);
  const color = opts.color ?? wantColor();
  const paint = (code: string, s: string) => (color ? `${code}${s}${ANSI.reset}` : s);

  const rows = run.tests.map((t, i) => ({
    cells: [String(i + 1), t.suite, t.name, resultLabel(t), formatDuration(t.durationMs), deviceSummary(t.deviceCounters)].map(oneLine),
    outcome: outcome(t),
  }));
  const natural = COLUMNS.map((c, col) => Math.max(c.title.length, ...rows.map((r) => r.cells[col]!.length)));
  const widths = fitWidths(natural, total);

  const render = (cells: string[], paintCell: (col: number, padded: string) => string): string =>
    cells
      .map((cell, col) => {
        const w = widths[col]!;
        const s = truncate(cell, w);
        // The last column is not padded: no trailing blanks.
        const padded = col === cells.length - 1 ? s : COLUMNS[col]!.align === 'right' ? s.padStart(w) : s.padEnd(w);
        return paintCell(col, padded);
      })
      .join(GAP)
      .trimEnd();

  const lines: string[] = [];
  lines.push(render(COLUMNS.map((c) => c.title), (_c, s) => paint(ANSI.bold, s)));
  for (const r of rows) {
    lines.push(
      render(r.cells, (col, s) => {
        if (col !== 3) return s;
        if (r.outcome === 'ok') return paint(ANSI.green, s);
        if (r.outcome === 'skip') return paint(ANSI.yellow, s);
        return paint(ANSI.red, s);
      }),
    );
  }
  const c = counts(run.tests);
  const summary = summaryLine(run);
  const colored = c.failed > 0 ? paint(ANSI.red, summary) : paint(ANSI.green, summary);
  lines.push('');
  lines.push(
    `${colored} in ${formatDuration(run.durationMs)}; ${run.accel}${run.accelReason ? ` (${oneLine(run.accelReason)})` : ''}, kernel ${run.kernelRelease}, ${run.cpus} vCPU${run.cpus > 1 ? 's' : ''}${run.bootSeconds !== null ? `, booted in ${run.bootSeconds.toFixed(1)} s` : ''}, ${oneLine(run.qemu)}`,
  );
  for (const line of attemptLines(run)) lines.push(paint(ANSI.yellow, oneLine(line)));
  return `${lines.join('\n')}\n`;
}

// ------------------------------------------------------------------ JUnit XML

/**
 * Text for XML 1.0 content or attributes. Characters XML 1.0 cannot carry at all (C0 controls
 * other than tab/newline/CR, lone surrogates, U+FFFE/U+FFFF) become a visible "\xNN" (or
 * "\uNNNN"), since even &#N; of them is not well-formed. In attributes, tab/newline/CR are
 * written as references so attribute normalisation does not turn them into spaces.
 */
export function xmlEscape(s: string, attribute = false): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += ch + s[i + 1]!;
        i++;
        continue;
      }
    }
    switch (ch) {
      case '&':
        out += '&amp;';
        continue;
      case '<':
        out += '&lt;';
        continue;
      case '>':
        out += '&gt;';
        continue;
      case '"':
        out += attribute ? '&quot;' : ch;
        continue;
      case "'":
        out += attribute ? '&apos;' : ch;
        continue;
      case '\t':
        out += attribute ? '&#9;' : ch;
        continue;
      case '\n':
        out += attribute ? '&#10;' : ch;
        continue;
      case '\r':
        out += '&#13;'; // a literal CR would be folded into the following newline by parsers
        continue;
    }
    if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if ((code >= 0xd800 && code <= 0xdfff) || code === 0xfffe || code === 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

const attr = (s: string): string => `"${xmlEscape(s, true)}"`;
const seconds = (ms: number | null): string => ((ms ?? 0) / 1000).toFixed(3);

/** Suites in the order the run named them, then any others the tests belong to. */
function suiteOrder(run: RunResults): string[] {
  const order = [...run.suites];
  for (const t of run.tests) if (!order.includes(t.suite)) order.push(t.suite);
  return order.filter((s) => run.tests.some((t) => t.suite === s));
}

function failureMessage(t: TestRecord): string {
  if (t.timeout !== null) return t.timeout ? `TIMEOUT after ${t.timeout}s` : 'TIMEOUT';
  return t.diagnostics.find((d) => d.trim() !== '')?.trim() ?? 'failed';
}

export function junitXml(run: RunResults): string {
  const all = counts(run.tests);
  const totalMs = run.tests.reduce((a, t) => a + (t.durationMs ?? 0), 0);
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="zcnic" tests="${run.tests.length}" failures="${all.failed}" errors="0" skipped="${all.skipped}" time="${seconds(run.durationMs || totalMs)}">`,
  );
  for (const suite of suiteOrder(run)) {
    const tests = run.tests.filter((t) => t.suite === suite);
    const c = counts(tests);
    const ms = tests.reduce((a, t) => a + (t.durationMs ?? 0), 0);
    out.push(
      `  <testsuite name=${attr(suite)} tests="${tests.length}" failures="${c.failed}" errors="0" skipped="${c.skipped}" time="${seconds(ms)}" timestamp=${attr(run.startedAt)}>`,
    );
    out.push('    <properties>');
    for (const [k, v] of [
      ['accel', run.accel],
      ['accelReason', run.accelReason],
      ['kernelRelease', run.kernelRelease],
    ] as const) {
      out.push(`      <property name=${attr(k)} value=${attr(v)}/>`);
    }
    out.push('    </properties>');
    for (const t of tests) {
      const open = `    <testcase name=${attr(t.name)} classname=${attr(`zcnic.${suite}`)} time="${seconds(t.durationMs)}"`;
      const body: string[] = [];
      const o = outcome(t);
      if (o === 'skip') body.push(`      <skipped message=${attr(t.skipReason ?? '')}/>`);
      if (o === 'fail' || o === 'timeout') {
        body.push(
          `      <failure message=${attr(failureMessage(t))} type=${attr(o === 'timeout' ? 'timeout' : 'failure')}>${xmlEscape(t.diagnostics.join('\n'))}</failure>`,
        );
      }
      // Metrics and counters help read a CI failure without the JSON at hand.
      const extra: string[] = [];
      if (o !== 'fail' && o !== 'timeout' && t.diagnostics.length > 0) extra.push(...t.diagnostics);
      for (const [k, v] of Object.entries(t.metrics)) extra.push(`metric ${k}=${v}`);
      if (t.deviceCounters !== null) extra.push(`device ${JSON.stringify(t.deviceCounters)}`);
      if (extra.length > 0) body.push(`      <system-out>${xmlEscape(extra.join('\n'))}</system-out>`);
      out.push(body.length === 0 ? `${open}/>` : `${open}>\n${body.join('\n')}\n    </testcase>`);
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>');
  return `${out.join('\n')}\n`;
}

// ------------------------------------------------------------------ Markdown

/** A table cell: one line, pipes escaped, no HTML. */
function mdCell(v: string | number | boolean | null): string {
  if (v === null) return '';
  return oneLine(String(v)).replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').trim();
}

function mdTable(columns: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null>>, rightAligned: ReadonlySet<number> = new Set()): string {
  const lines = [
    `| ${columns.map(mdCell).join(' | ')} |`,
    `| ${columns.map((_c, i) => (rightAligned.has(i) ? '---:' : '---')).join(' | ')} |`,
  ];
  for (const r of rows) lines.push(`| ${columns.map((_c, i) => mdCell(r[i] ?? null)).join(' | ')} |`);
  return lines.join('\n');
}

/** A fenced block whose fence no content line can close. */
function mdCode(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}text\n${text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}\n${fence}`;
}

export function markdown(run: RunResults, tables: readonly ExtraTable[] = []): string {
  const parts: string[] = ['# zcnic results', ''];
  parts.push(
    `**${summaryLine(run)}** in ${formatDuration(run.durationMs)}; accel \`${run.accel}\`${run.accelReason ? ` (${mdCell(run.accelReason)})` : ''}; kernel \`${run.kernelRelease}\`; started ${run.startedAt}`,
  );
  parts.push('');
  parts.push(
    mdTable(
      ['#', 'suite', 'test', 'result', 'time', 'device'],
      run.tests.map((t, i) => [i + 1, t.suite, t.name, resultLabel(t), formatDuration(t.durationMs), deviceSummary(t.deviceCounters)]),
      new Set([0, 4]),
    ),
  );
  const attempts = attemptLines(run);
  if (attempts.length > 0) parts.push('', '## Attempts', '', ...attempts.map((line) => `- ${mdCell(line)}`));
  for (const t of tables) {
    parts.push('', `## ${mdCell(t.title)}`, '', mdTable(t.columns, t.rows));
  }
  const failed = run.tests.filter((t) => !t.skip && !t.ok);
  if (failed.length > 0) {
    parts.push('', '## Failures');
    for (const t of failed) {
      parts.push('', `### ${mdCell(t.suite)} / ${mdCell(t.name)}: ${mdCell(resultLabel(t))}`);
      if (t.diagnostics.length > 0) parts.push('', mdCode(t.diagnostics.join('\n')));
    }
  }
  return `${parts.join('\n')}\n`;
}
