/**
 * Tables that summarise suites across their tests, for the report:
 * - rates per frame size and mode, like the table in seed 000's post, from the metrics
 *   `rate.mode`, `rate.size` and `rate.pps` (xdpsock, xsk-zc);
 * - seed 001's table, CPU per GiB and throughput with and without MSG_ZEROCOPY, with and
 *   without TSO, from the metrics `cpuSecondsPerGiB.tsoOn|tsoOff.msgZerocopy|copy` and
 *   `gbitPerSecond.*` (msg-zerocopy's cpu-per-gib);
 * - one table per suite of its headline metrics (what each seed scenario measures), so a reader
 *   sees each seed's figures side by side without opening the JSON.
 */
import type { ExtraTable, RunResults, TestRecord } from './report.js';

/** Metrics worth a column, in this order, when a suite's tests report them. */
const HEADLINE_METRICS = [
  'mode',
  'zeroCopyProven',
  'zeroCopyPayloadProven',
  'chainShapes',
  'framesVerified',
  'bytesVerified',
  'completions',
  'completionsCopied',
  'delivered',
  'drops',
  'pps',
  'deliveredPps',
];

/** The rows of seed 001's table: the NIC's TSO as the sends went out. */
const TSO_ROWS = [
  { key: 'tsoOn', title: 'TSO on' },
  { key: 'tsoOff', title: 'TSO off' },
] as const;

function cpuTable(tests: readonly TestRecord[]): ExtraTable | null {
  const rows: string[][] = [];
  for (const t of tests) {
    for (const { key, title } of TSO_ROWS) {
      const cell = (name: string): string => String(t.metrics[name.replace('*', key)] ?? '');
      if (t.metrics[`cpuSecondsPerGiB.${key}.msgZerocopy`] === undefined) continue;
      rows.push([title, ...['cpuSecondsPerGiB.*.msgZerocopy', 'cpuSecondsPerGiB.*.copy', 'cpuRatio.*', 'gbitPerSecond.*.msgZerocopy', 'gbitPerSecond.*.copy'].map(cell)]);
    }
  }
  if (rows.length === 0) return null;
  return { title: 'CPU per GiB sent and throughput, 64 KiB TCP sends (seed 001)', columns: ['NIC', 'MSG_ZEROCOPY CPU s/GiB', 'copy CPU s/GiB', 'ratio', 'MSG_ZEROCOPY Gbit/s', 'copy Gbit/s'], rows };
}

function rateTable(tests: readonly TestRecord[]): ExtraTable | null {
  const rated = tests.filter((t) => t.metrics['rate.pps'] !== undefined && t.metrics['rate.mode'] !== undefined && t.metrics['rate.size'] !== undefined);
  if (rated.length === 0) return null;
  const modes = [...new Set(rated.map((t) => String(t.metrics['rate.mode'])))];
  const sizes = [...new Set(rated.map((t) => Number(t.metrics['rate.size'])))].sort((a, b) => a - b);
  const rows = sizes.map((size) => [
    String(size),
    ...modes.map((mode) => {
      const t = rated.find((r) => Number(r.metrics['rate.size']) === size && String(r.metrics['rate.mode']) === mode);
      return t ? String(Math.round(Number(t.metrics['rate.pps']))) : '';
    }),
  ]);
  return { title: 'packets per second by frame size and mode', columns: ['frame size', ...modes], rows };
}

function headlineTable(suite: string, tests: readonly TestRecord[]): ExtraTable | null {
  const columns = HEADLINE_METRICS.filter((m) => tests.some((t) => t.metrics[m] !== undefined));
  if (columns.length === 0) return null;
  const rows = tests.filter((t) => columns.some((m) => t.metrics[m] !== undefined)).map((t) => [t.name, ...columns.map((m) => (t.metrics[m] === undefined ? '' : String(t.metrics[m])))]);
  return { title: `${suite}: headline metrics`, columns: ['test', ...columns], rows };
}

export function suiteTables(run: RunResults): ExtraTable[] {
  const tables: ExtraTable[] = [];
  const rates = rateTable(run.tests);
  if (rates) tables.push(rates);
  const cpu = cpuTable(run.tests);
  if (cpu) tables.push(cpu);
  const suites = [...new Set(run.tests.map((t) => t.suite))];
  for (const suite of suites) {
    const table = headlineTable(suite, run.tests.filter((t) => t.suite === suite));
    if (table) tables.push(table);
  }
  return tables;
}
