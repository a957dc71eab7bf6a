/**
 * `make test`: runs every layer and ends with one plain line that totals them all,
 * "N passed, N failed, N skipped", which is what CI reads. Each layer's own output streams
 * through as it runs. A layer that dies without a summary counts as one failure.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Totals {
  passed: number;
  failed: number;
  skipped: number;
}

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

function runLayer(name: string, args: string[]): Promise<Totals> {
  process.stdout.write(`\n== ${name}\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: dist, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    });
    child.on('close', (code) => {
      const totals = parseUvuSummary(output);
      if (!totals) {
        process.stdout.write(`${name}: no summary (exit ${code}): counted as one failure\n`);
        resolve({ passed: 0, failed: 1, skipped: 0 });
      } else {
        if (code !== 0 && totals.failed === 0) totals.failed = 1;
        resolve(totals);
      }
    });
  });
}

const layers: Array<[string, string[]]> = [
  ['unit tests', [uvu, 'test', '\\.test\\.js$', '-i', 'integration']],
  ['integration tests (DPDK, QEMU, tshark)', [uvu, 'test/integration', '\\.test\\.js$']],
];

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sum: Totals = { passed: 0, failed: 0, skipped: 0 };
  for (const [name, args] of layers) {
    const t = await runLayer(name, args);
    sum.passed += t.passed;
    sum.failed += t.failed;
    sum.skipped += t.skipped;
  }
  process.stdout.write(`\n${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped\n`);
  process.exitCode = sum.failed === 0 ? 0 : 1;
}
