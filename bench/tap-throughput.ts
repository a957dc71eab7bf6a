/**
 * `make bench-tap`: guest TCP throughput through zcnic's tap port against QEMU's own virtio-net
 * on `-netdev tap`, in one run: the same Debian kernel, guest, iperf3 (from the host's root) and
 * netns peer (the host's stack and iperf3's server behind a tap holding 198.18.0.1); what
 * differs is the NIC's host side. Rounds alternate the NICs (zcnic, QEMU, zcnic verifying, ...)
 * so that whatever else loads the machine spreads over all of them; the table gives each one's
 * median and every sample, and the CPU other processes took meanwhile.
 *
 *   zcnic            the tap port as a NIC's host side: --tso and --guest-tso, verification off,
 *                    so GSO frames go to the tap whole (IFF_VNET_HDR), as QEMU hands them on
 *   zcnic-verifying  as `zcnic run` runs it: the device also checks every frame, and cuts each
 *                    GSO frame into wire frames to do so
 *   qemu             QEMU's virtio-net on a tap (vhost off: these machines have no vhost-net),
 *                    whose offloads QEMU negotiates itself (TSO and GUEST_TSO with a vnet tap)
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { contention, sampleCpu } from './cpu-usage.js';
import { fileStamp, writeAtomic } from './report.js';
import { IPERF3_SUITE } from '../harness/iperf3-server.js';
import { runSuites, type RunOptions } from '../harness/run.js';
import { integerOption, UsageError, withCommandContext } from '../cli/options.js';

const HELP = `Usage: make bench-tap [BENCH_ARGS="..."]   (node dist/bench/tap-throughput.js [options])

Guest TCP throughput (iperf3, guest to peer and back) through zcnic's tap port against QEMU's
own virtio-net on -netdev tap, rounds alternating, in one run. Writes
bench/results/<stamp>-tap-throughput.md and .json (and latest-tap-throughput.*). Exit status 1
when any run or test failed. Needs root (network namespaces, taps).

Options:
  --rounds N       rounds, each runs every NIC once (default 3)
  --seconds S      iperf3's time per direction (default 10)
  --kernel K       the guest kernel (zcnic run --kernel; default Debian 12's)
  --qemu Q         the QEMU (zcnic run --qemu; default the one on PATH)
  --nics LIST      which of zcnic,qemu,zcnic-verifying to run (default all three)
  --out DIR        where the results go (default bench/results)
  --verbose        stream the guest console and the device's log
  -h, --help       this text
`;

export const TAP_NICS = ['zcnic', 'qemu', 'zcnic-verifying'] as const;
export type TapNic = (typeof TAP_NICS)[number];
export const DIRECTIONS = ['tcp-tx', 'tcp-rx'] as const;
export type Direction = (typeof DIRECTIONS)[number];

/** What each NIC means in the run (RunOptions over the common ones). */
const NIC_RUNS: Record<TapNic, { readonly title: string; readonly options: Partial<RunOptions> }> = {
  zcnic: { title: "zcnic's tap port (TSO both ways, verification off: GSO whole to the tap)", options: { network: 'zcnic', tso: true, guestTso: true, append: 'zcnic.iperf_verify=off' } },
  'zcnic-verifying': { title: "zcnic's tap port, verifying (as zcnic run: every GSO frame cut into wire frames and checked)", options: { network: 'zcnic', tso: true, guestTso: true } },
  qemu: { title: "QEMU's virtio-net on -netdev tap (vhost off)", options: { network: 'qemu-tap' } },
};

export interface TapSample {
  readonly nic: TapNic;
  readonly round: number;
  readonly direction: Direction;
  /** The receiver's Gbit/s; null when the test did not pass. */
  readonly gbitPerSecond: number | null;
  readonly retransmits: number | null;
  readonly guestCpuPercent: number | null;
  /** The driver's notifications to the NIC's host side during the transfer (virtio_net's tx0_kicks, rx0_kicks). */
  readonly driverKicks: { readonly tx: number | null; readonly rx: number | null };
  /** The NIC's interrupts to the guest during the transfer (its vectors in /proc/interrupts). */
  readonly nicInterrupts: number | null;
  /** CPUs' worth of time other processes took during the boot it came from. */
  readonly otherCores: number;
  /** Why it has no figure (the test's verdict, or the run's problem). */
  readonly failure: string | null;
}

export interface TapRow {
  readonly direction: Direction;
  /** Median Gbit/s per NIC (null: no passing sample). */
  readonly median: Record<TapNic, number | null>;
  /** zcnic's median over QEMU's (null when either is missing). */
  readonly ratio: number | null;
  readonly verifyingRatio: number | null;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Each direction's medians and the ratios against QEMU's. */
export function tapRows(samples: readonly TapSample[]): TapRow[] {
  return DIRECTIONS.map((direction) => {
    const of = (nic: TapNic): number | null => median(samples.flatMap((s) => (s.nic === nic && s.direction === direction && s.gbitPerSecond !== null ? [s.gbitPerSecond] : [])));
    const m = { zcnic: of('zcnic'), qemu: of('qemu'), 'zcnic-verifying': of('zcnic-verifying') };
    const over = (a: number | null): number | null => (a === null || m.qemu === null || m.qemu === 0 ? null : a / m.qemu);
    return { direction, median: m, ratio: over(m.zcnic), verifyingRatio: over(m['zcnic-verifying']) };
  });
}

const fixed = (v: number | null, digits: number): string => (v === null ? '-' : v.toFixed(digits));

export function tapMarkdown(r: TapReport): string {
  const out = [
    `# Guest TCP throughput: zcnic's tap port vs QEMU's -netdev tap (${r.startedAt})`,
    '',
    `Guest: ${r.kernelRelease}, ${r.accel.toUpperCase()}, ${r.cpus} vCPU; ${r.qemu}. iperf3 ${r.seconds} s per direction, ${r.rounds} rounds alternating the NICs; medians of the receiver's Gbit/s.`,
    '',
    '| direction | zcnic | QEMU tap | zcnic / QEMU | zcnic verifying | verifying / QEMU |',
    '|---|---:|---:|---:|---:|---:|',
    ...r.rows.map((row) => `| ${row.direction === 'tcp-tx' ? 'guest → peer' : 'peer → guest'} | ${fixed(row.median.zcnic, 3)} | ${fixed(row.median.qemu, 3)} | ${fixed(row.ratio, 2)} | ${fixed(row.median['zcnic-verifying'], 3)} | ${fixed(row.verifyingRatio, 2)} |`),
    '',
    '## The NICs',
    '',
    ...TAP_NICS.map((nic) => `- **${nic}**: ${NIC_RUNS[nic].title}`),
    '',
    '## Every sample',
    '',
    '| round | NIC | direction | Gbit/s | retransmits | guest CPU % | driver kicks tx / rx | NIC interrupts | other processes (CPUs) | failure |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---|',
    ...r.samples.map((s) => `| ${s.round} | ${s.nic} | ${s.direction} | ${fixed(s.gbitPerSecond, 3)} | ${s.retransmits ?? '-'} | ${fixed(s.guestCpuPercent, 1)} | ${s.driverKicks.tx ?? '-'} / ${s.driverKicks.rx ?? '-'} | ${s.nicInterrupts ?? '-'} | ${s.otherCores.toFixed(2)} | ${s.failure ?? ''} |`),
    '',
  ];
  return out.join('\n');
}

export interface TapReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly kernelRelease: string;
  readonly accel: string;
  readonly cpus: number;
  readonly qemu: string;
  readonly seconds: number;
  readonly rounds: number;
  readonly rows: TapRow[];
  readonly samples: TapSample[];
  readonly failed: number;
}

/** A number metric of a test, or null. */
function metric(metrics: Record<string, unknown> | undefined, key: string): number | null {
  const v = metrics?.[key];
  return typeof v === 'number' ? v : null;
}

interface Parsed {
  readonly rounds: number;
  readonly seconds: number;
  readonly nics: readonly TapNic[];
  readonly kernel?: string;
  readonly qemu?: string;
  readonly out: string;
  readonly verbose: boolean;
  readonly help: boolean;
}

function parse(argv: string[]): Parsed {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '10' },
      kernel: { type: 'string' },
      qemu: { type: 'string' },
      nics: { type: 'string', default: TAP_NICS.join(',') },
      out: { type: 'string', default: 'bench/results' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const nics = values.nics.split(',').filter((n) => n !== '');
  for (const n of nics) if (!(TAP_NICS as readonly string[]).includes(n)) throw new UsageError(`--nics: ${n} is not one of ${TAP_NICS.join(', ')}`);
  return {
    rounds: integerOption('--rounds', values.rounds),
    seconds: integerOption('--seconds', values.seconds),
    nics: nics as TapNic[],
    kernel: values.kernel,
    qemu: values.qemu,
    out: values.out,
    verbose: values.verbose,
    help: values.help,
  };
}

/** One boot of the iperf3 suite on `nic`; its two samples, and what the run said of the guest. */
async function measure(p: Parsed, nic: TapNic, round: number, progress: (line: string) => void, signal: AbortSignal): Promise<{ samples: TapSample[]; guest: Omit<TapReport, 'startedAt' | 'finishedAt' | 'seconds' | 'rounds' | 'rows' | 'samples' | 'failed'> }> {
  const extra = NIC_RUNS[nic].options;
  const before = sampleCpu([process.pid], true);
  const outcome = await runSuites({
    suites: [IPERF3_SUITE],
    accel: 'auto',
    smp: 'auto',
    memMiB: 512,
    queues: 1,
    // iperf3's time, its connection set-up and the JSON's parse, with room to spare.
    testTimeoutSec: p.seconds + 30,
    kernel: p.kernel,
    qemu: p.qemu,
    keep: false,
    verbose: p.verbose,
    hostRoot: true,
    ...extra,
    append: [`zcnic.iperf_seconds=${p.seconds}`, extra.append ?? ''].join(' ').trim(),
    progress: (line) => progress(`  ${nic}: ${line}`),
    signal,
  });
  const after = sampleCpu([process.pid], true);
  const otherCores = before && after ? contention(before, after).otherCores : 0;
  const { results } = outcome;
  const samples = DIRECTIONS.map((direction): TapSample => {
    const test = results.tests.find((t) => t.name === direction);
    const passed = test !== undefined && test.ok && !test.skip;
    const failure = passed ? null : test ? `${test.skip ? `skipped: ${test.skipReason ?? ''}` : 'failed'}: ${test.diagnostics.at(-1) ?? ''}` : `not run: ${outcome.problem ?? 'the guest did not report it'}`;
    return {
      nic,
      round,
      direction,
      gbitPerSecond: passed ? metric(test?.metrics, 'gbitPerSecond') : null,
      retransmits: passed ? metric(test?.metrics, 'retransmits') : null,
      guestCpuPercent: passed ? metric(test?.metrics, 'guestCpuPercent') : null,
      driverKicks: { tx: metric(test?.metrics, 'driverTxKicks'), rx: metric(test?.metrics, 'driverRxKicks') },
      nicInterrupts: metric(test?.metrics, 'nicInterrupts'),
      otherCores,
      failure,
    };
  });
  return { samples, guest: { kernelRelease: results.kernelRelease, accel: results.accel, cpus: results.cpus, qemu: results.qemu } };
}

async function main(argv: string[]): Promise<number> {
  const p = parse(argv);
  if (p.help) {
    process.stdout.write(HELP);
    return 0;
  }
  return withCommandContext('the guest and the device', async ({ progress, signal }) => {
    const started = new Date();
    const samples: TapSample[] = [];
    let guest: Awaited<ReturnType<typeof measure>>['guest'] | null = null;
    for (let round = 1; round <= p.rounds && !signal.aborted; round++) {
      for (const nic of p.nics) {
        if (signal.aborted) break;
        progress(`round ${round}/${p.rounds}: ${nic}`);
        const m = await measure(p, nic, round, progress, signal);
        guest = m.guest;
        samples.push(...m.samples);
        for (const s of m.samples) progress(`  ${nic} ${s.direction}: ${s.gbitPerSecond === null ? `FAILED ${s.failure}` : `${s.gbitPerSecond.toFixed(3)} Gbit/s, ${s.retransmits} retransmits`} (other processes ${s.otherCores.toFixed(2)} CPUs)`);
      }
    }
    if (guest === null) return 130;
    const report: TapReport = {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      ...guest,
      seconds: p.seconds,
      rounds: p.rounds,
      rows: tapRows(samples),
      samples,
      failed: samples.filter((s) => s.failure !== null).length,
    };
    mkdirSync(p.out, { recursive: true });
    const base = join(p.out, `${fileStamp(started)}-tap-throughput`);
    const md = tapMarkdown(report);
    writeAtomic(`${base}.md`, md);
    writeAtomic(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeAtomic(join(p.out, 'latest-tap-throughput.md'), md);
    writeAtomic(join(p.out, 'latest-tap-throughput.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${md}\nwritten: ${base}.md, ${base}.json\n`);
    if (signal.aborted) return 130;
    return report.failed === 0 ? 0 : 1;
  });
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bench-tap: ${err instanceof UsageError ? err.message : (err as Error).stack ?? String(err)}\n`);
      process.exit(err instanceof UsageError ? 2 : 1);
    },
  );
}
