/**
 * The kernel's selftests on zcnic's NICs beside the same tests on QEMU's own virtio-net (the
 * reference): one row per test (nested results included), each side's verdict, the device's
 * counters on zcnic's side, and whether the difference matters. zcnic must pass every test the
 * reference passes; a test that passes there and fails here is a `regression`.
 */
import { deviceSummary, type DeviceCountersView, type RunResults, type TestRecord } from './report.js';
import type { FirstAttempt, RetriedRun } from './selftest-retry.js';

export interface SideVerdict {
  readonly verdict: 'pass' | 'fail' | 'skip' | 'absent';
  readonly skipReason: string | null;
  readonly durationMs: number | null;
  readonly diagnostics: readonly string[];
  /** When the verdict is a retry's (its file had a failure and ran again): the first attempt. */
  readonly firstAttempt: FirstAttempt | null;
}

/** One side's run: its results after any retry, and the first attempts the retry replaced. */
export type SideRun = Pick<RetriedRun, 'results' | 'firstAttempts'>;

export interface SideBySideRow {
  readonly name: string;
  readonly zcnic: SideVerdict;
  readonly reference: SideVerdict;
  /** The device's counters for the test, both NICs (remoteNic), zcnic's side only. */
  readonly deviceCounters: DeviceCountersView | null;
  /** The reference passed it and zcnic failed it (or never reported it). */
  readonly regression: boolean;
  /** The reference passed it and zcnic skipped it: a feature zcnic's device lacks, to explain. */
  readonly skippedOnlyHere: boolean;
}

function side(t: TestRecord | undefined, firstAttempt: FirstAttempt | null): SideVerdict {
  if (!t) return { verdict: 'absent', skipReason: null, durationMs: null, diagnostics: [], firstAttempt };
  const verdict = t.skip ? 'skip' : t.ok ? 'pass' : 'fail';
  return { verdict, skipReason: t.skipReason, durationMs: t.durationMs, diagnostics: verdict === 'fail' ? t.diagnostics.slice(-20) : [], firstAttempt };
}

/** A run without a retry, as sideBySide takes it. */
export function unretried(results: RunResults): SideRun {
  return { results, firstAttempts: new Map() };
}

export function sideBySide(zcnicRun: SideRun, referenceRun: SideRun | null): SideBySideRow[] {
  const zcnic = zcnicRun.results;
  const reference = referenceRun?.results ?? null;
  const byName = new Map((reference?.tests ?? []).map((t) => [t.name, t]));
  const names = [...zcnic.tests.map((t) => t.name), ...(reference?.tests ?? []).map((t) => t.name).filter((n) => !zcnic.tests.some((t) => t.name === n))];
  return names.map((name) => {
    const z = zcnic.tests.find((t) => t.name === name);
    const r = side(byName.get(name), referenceRun?.firstAttempts.get(name) ?? null);
    const zs = side(z, zcnicRun.firstAttempts.get(name) ?? null);
    const referencePassed = r.verdict === 'pass';
    return {
      name,
      zcnic: zs,
      reference: r,
      deviceCounters: z?.deviceCounters ?? null,
      regression: referencePassed && (zs.verdict === 'fail' || zs.verdict === 'absent'),
      skippedOnlyHere: referencePassed && zs.verdict === 'skip',
    };
  });
}

/** A verdict that a retry gave after a failure says so: the failure is part of the result. */
function verdictLabel(v: SideVerdict): string {
  const label = v.verdict === 'skip' ? `SKIP ${v.skipReason ?? ''}`.trim() : { pass: 'ok', fail: 'FAIL', absent: '-' }[v.verdict];
  return v.firstAttempt?.verdict === 'fail' ? `${label} (retry; failed first)` : label;
}

/** The result passed only when its file ran again (failed on the first attempt). */
export function passedOnRetry(v: SideVerdict): boolean {
  return v.verdict === 'pass' && v.firstAttempt?.verdict === 'fail';
}

/**
 * Totals over the rows, zcnic's side: a test zcnic never reported (the reference did) failed.
 * `passedOnRetry` is the part of `passed` that failed first.
 */
export function sideBySideCounts(rows: readonly SideBySideRow[]): { passed: number; failed: number; skipped: number; passedOnRetry: number } {
  const out = { passed: 0, failed: 0, skipped: 0, passedOnRetry: 0 };
  for (const r of rows) {
    if (passedOnRetry(r.zcnic)) out.passedOnRetry++;
    if (r.zcnic.verdict === 'pass') out.passed++;
    else if (r.zcnic.verdict === 'skip') out.skipped++;
    else out.failed++;
  }
  return out;
}

/** The terminal table: test, zcnic, reference, the device's counters. */
export function sideBySideTable(rows: readonly SideBySideRow[]): string {
  const lines = rows.map((r) => [r.name, verdictLabel(r.zcnic), verdictLabel(r.reference), deviceSummary(r.deviceCounters), r.regression ? '<< fails only on zcnic' : r.skippedOnlyHere ? '< skips only on zcnic' : '']);
  const header = ['test', 'zcnic', 'qemu virtio-net', 'device (NIC 1)', ''];
  const widths = header.map((h, i) => Math.min(60, Math.max(h.length, ...lines.map((l) => l[i]!.length))));
  const fmt = (cols: readonly string[]): string => cols.map((c, i) => (c.length > widths[i]! ? `${c.slice(0, widths[i]! - 1)}…` : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [fmt(header), ...lines.map(fmt)].join('\n');
}

export function sideBySideMarkdown(rows: readonly SideBySideRow[]): string {
  const cell = (v: SideVerdict): string => verdictLabel(v).replace(/\|/g, '\\|');
  return [
    '| test | zcnic | QEMU virtio-net | device (NIC 1) |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.name}${r.regression ? ' **(fails only on zcnic)**' : r.skippedOnlyHere ? ' (skips only on zcnic)' : ''} | ${cell(r.zcnic)} | ${cell(r.reference)} | ${deviceSummary(r.deviceCounters)} |`),
  ].join('\n');
}
