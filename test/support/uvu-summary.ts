/**
 * Reads what a uvu 0.5 run printed and counts its tests. uvu's closing block says
 * "Total / Passed / Skipped", but its Total leaves skipped tests out (test.skip and skipped
 * suites never enter it), so the failures are Total - Passed, and each of them also printed a
 * FAIL block. The two counts must agree: a summary that contradicts itself is an error, never a
 * number that could cancel another layer's failures.
 */
export interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

const ANSI_ESCAPE = /\x1b\[[0-9;]*m/g;
/** One per failed test: `   FAIL  "name"` (the label's padding is part of its coloured box). */
const FAIL_BLOCK = /^ {3}FAIL {2}"/gm;

export class UvuSummaryError extends Error {}

/** The layer's totals, or null while (or when) uvu has printed no closing block. */
export function parseUvuSummary(output: string): Totals | null {
  const plain = output.replace(ANSI_ESCAPE, '');
  const total = /^\s*Total:\s+(\d+)$/m.exec(plain);
  const passed = /^\s*Passed:\s+(\d+)$/m.exec(plain);
  const skipped = /^\s*Skipped:\s+(\d+)$/m.exec(plain);
  if (!total || !passed || !skipped) return null;
  const [t, p, s] = [Number(total[1]), Number(passed[1]), Number(skipped[1])];
  const failed = t - p;
  if (failed < 0) throw new UvuSummaryError(`uvu summary says Total ${t} but Passed ${p}: a negative failure count is impossible`);
  const failBlocks = plain.match(FAIL_BLOCK)?.length ?? 0;
  if (failBlocks !== failed) {
    throw new UvuSummaryError(`uvu summary says ${failed} failed (Total ${t} - Passed ${p}) but printed ${failBlocks} FAIL blocks`);
  }
  return { passed: p, failed, skipped: s };
}
