/**
 * `zcnic fuzz`: a hostile vhost-user frontend against a zcnic device, the one it starts itself
 * (default) or one already listening (--socket). Prints the report; exit status 1 when the
 * backend crashed or did not do what the rules say.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Genome } from '../fuzz/coverage.js';
import { fuzz, replayCase, type ReplaySource } from '../fuzz/fuzzer.js';
import { failed, formatReport } from '../fuzz/report.js';
import { ExternalTarget, SpawnedTarget, type Target } from '../fuzz/target.js';
import { integerOption, UsageError } from './options.js';

export const fuzzHelp = `Usage: zcnic fuzz [--socket PATH] [--spawn] [options]

Feeds a vhost-user backend hostile input from a frontend of our own: rings (looping and
over-long chains, addresses outside memory or wrapping 2^64, huge lengths, bad indirect tables,
avail index jumps, heads out of range, write-only transmit buffers, short headers, GSO types
the device does not offer, checksum offsets outside the frame, oversized
frames, hostile receive buffers, guest memory truncated mid-traffic) with valid traffic mixed
in, on split and packed rings, half the cases negotiating IN_ORDER (a transmit burst is then one
used element), and messages (sizes that lie, unknown requests, wrong fd counts, bad memory tables, bad
vring sizes, indexes and addresses, kick/call without or with the wrong fds, truncated
messages, byte storms). Every case checks the backend's counters and replies against the
rules; cases that show new behaviour are mutated.
Reconnects after every case; a valid frontend must move traffic every 50 cases and at the end.

Without --socket it starts 'zcnic device --port sink' itself (as with --spawn), restarts it after
a crash and counts a crash when it dies or its control socket stops answering.

Options:
  --socket PATH        the backend's vhost-user socket (with --spawn: where to create it)
  --control PATH       its control socket (default PATH.ctl; without one, counters are not checked)
  --spawn              start the backend as a child process (default without --socket)
  --seconds N          how long to fuzz (default 60)
  --cases N            stop after N cases (default: no limit)
  --seed S             the run's seed, an integer (default: from the clock; printed)
  --no-guide           no coverage guidance (generated cases only)
  --case N             run only case N of the run of --seed S (what a mismatch or crash prints
                       to replay it; a mutated case is replayed with --replay instead)
  --replay FILE        run only the case in FILE: a genome as a report prints it after 'case:'
  --json FILE          also write the report as JSON to FILE
  -v, --verbose        print the backend's log lines
  -h, --help           this text
`;

export async function fuzzCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      control: { type: 'string' },
      spawn: { type: 'boolean', default: false },
      seconds: { type: 'string', default: '60' },
      cases: { type: 'string' },
      seed: { type: 'string' },
      'no-guide': { type: 'boolean', default: false },
      case: { type: 'string' },
      replay: { type: 'string' },
      json: { type: 'string' },
      verbose: { type: 'boolean', short: 'v', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(fuzzHelp);
    return 0;
  }
  const seconds = integerOption('--seconds', values.seconds);
  const maxCases = values.cases === undefined ? undefined : integerOption('--cases', values.cases);
  if (values.case !== undefined && values.seed === undefined) throw new UsageError('--case N replays a case of a run: give the run\'s --seed too');
  if (values.case !== undefined && values.replay !== undefined) throw new UsageError('give --case N (with --seed) or --replay FILE, not both');
  const seed = values.seed === undefined ? Date.now() % 1_000_000_000 : integerOption('--seed', values.seed);
  let replay: ReplaySource | null = null;
  if (values.case !== undefined) replay = { seed, index: integerOption('--case', values.case), guided: !values['no-guide'] };
  if (values.replay !== undefined) replay = { genome: JSON.parse(readFileSync(values.replay, 'utf8')) as Genome };
  const spawn = values.spawn || values.socket === undefined;
  if (values.control !== undefined && spawn) throw new UsageError('--control goes with an external backend (--socket without --spawn)');
  const log = (line: string): void => void process.stderr.write(`zcnic fuzz: ${line}\n`);

  let target: Target;
  if (spawn) {
    const options: { socketPath?: string; onLog?: (line: string) => void } = {};
    if (values.socket !== undefined) options.socketPath = values.socket;
    if (values.verbose) options.onLog = (line) => process.stderr.write(`  backend: ${line}\n`);
    target = await SpawnedTarget.start(options);
  } else {
    target = await ExternalTarget.connect(values.socket!, values.control);
    if (!target.hasControl) log('no control socket: counters are not checked, only replies, disconnects and liveness');
  }
  // SIGINT/SIGTERM end the run after the current case; the report is printed as usual.
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (replay !== null) {
    try {
      const { planned, result } = await replayCase(target, replay);
      const what = 'genome' in replay ? values.replay! : `case ${replay.index} of seed ${replay.seed}`;
      process.stdout.write(`zcnic fuzz: ${what} (${planned.category}, ${result.name})\ncase: ${JSON.stringify(planned.genome)}\n`);
      process.stdout.write(`error kinds: ${result.kinds.join(', ') || 'none'}\n`);
      process.stdout.write(result.crash ? `crash: ${result.crash}\n${target.lastOutput()}\n` : 'crash: none\n');
      process.stdout.write(result.mismatches.length > 0 ? `mismatches:\n${result.mismatches.map((m) => `  ${m}\n`).join('')}` : 'mismatches: none\n');
      return result.crash || result.mismatches.length > 0 ? 1 : 0;
    } finally {
      await target.close();
    }
  }
  log(`seed ${seed}, ${seconds} s${maxCases !== undefined ? `, at most ${maxCases} cases` : ''}, backend ${spawn ? 'spawned' : 'external'} at ${target.socketPath}`);
  try {
    const report = await fuzz({ target, seed, seconds, maxCases, guided: !values['no-guide'], log, signal: abort.signal });
    process.stdout.write(formatReport(report));
    if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    return failed(report) ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await target.close();
  }
}
