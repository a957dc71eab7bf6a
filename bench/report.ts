// Formats bench results as a Markdown table and JSON, and writes them to bench/results/.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Direction, Measurement } from './cases.js';
import type { HeapResult } from './heap.js';

export type Cell =
  | { status: 'ok'; measurement: Measurement; runsMpps: number[] }
  | { status: 'not run'; reason: string }
  | { status: 'error'; error: string };

export interface Row {
  direction: Direction;
  frameSize: number;
  dpdk: Cell;
  zcnic: Cell;
  /** zcnic Mpps / DPDK Mpps, when both ran. */
  ratio: number | null;
}

export interface HostInfo {
  cpuModel: string;
  cpus: number;
  kernel: string;
  node: string;
  dpdk: string;
}

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  host: HostInfo;
  settings: { warmupSec: number; seconds: number; repeat: number; zcnicCpus: string | null; only: string | null };
  rows: Row[];
  heap: { status: 'ok'; result: HeapResult } | { status: 'error'; error: string } | null;
}

export function ratioOf(dpdk: Cell, zcnic: Cell): number | null {
  if (dpdk.status !== 'ok' || zcnic.status !== 'ok') return null;
  return zcnic.measurement.mpps / dpdk.measurement.mpps;
}

function cellText(c: Cell): string {
  switch (c.status) {
    case 'ok':
      return c.measurement.mpps.toFixed(2);
    case 'not run':
      return 'not run';
    case 'error':
      return 'error';
  }
}

const CASE_LABEL: Record<Direction, string> = {
  transmitq: 'transmitq (virtio-user txonly -> backend)',
  receiveq: 'receiveq (backend -> virtio-user rxonly)',
};

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    '| case | frame (B) | DPDK Mpps | zcnic Mpps | zcnic/DPDK |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = r.ratio === null ? '-' : r.ratio.toFixed(3);
    lines.push(
      `| ${CASE_LABEL[r.direction]} | ${r.frameSize} | ${cellText(r.dpdk)} | ${cellText(r.zcnic)} | ${ratio} |`,
    );
  }
  return lines.join('\n');
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(2)} MiB`;
}

export function markdownReport(rep: BenchReport): string {
  const out = [
    `# zcnic vs DPDK vhost backend, ${rep.startedAt}`,
    '',
    'Both backends face the same DPDK virtio-user frontend (dpdk-testpmd), one forwarding core',
    `each. Rates are the frontend's counter deltas over a ${rep.settings.seconds} s window after a`,
    `${rep.settings.warmupSec} s warm-up (TX packets for transmitq, RX packets for receiveq).` +
      (rep.settings.repeat > 1 ? ` Best of ${rep.settings.repeat} runs.` : ''),
    '',
    markdownTable(rep.rows),
    '',
    '## Details',
    '',
  ];
  for (const r of rep.rows) {
    for (const [peer, c] of [
      ['DPDK', r.dpdk],
      ['zcnic', r.zcnic],
    ] as const) {
      const head = `- ${r.direction} ${r.frameSize} B, ${peer}:`;
      if (c.status === 'not run') out.push(`${head} not run (${c.reason})`);
      else if (c.status === 'error') out.push(`${head} error: ${c.error.split('\n')[0]}`);
      else {
        const m = c.measurement;
        const cross = m.peerPackets === null ? 'n/a' : String(m.peerPackets);
        out.push(
          `${head} ${m.mpps.toFixed(3)} Mpps, ${m.gbps.toFixed(2)} Gbit/s; ${m.packets} packets in ` +
            `${m.seconds.toFixed(3)} s (backend counted ${cross}); final frontend ${m.finalFrontendPackets}, ` +
            `backend ${m.finalPeerPackets ?? 'n/a'}` +
            (m.contention
              ? `; other processes ${m.contention.otherCores.toFixed(2)} CPUs, steal ${m.contention.stealCores.toFixed(2)} CPUs`
              : ''),
        );
        if (c.runsMpps.length > 1) out.push(`  - all runs (Mpps): ${c.runsMpps.map((x) => x.toFixed(3)).join(', ')}`);
        for (const n of m.notes) out.push(`  - ${n}`);
      }
    }
  }
  if (rep.heap) {
    out.push('', '## zcnic heap under load', '');
    if (rep.heap.status === 'error') {
      out.push(`error: ${rep.heap.error.split('\n')[0]}`);
    } else {
      const h = rep.heap.result;
      out.push(
        `Sink, ${h.frameSize} B frames, ${h.seconds.toFixed(1)} s at ${h.mpps.toFixed(2)} Mpps: heap used ` +
          `${mib(h.beforeBytes)} before, ${mib(h.afterBytes)} after (min ${mib(h.minBytes)}, ` +
          `max ${mib(h.maxBytes)}, ${h.samples.length} samples; trend ${mib(h.trendBytesPerMin)}/min). ` +
          `Datapath worker: ${mib(h.datapathBeforeBytes)} before, ${mib(h.datapathAfterBytes)} after (min ${mib(h.datapathMinBytes)}, max ${mib(h.datapathMaxBytes)}), ` +
          `${h.collections} garbage collections (${h.collectionsPerSecond.toFixed(2)}/s). ` +
          `${h.flat ? 'FLAT' : 'NOT FLAT'} (datapath growth within ${mib(h.toleranceBytes)}, under 5 collections/s).`,
      );
    }
  }
  const h = rep.host;
  out.push(
    '',
    '## Host',
    '',
    `${h.cpuModel}, ${h.cpus} CPUs; kernel ${h.kernel}; Node ${h.node}; DPDK ${h.dpdk}.`,
    `Finished ${rep.finishedAt}.`,
    '',
  );
  return out.join('\n');
}

/** ISO 8601 basic format (no ':'), safe in file names and CI artifact paths. */
export function fileStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Writes <stamp>.md/.json and latest.md/.json; returns the two timestamped paths. */
export function writeReport(dir: string, rep: BenchReport, started: Date): { md: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = fileStamp(started);
  const md = markdownReport(rep);
  const json = `${JSON.stringify(rep, null, 2)}\n`;
  const paths = { md: join(dir, `${stamp}.md`), json: join(dir, `${stamp}.json`) };
  writeAtomic(paths.md, md);
  writeAtomic(paths.json, json);
  writeAtomic(join(dir, 'latest.md'), md);
  writeAtomic(join(dir, 'latest.json'), json);
  return paths;
}
