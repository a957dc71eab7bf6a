/**
 * The cache-line round trip between the bench's two CPUs (bench/cache-line-probe.c), measured
 * before and after the cases: at 64 bytes both backends are bound by how fast ring and buffer
 * lines move between the frontend's CPU and the backend's, and on a VM that moves with where the
 * hypervisor runs the two vCPUs. The figure is context for the ratios, not a verdict: a probe
 * that cannot run says why instead.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../../bench/cache-line-probe.c', import.meta.url));

/** The round trip in ns, or why it was not measured. */
export type CacheLineRoundTrip = { ns: number } | { error: string };

/** The probe's one line ("round trip ns 460.8"), or null when it is not that. */
export function parseRoundTrip(output: string): number | null {
  const m = /^round trip ns (\d+(?:\.\d+)?)$/m.exec(output);
  if (!m) return null;
  const ns = Number(m[1]);
  return Number.isFinite(ns) && ns > 0 ? ns : null;
}

/** Builds the probe once; measure() runs it. */
export class CacheLineProbe {
  private constructor(
    private readonly dir: string,
    private readonly binary: string | null,
    private readonly buildError: string,
  ) {}

  static async build(): Promise<CacheLineProbe> {
    const dir = mkdtempSync(join(tmpdir(), 'zcnic-cache-line-'));
    const binary = join(dir, 'cache-line-probe');
    const cc = await execa('clang', ['-O2', '-pthread', '-o', binary, SOURCE], { reject: false });
    if (cc.exitCode === 0) return new CacheLineProbe(dir, binary, '');
    return new CacheLineProbe(dir, null, `clang failed: ${firstLine(cc.stderr || cc.message)}`);
  }

  async measure(cpuA: number, cpuB: number): Promise<CacheLineRoundTrip> {
    if (this.binary === null) return { error: this.buildError };
    const run = await execa(this.binary, [String(cpuA), String(cpuB)], { reject: false, timeout: 30_000 });
    const ns = run.exitCode === 0 ? parseRoundTrip(run.stdout) : null;
    if (ns !== null) return { ns };
    return { error: `the probe said: ${firstLine(run.stderr || run.stdout || run.message)}` };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function firstLine(text: string | undefined): string {
  return (text ?? '').trim().split('\n')[0] ?? '';
}

/** "460 ns", or "not measured (why)". */
export function describeRoundTrip(r: CacheLineRoundTrip): string {
  return 'ns' in r ? `${Math.round(r.ns)} ns` : `not measured (${r.error})`;
}
