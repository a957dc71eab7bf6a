// Formats bench results as a Markdown table and JSON, and writes them to bench/results/.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { describeRoundTrip, type CacheLineRoundTrip } from './cache-line.js';

import type { Direction, Measurement, SinkWork } from './cases.js';
import type { HeapResult } from './heap.js';
import { perFrameWork } from './plan.js';

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
  /** The cache-line round trip between the frontend's and the backend's CPU (bench/cache-line.ts), before and after the cases. */
  cacheLine?: { cpus: [number, number]; before: CacheLineRoundTrip; after: CacheLineRoundTrip | null };
}

export type HeapEntry =
  | { status: 'ok'; result: HeapResult }
  | { status: 'error'; load: string; frameSize: number; error: string };

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  host: HostInfo;
  settings: {
    warmupSec: number;
    seconds: number;
    repeat: number;
    zcnicCpus: string | null;
    only: string | null;
    sinkWork: SinkWork;
    /** The frontend asked for packed rings (virtio-user packed_vq=1). */
    packedRing: boolean;
    /** The frontend took VIRTIO_F_IN_ORDER (virtio-user in_order=1), both backends offering it. */
    inOrder: boolean;
  };
  rows: Row[];
  /** One entry per heap-check load (--heap-loads); empty when the check did not run. */
  heap: HeapEntry[];
}

/**
 * Packet and bit rates of a window: Mpps, and Gbit/s of the bytes counted (testpmd counts the
 * Ethernet frame without CRC and without the virtio-net header).
 */
export function rates(packets: number, bytes: number, seconds: number): { mpps: number; gbps: number } {
  if (!(seconds > 0)) throw new RangeError(`rate over a window of ${seconds} s`);
  return { mpps: packets / seconds / 1e6, gbps: (bytes * 8) / seconds / 1e9 };
}

export function ratioOf(dpdk: Cell, zcnic: Cell): number | null {
  if (dpdk.status !== 'ok' || zcnic.status !== 'ok') return null;
  return zcnic.measurement.mpps / dpdk.measurement.mpps;
}

/** Above this much CPU taken by others (or steal) during its window, a measurement is disturbed. */
export const DISTURBED_CORES = 0.05;

export function disturbed(m: Pick<Measurement, 'contention'>): boolean {
  return m.contention !== null && m.contention.otherCores + m.contention.stealCores > DISTURBED_CORES;
}

/** Mpps and Gbit/s of a cell: two table columns; a disturbed measurement is marked `*`. */
export function cellColumns(c: Cell): [string, string] {
  switch (c.status) {
    case 'ok': {
      const mark = disturbed(c.measurement) ? '*' : '';
      return [`${c.measurement.mpps.toFixed(2)}${mark}`, `${c.measurement.gbps.toFixed(2)}${mark}`];
    }
    case 'not run':
      return ['not run', '-'];
    case 'error':
      return ['error', '-'];
  }
}

const CASE_LABEL: Record<Direction, string> = {
  transmitq: 'transmitq (virtio-user txonly -> backend)',
  receiveq: 'receiveq (backend -> virtio-user rxonly)',
};

/** The measured cell's own description of its work, else what the plan says it would do. */
function workText(c: Cell, direction: Direction, peer: 'dpdk' | 'zcnic', sinkWork: SinkWork): string {
  return c.status === 'ok' ? c.measurement.work : perFrameWork(direction, peer, sinkWork);
}

export function markdownTable(rows: readonly Row[], sinkWork: SinkWork = 'copy'): string {
  const lines = [
    '| case | frame (B) | DPDK backend, per frame | zcnic backend, per frame | DPDK Mpps | DPDK Gbit/s | zcnic Mpps | zcnic Gbit/s | zcnic/DPDK |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = r.ratio === null ? '-' : r.ratio.toFixed(3);
    const [dMpps, dGbps] = cellColumns(r.dpdk);
    const [zMpps, zGbps] = cellColumns(r.zcnic);
    lines.push(
      `| ${CASE_LABEL[r.direction]} | ${r.frameSize} | ${workText(r.dpdk, r.direction, 'dpdk', sinkWork)} | ` +
        `${workText(r.zcnic, r.direction, 'zcnic', sinkWork)} | ${dMpps} | ${dGbps} | ${zMpps} | ${zGbps} | ${ratio} |`,
    );
  }
  const marked = rows.some((r) => [r.dpdk, r.zcnic].some((c) => c.status === 'ok' && disturbed(c.measurement)));
  if (marked) {
    lines.push('', `\\* disturbed: other processes or steal took more than ${DISTURBED_CORES} CPU during that window (see the details).`);
  }
  return lines.join('\n');
}

const LOAD_TEXT: Record<HeapResult['load'], string> = {
  sink: 'sink (transmitq)',
  gen: 'gen (receiveq)',
  reflect: 'reflect (transmitq -> receiveq, frontend io loop)',
};

/** One line per heap-check load, for stdout and the report. */
export function heapLine(e: HeapEntry): string {
  if (e.status === 'error') return `${e.load} ${e.frameSize} B: error: ${e.error.split('\n')[0]}`;
  const h = e.result;
  const mibs = (n: number): string => (n / 1048576).toFixed(2);
  return (
    `${LOAD_TEXT[h.load]}, ${h.frameSize} B, ${h.seconds.toFixed(1)} s at ${h.mpps.toFixed(2)} Mpps ` +
    `(${(h.frames / 1e6).toFixed(1)} M frames${h.copied ? `, ${h.copied}` : ''}): ` +
    `datapath heap ${mibs(h.datapathBeforeBytes)} -> ${mibs(h.datapathAfterBytes)} MiB ` +
    `(min ${mibs(h.datapathMinBytes)}, max ${mibs(h.datapathMaxBytes)}), ` +
    `${h.collections} GCs (${h.collectionsPerSecond.toFixed(2)}/s, ${h.collectionsPerMillionFrames.toFixed(3)} per M frames); ` +
    `process heap ${mibs(h.beforeBytes)} -> ${mibs(h.afterBytes)} MiB (trend ${mibs(h.trendBytesPerMin)} MiB/min): ` +
    `${h.flat ? 'FLAT' : `NOT FLAT (${h.verdict})`}`
  );
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
      (rep.settings.repeat > 1 ? ` Best of ${rep.settings.repeat} runs.` : '') +
      ` Rings: ${rep.settings.packedRing ? 'packed (virtio-user packed_vq=1)' : 'split'}, ${rep.settings.inOrder ? 'IN_ORDER (virtio-user in_order=1)' : 'without IN_ORDER (virtio-user in_order=0)'}.`,
    '',
    'Each row says what each backend does per frame; the frontend does the same in both. Gbit/s',
    'counts the Ethernet frame bytes (no CRC, no virtio-net header), from the frontend\'s byte counter.',
    '',
    markdownTable(rep.rows, rep.settings.sinkWork),
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
  if (rep.heap.length > 0) {
    out.push('', '## zcnic heap under load', '');
    const first = rep.heap.find((e) => e.status === 'ok');
    if (first?.status === 'ok') {
      out.push(
        `Flat means no per-frame allocation: the datapath worker's heap grew by at most ` +
          `${mib(first.result.toleranceBytes)} and it collected garbage under ` +
          `${first.result.limits.collectionsPerSecond}/s and under ${first.result.limits.collectionsPerMillionFrames} ` +
          `times per million frames (one small object per frame costs several collections per million frames).`,
        '',
      );
    }
    for (const e of rep.heap) out.push(`- ${heapLine(e)}`);
  }
  const h = rep.host;
  out.push(
    '',
    '## Host',
    '',
    `${h.cpuModel}, ${h.cpus} CPUs; kernel ${h.kernel}; Node ${h.node}; DPDK ${h.dpdk}.`,
    ...(h.cacheLine ? [cacheLineSentence(h.cacheLine)] : []),
    `Finished ${rep.finishedAt}.`,
    '',
  );
  return out.join('\n');
}

/** ISO 8601 basic format (no ':'), safe in file names and CI artifact paths. */
/**
 * The cache-line round trip in the report's words: both backends' 64-byte rates follow it, and
 * on a VM it changes with where the hypervisor runs the two vCPUs.
 */
export function cacheLineSentence(c: NonNullable<HostInfo['cacheLine']>): string {
  const after = c.after ? `, ${describeRoundTrip(c.after)} after` : '';
  return `Cache-line round trip between CPU ${c.cpus[0]} (frontend) and CPU ${c.cpus[1]} (backend): ${describeRoundTrip(c.before)} before the cases${after}. The 64-byte rows of both backends move with it (ring and buffer lines cross between the two CPUs for every frame).`;
}

export function fileStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Writes a file whole or not at all (a reader never sees half a report). */
export function writeAtomic(path: string, text: string): void {
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
