/** What a fuzz run found, and how it is printed. */
import type { Genome } from './coverage.js';

export interface Finding {
  /** Index of the case in the run (0-based), for replaying with the same seed. */
  readonly index: number;
  readonly name: string;
  readonly category: string;
  readonly details: string[];
  readonly genome: Genome | null;
  /** The command that runs this case again on its own (fuzzer.ts replayCommand). */
  readonly replay?: string;
}

export interface Crash extends Finding {
  /** The backend's last output lines. */
  readonly output: string;
}

export interface FuzzReport {
  seed: number;
  /** Wall time of the run, in seconds. */
  seconds: number;
  cases: number;
  casesPerSecond: number;
  /** Cases per category (ring-tx, ring-rx, ring-chaos, ring-mutated, their packed-* twins, message, storm, message-mutated). */
  categories: Record<string, number>;
  /** Cases per generator. */
  generators: Record<string, number>;
  /** Unique error kinds the backend showed: ring:<counter> and protocol:<refusal reason>. */
  kinds: string[];
  /** Ring cases on packed rings (RING_PACKED negotiated; counted in `cases` too) and the error kinds they reached. */
  packed: { cases: number; kinds: string[] };
  /**
   * Ring cases that negotiated VIRTIO_F_IN_ORDER (the transmitq publishing a burst as one used
   * element), on split and packed rings, and the error kinds they reached.
   */
  inOrder: { split: number; packed: number; kinds: string[] };
  crashes: Crash[];
  /** Cases where the backend did not do what the rules say (an uncounted error, a lost frame, ...). */
  mismatches: Finding[];
  mismatchCount: number;
  /** Cases the fuzzer itself could not complete while the backend stayed alive. */
  harnessErrors: Finding[];
  traffic: { passed: number; failed: number };
  /** The backend's open fds and V8 heap (whole process) before and after the run, when known. */
  resources: { fdsBefore: number | null; fdsAfter: number | null; heapBefore: number | null; heapAfter: number | null };
  restarts: number;
  corpus: number;
  coverageFeatures: number;
}

export function emptyReport(seed: number): FuzzReport {
  return {
    seed,
    seconds: 0,
    cases: 0,
    casesPerSecond: 0,
    categories: {},
    generators: {},
    kinds: [],
    packed: { cases: 0, kinds: [] },
    inOrder: { split: 0, packed: 0, kinds: [] },
    crashes: [],
    mismatches: [],
    mismatchCount: 0,
    harnessErrors: [],
    traffic: { passed: 0, failed: 0 },
    resources: { fdsBefore: null, fdsAfter: null, heapBefore: null, heapAfter: null },
    restarts: 0,
    corpus: 0,
    coverageFeatures: 0,
  };
}

/** Whether the run is a failure (the fuzz command's exit status 1). */
export function failed(report: FuzzReport): boolean {
  return report.crashes.length > 0 || report.mismatchCount > 0 || report.traffic.failed > 0;
}

function table(rows: [string, number | string][]): string {
  const width = Math.max(...rows.map(([k]) => k.length), 8);
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n');
}

function describeFinding(f: Finding): string {
  const lines = [`  case ${f.index} (${f.category}, ${f.name}):`, ...f.details.map((d) => `    ${d}`)];
  if (f.replay) lines.push(`    replay: ${f.replay}`);
  if (f.genome) lines.push(`    case: ${JSON.stringify(f.genome)}`);
  return lines.join('\n');
}

export function formatReport(r: FuzzReport): string {
  const out: string[] = [];
  out.push(`zcnic fuzz: seed ${r.seed}, ${r.seconds.toFixed(1)} s, ${r.cases} cases (${r.casesPerSecond.toFixed(1)}/s)`);
  out.push('cases per category:');
  out.push(table(Object.entries(r.categories).sort()));
  const ring = r.kinds.filter((k) => k.startsWith('ring:'));
  const protocol = r.kinds.filter((k) => k.startsWith('protocol:'));
  out.push(`unique error kinds reached: ${r.kinds.length} (${ring.length} ring, ${protocol.length} protocol)`);
  for (const k of r.kinds) out.push(`  ${k}`);
  out.push(`packed rings: ${r.packed.cases} cases, ${r.packed.kinds.length} error kinds reached`);
  for (const k of r.packed.kinds) out.push(`  ${k}`);
  out.push(`IN_ORDER: ${r.inOrder.split + r.inOrder.packed} cases (${r.inOrder.split} split, ${r.inOrder.packed} packed), ${r.inOrder.kinds.length} error kinds reached`);
  for (const k of r.inOrder.kinds) out.push(`  ${k}`);
  out.push(`valid traffic checks: ${r.traffic.passed} passed, ${r.traffic.failed} failed`);
  const { fdsBefore, fdsAfter, heapBefore, heapAfter } = r.resources;
  if (fdsBefore !== null && fdsAfter !== null) out.push(`backend open fds: ${fdsBefore} before, ${fdsAfter} after`);
  if (heapBefore !== null && heapAfter !== null) out.push(`backend heap: ${(heapBefore / 2 ** 20).toFixed(1)} MiB before, ${(heapAfter / 2 ** 20).toFixed(1)} MiB after`);
  if (r.corpus > 0) out.push(`coverage: ${r.coverageFeatures} features, ${r.corpus} cases in the corpus`);
  if (r.restarts > 0) out.push(`backend restarts: ${r.restarts}`);
  out.push(`crashes: ${r.crashes.length}`);
  for (const c of r.crashes) out.push(describeFinding(c), c.output.replace(/^/gm, '    '));
  out.push(`mismatches: ${r.mismatchCount}`);
  for (const m of r.mismatches) out.push(describeFinding(m));
  if (r.harnessErrors.length > 0) {
    out.push(`fuzzer errors (backend alive): ${r.harnessErrors.length}`);
    for (const e of r.harnessErrors.slice(0, 10)) out.push(describeFinding(e));
  }
  return `${out.join('\n')}\n`;
}
