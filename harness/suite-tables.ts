/**
 * Tables that summarise a suite across its tests, for the report: e.g. the rate of each AF_XDP
 * mode per frame size, like the table in seed 000's post. Built from the metrics the guest's
 * tests print (`# zcnic-metric rate.pps=...`, `rate.mode=...`, `rate.size=...`).
 */
import type { ExtraTable, RunResults } from './report.js';

export function suiteTables(run: RunResults): ExtraTable[] {
  const rated = run.tests.filter((t) => t.metrics['rate.pps'] !== undefined && t.metrics['rate.mode'] !== undefined && t.metrics['rate.size'] !== undefined);
  if (rated.length === 0) return [];
  const modes = [...new Set(rated.map((t) => String(t.metrics['rate.mode'])))];
  const sizes = [...new Set(rated.map((t) => Number(t.metrics['rate.size'])))].sort((a, b) => a - b);
  const rows = sizes.map((size) => [
    String(size),
    ...modes.map((mode) => {
      const t = rated.find((r) => Number(r.metrics['rate.size']) === size && String(r.metrics['rate.mode']) === mode);
      return t ? String(Math.round(Number(t.metrics['rate.pps']))) : '';
    }),
  ]);
  return [{ title: 'packets per second by frame size and mode', columns: ['frame size', ...modes], rows }];
}
