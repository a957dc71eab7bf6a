/**
 * `make test`: runs every layer and ends with one plain line that totals them all,
 * "N passed, N failed, N skipped", which is what CI reads. Each layer's own output streams
 * through as it runs. A layer that dies without a summary counts as one failure.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

const HANG_AFTER_SUMMARY_MS = 15_000;
const dist = fileURLToPath(new URL('..', import.meta.url));
const uvu = fileURLToPath(new URL('../../node_modules/uvu/bin.js', import.meta.url));

/** Parses uvu's closing block (Total / Passed / Skipped). */
export function parseUvuSummary(output: string): Totals | null {
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
  const total = /Total:\s+(\d+)/.exec(plain);
  const passed = /Passed:\s+(\d+)/.exec(plain);
  const skipped = /Skipped:\s+(\d+)/.exec(plain);
  if (!total || !passed || !skipped) return null;
  const [t, p, s] = [Number(total[1]), Number(passed[1]), Number(skipped[1])];
  return { passed: p, skipped: s, failed: t - p - s };
}

/** The guest suites: `zcnic run`, counted from its results JSON. */
async function runGuestSuites(suites: readonly string[]): Promise<Totals> {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-test-'));
  const results = join(dir, 'results.json');
  try {
    const code = await runLayerProcess(`guest suites (${suites.join(', ')}) in QEMU`, [join(dist, 'cli/zcnic.js'), 'run', '--suite', suites.join(','), '--results', results]);
    let totals: Totals;
    try {
      const parsed = JSON.parse(readFileSync(results, 'utf8')) as Totals;
      totals = { passed: parsed.passed, failed: parsed.failed, skipped: parsed.skipped };
    } catch {
      process.stdout.write(`guest suites: no results (exit ${code}): counted as one failure\n`);
      return { passed: 0, failed: 1, skipped: 0 };
    }
    if (code !== 0 && totals.failed === 0) totals.failed = 1;
    return totals;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runLayerProcess(name: string, args: string[]): Promise<number | null> {
  process.stdout.write(`\n== ${name}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: dist, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', resolve);
  });
}

function runLayer(name: string, args: string[]): Promise<Totals> {
  process.stdout.write(`\n== ${name}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: dist, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    let hung = false;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
      // uvu does not force its exit: a test that leaked a handle (a worker, a socket) would keep
      // the layer alive forever after its summary. Give it a moment, then end it as a failure.
      if (parseUvuSummary(output) && !hung) {
        setTimeout(() => {
          if (child.exitCode === null && child.signalCode === null) {
            hung = true;
            process.stdout.write(`${name}: still running ${HANG_AFTER_SUMMARY_MS / 1000} s after its summary (a leaked handle): stopped, counted as one failure\n`);
            child.kill('SIGKILL');
          }
        }, HANG_AFTER_SUMMARY_MS).unref();
      }
    });
    child.on('close', (code) => {
      const totals = parseUvuSummary(output);
      if (!totals) {
        process.stdout.write(`${name}: no summary (exit ${code}): counted as one failure\n`);
        resolve({ passed: 0, failed: 1, skipped: 0 });
      } else {
        if ((code !== 0 || hung) && totals.failed === 0) totals.failed = 1;
        else if (hung) totals.failed++;
        resolve(totals);
      }
    });
  });
}

/** What `make test` boots and runs in the guest. */
const GUEST_SUITES = ['smoke', 'xdpsock', 'seeds'];

// Integration files each get a process of their own: they start real QEMU, DPDK and device
// processes, and one file's leftovers must not hold up (or break) the next.
const integrationFiles = readdirSync(join(dist, 'test/integration')).filter((f) => f.endsWith('.test.js')).sort();
const layers: Array<[string, string[]]> = [
  ['unit tests', [uvu, 'test', '\\.test\\.js$', '-i', 'integration']],
  ...integrationFiles.map((f): [string, string[]] => [`integration: ${f.replace('.test.js', '')} (real DPDK, QEMU, tshark)`, [uvu, 'test/integration', `^${f.replace(/\./g, '\\.')}$`]]),
];

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sum: Totals = { passed: 0, failed: 0, skipped: 0 };
  const totals = [];
  for (const [name, args] of layers) totals.push(await runLayer(name, args));
  totals.push(await runGuestSuites(GUEST_SUITES));
  for (const t of totals) {
    sum.passed += t.passed;
    sum.failed += t.failed;
    sum.skipped += t.skipped;
  }
  process.stdout.write(`\n${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped\n`);
  process.exitCode = sum.failed === 0 ? 0 : 1;
}
