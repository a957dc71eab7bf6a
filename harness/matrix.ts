/**
 * The kernel matrix: the same suites run once per kernel, reported side by side so that a
 * developer sees what a kernel change did to what reaches the NIC. One row per test, one column
 * per kernel with the verdict and the headline figures (chain shapes, zeroCopyProven,
 * completionsCopied, pps); a row is marked where the kernels differ in anything but speed.
 * Shapes: a terminal table, results JSON (`kernels`, each with its own tests), Markdown, and one
 * self-contained HTML page with SVG charts (pps per frame size per mode, one line per kernel;
 * chain shapes per kernel).
 */
import { counts, resultLabel, resultsJson, xmlEscape, type Counts, type ResultsJson, type RunResults, type TestRecord } from './report.js';

export interface KernelRun {
  /** What was asked for: `6.12`, `7.3`, `latest`. */
  readonly kernel: string;
  readonly results: RunResults;
  /** Why this kernel's run went wrong, or null. */
  readonly problem: string | null;
}

/** What one test showed on one kernel. */
export interface MatrixCell {
  readonly verdict: string;
  /** The figures that should not change between kernels unless the kernel changed its path. */
  readonly shape: string;
  /** Speed: expected to vary, never a difference by itself. */
  readonly pps: number | null;
}

export interface MatrixRow {
  readonly suite: string;
  readonly test: string;
  /** One per kernel, null where that kernel's run has no such test. */
  readonly cells: ReadonlyArray<MatrixCell | null>;
  readonly differs: boolean;
}

export interface MatrixJson extends Counts {
  kernels: Array<ResultsJson & { kernel: string; problem: string | null }>;
}

/** Chain-shape counters as "descriptorsPerChain.2=100000 indirect=100000 ...", zero ones left out. */
export function chainShapes(counters: object | null): Record<string, number> {
  const shapes = (counters as { chainShapes?: unknown } | null)?.chainShapes;
  const out: Record<string, number> = {};
  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'number') {
      if (value > 0) out[path] = value;
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
    }
  };
  walk(shapes, '');
  return out;
}

const SHAPE_METRICS = ['zeroCopyProven', 'zeroCopyPayloadProven', 'completionsCopied', 'mode'] as const;

function cellOf(t: TestRecord): MatrixCell {
  const parts = SHAPE_METRICS.filter((m) => t.metrics[m] !== undefined).map((m) => `${m}=${String(t.metrics[m])}`);
  const shapes = Object.entries(chainShapes(t.deviceCounters)).map(([k, v]) => `${k}=${v}`);
  const pps = t.metrics['rate.pps'] ?? t.metrics['pps'];
  return { verdict: resultLabel(t), shape: [...parts, ...shapes].join(' '), pps: typeof pps === 'number' ? pps : null };
}

export function matrixRows(runs: readonly KernelRun[]): MatrixRow[] {
  const keys: Array<[string, string]> = [];
  for (const run of runs) for (const t of run.results.tests) if (!keys.some(([s, n]) => s === t.suite && n === t.name)) keys.push([t.suite, t.name]);
  return keys.map(([suite, test]) => {
    const cells = runs.map((run) => {
      const t = run.results.tests.find((r) => r.suite === suite && r.name === test);
      return t ? cellOf(t) : null;
    });
    const seen = new Set(cells.map((c) => (c ? `${c.verdict}\n${c.shape}` : 'missing')));
    return { suite, test, cells, differs: runs.length > 1 && seen.size > 1 };
  });
}

function total(runs: readonly KernelRun[]): Counts {
  const c = { passed: 0, failed: 0, skipped: 0 };
  for (const run of runs) {
    const k = counts(run.results.tests);
    c.passed += k.passed;
    c.failed += k.failed;
    c.skipped += k.skipped;
  }
  return c;
}

/** The matrix as one run whose suites are named KERNEL/SUITE (for JUnit, which has no columns). */
export function matrixAsOneRun(runs: readonly KernelRun[]): RunResults {
  const first = runs[0]!.results;
  return {
    ...first,
    kernelRelease: runs.map((r) => r.results.kernelRelease).join(', '),
    durationMs: runs.reduce((a, r) => a + r.results.durationMs, 0),
    tests: runs.flatMap((r) => r.results.tests.map((t) => ({ ...t, suite: `${r.kernel}/${t.suite}` }))),
    attempts: runs.flatMap((r) => r.results.attempts),
  };
}

export function matrixJson(runs: readonly KernelRun[]): MatrixJson {
  return { ...total(runs), kernels: runs.map((run) => ({ kernel: run.kernel, problem: run.problem, ...resultsJson(run.results) })) };
}

function header(run: KernelRun): string {
  return `${run.kernel} (${run.results.kernelRelease})`;
}

function cellText(c: MatrixCell | null): string {
  if (!c) return '-';
  return [c.verdict, c.pps !== null ? `${Math.round(c.pps)} pps` : '', c.shape].filter((s) => s !== '').join(' ');
}

/** The terminal table: a row per test, a column per kernel; `≠` marks rows whose kernels differ. */
export function matrixTable(runs: readonly KernelRun[]): string {
  const rows = matrixRows(runs);
  const lines: string[] = [];
  const width = Math.max(4, ...rows.map((r) => `${r.suite}/${r.test}`.length));
  lines.push(`  ${'test'.padEnd(width)}  ${runs.map(header).join('  |  ')}`);
  for (const r of rows) lines.push(`${r.differs ? '≠' : ' '} ${`${r.suite}/${r.test}`.padEnd(width)}  ${r.cells.map(cellText).join('  |  ')}`);
  const c = total(runs);
  lines.push('');
  for (const run of runs) {
    const k = counts(run.results.tests);
    lines.push(`${header(run)}: ${k.passed} passed, ${k.failed} failed, ${k.skipped} skipped${run.problem ? `; ${run.problem}` : ''}`);
  }
  lines.push(`${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped over ${runs.length} kernel(s); ${rows.filter((r) => r.differs).length} test(s) differ between kernels (≠)`);
  return `${lines.join('\n')}\n`;
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function matrixMarkdown(runs: readonly KernelRun[]): string {
  const rows = matrixRows(runs);
  const c = total(runs);
  const out = ['# zcnic kernel matrix', '', `**${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped** over ${runs.length} kernel(s); ≠ marks tests whose kernels differ.`, ''];
  out.push(`| | test | ${runs.map((r) => mdCell(header(r))).join(' | ')} |`, `|---|---|${runs.map(() => '---').join('|')}|`);
  for (const r of rows) out.push(`| ${r.differs ? '≠' : ''} | ${mdCell(`${r.suite}/${r.test}`)} | ${r.cells.map((cell) => mdCell(cellText(cell))).join(' | ')} |`);
  return `${out.join('\n')}\n`;
}

// ------------------------------------------------------------------ HTML with SVG charts

/** One line per kernel of pps against frame size, per mode (metrics rate.mode, rate.size, rate.pps). */
export interface RateSeries {
  mode: string;
  lines: Array<{ kernel: string; points: Array<{ size: number; pps: number }> }>;
}

export function rateSeries(runs: readonly KernelRun[]): RateSeries[] {
  const modes = new Set<string>();
  for (const run of runs) for (const t of run.results.tests) if (t.metrics['rate.mode'] !== undefined) modes.add(String(t.metrics['rate.mode']));
  return [...modes].map((mode) => ({
    mode,
    lines: runs.map((run) => ({
      kernel: run.kernel,
      points: run.results.tests
        .filter((t) => String(t.metrics['rate.mode']) === mode && typeof t.metrics['rate.size'] === 'number' && typeof t.metrics['rate.pps'] === 'number')
        .map((t) => ({ size: t.metrics['rate.size'] as number, pps: t.metrics['rate.pps'] as number }))
        .sort((a, b) => a.size - b.size),
    })),
  }));
}

/** Chain-shape totals per kernel over all its tests. */
export function shapeTotals(runs: readonly KernelRun[]): Array<{ kernel: string; shapes: Record<string, number> }> {
  return runs.map((run) => {
    const shapes: Record<string, number> = {};
    for (const t of run.results.tests) for (const [k, v] of Object.entries(chainShapes(t.deviceCounters))) shapes[k] = (shapes[k] ?? 0) + v;
    return { kernel: run.kernel, shapes };
  });
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const CHART = { width: 560, height: 260, left: 70, right: 20, top: 20, bottom: 40 } as const;

function esc(s: string): string {
  return xmlEscape(s, true);
}

function rateChart(series: RateSeries): string {
  const points = series.lines.flatMap((l) => l.points);
  if (points.length === 0) return '';
  const sizes = [...new Set(points.map((p) => p.size))].sort((a, b) => a - b);
  const maxPps = Math.max(...points.map((p) => p.pps), 1);
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const x = (size: number): number => CHART.left + (sizes.length === 1 ? plotW / 2 : (sizes.indexOf(size) / (sizes.length - 1)) * plotW);
  const y = (pps: number): number => CHART.top + plotH - (pps / maxPps) * plotH;
  const parts: string[] = [];
  parts.push(`<svg class="rate" data-mode="${esc(series.mode)}" width="${CHART.width}" height="${CHART.height}" viewBox="0 0 ${CHART.width} ${CHART.height}" role="img">`);
  parts.push(`<title>pps per frame size, ${esc(series.mode)}</title>`);
  parts.push(`<line x1="${CHART.left}" y1="${CHART.top + plotH}" x2="${CHART.left + plotW}" y2="${CHART.top + plotH}" stroke="#444"/>`);
  parts.push(`<line x1="${CHART.left}" y1="${CHART.top}" x2="${CHART.left}" y2="${CHART.top + plotH}" stroke="#444"/>`);
  parts.push(`<text x="${CHART.left - 6}" y="${CHART.top + 4}" text-anchor="end" font-size="11">${Math.round(maxPps)}</text>`);
  for (const size of sizes) parts.push(`<text x="${x(size).toFixed(1)}" y="${CHART.top + plotH + 16}" text-anchor="middle" font-size="11">${size} B</text>`);
  series.lines.forEach((line, i) => {
    if (line.points.length === 0) return;
    const color = PALETTE[i % PALETTE.length]!;
    parts.push(`<g class="kernel" data-kernel="${esc(line.kernel)}">`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${line.points.map((p) => `${x(p.size).toFixed(1)},${y(p.pps).toFixed(1)}`).join(' ')}"/>`);
    for (const p of line.points) {
      parts.push(`<circle cx="${x(p.size).toFixed(1)}" cy="${y(p.pps).toFixed(1)}" r="3" fill="${color}" data-size="${p.size}" data-pps="${Math.round(p.pps)}"><title>${esc(line.kernel)}: ${p.size} B, ${Math.round(p.pps)} pps</title></circle>`);
    }
    parts.push(`<text x="${CHART.left + plotW - 4}" y="${CHART.top + 14 + 14 * i}" text-anchor="end" font-size="12" fill="${color}">${esc(line.kernel)}</text>`);
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function shapeChart(totals: ReturnType<typeof shapeTotals>): string {
  const keys = [...new Set(totals.flatMap((t) => Object.keys(t.shapes)))].sort();
  if (keys.length === 0) return '';
  const barH = 12;
  const rowH = barH * totals.length + 10;
  const labelW = 300;
  const plotW = 420;
  const height = CHART.top + rowH * keys.length + 10;
  const max = Math.max(1, ...totals.flatMap((t) => Object.values(t.shapes)));
  const parts: string[] = [`<svg class="shapes" width="${labelW + plotW + 120}" height="${height}" viewBox="0 0 ${labelW + plotW + 120} ${height}" role="img">`, '<title>chain shapes per kernel</title>'];
  keys.forEach((key, k) => {
    const top = CHART.top + k * rowH;
    parts.push(`<text x="${labelW - 6}" y="${top + barH}" text-anchor="end" font-size="11">${esc(key)}</text>`);
    totals.forEach((t, i) => {
      const value = t.shapes[key] ?? 0;
      const w = (value / max) * plotW;
      parts.push(
        `<rect x="${labelW}" y="${top + i * barH}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${PALETTE[i % PALETTE.length]}" data-kernel="${esc(t.kernel)}" data-shape="${esc(key)}" data-count="${value}"><title>${esc(t.kernel)}: ${esc(key)} = ${value}</title></rect>`,
      );
      parts.push(`<text x="${labelW + w + 4}" y="${top + i * barH + barH - 3}" font-size="10">${value}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** One page, no external assets: the matrix table and the charts. */
export function matrixHtml(runs: readonly KernelRun[]): string {
  const rows = matrixRows(runs);
  const c = total(runs);
  const cell = (m: MatrixCell | null): string => {
    if (!m) return '<td class="missing">-</td>';
    const cls = m.verdict === 'ok' ? 'ok' : m.verdict.startsWith('SKIP') ? 'skip' : 'fail';
    return `<td class="${cls}"><b>${esc(m.verdict)}</b>${m.pps !== null ? `<br>${Math.round(m.pps)} pps` : ''}${m.shape ? `<br><small>${esc(m.shape)}</small>` : ''}</td>`;
  };
  const legend = runs.map((r, i) => `<span style="color:${PALETTE[i % PALETTE.length]}">■ ${esc(header(r))}</span>`).join(' ');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>zcnic kernel matrix</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
td.ok{background:#eaf7ea}td.fail{background:#fbe9e9}td.skip{background:#fdf6e3}tr.differs th{background:#fff3c4}
small{color:#555}section{margin-top:2em}
</style></head><body>
<h1>zcnic kernel matrix</h1>
<p><b>${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped</b> over ${runs.length} kernel(s). Rows marked ≠ differ between kernels in verdict or shape (speed aside).</p>
<table><thead><tr><th>test</th>${runs.map((r) => `<th>${esc(header(r))}</th>`).join('')}</tr></thead><tbody>
${rows.map((r) => `<tr class="${r.differs ? 'differs' : ''}"><th>${r.differs ? '≠ ' : ''}${esc(`${r.suite}/${r.test}`)}</th>${r.cells.map(cell).join('')}</tr>`).join('\n')}
</tbody></table>
<section><h2>Packets per second by frame size</h2><p>${legend}</p>
${rateSeries(runs).map((s) => `<h3>${esc(s.mode)}</h3>\n${rateChart(s)}`).join('\n')}
</section>
<section><h2>Chain shapes per kernel</h2><p>${legend}</p>
${shapeChart(shapeTotals(runs))}
</section>
</body></html>
`;
}
