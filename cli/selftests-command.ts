/**
 * `zcnic selftests`: the kernel's own network selftests (tools/testing/selftests/drivers/net and
 * friends, built from Debian's linux-source for the guest's kernel) on two zcnic NICs joined by
 * the wire port, the way netdev's CI runs them on virtio, and the same tests on QEMU's own
 * virtio-net in the same run as the reference. zcnic must pass what the reference passes.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AccelRequest } from '../harness/accel.js';
import { counts, junitXml } from '../harness/report.js';
import type { RunResults } from '../harness/report.js';
import { runSuites, type RunOptions, type RunOutcome } from '../harness/run.js';
import { filesToRetry, mergeRetry, type RetriedRun } from '../harness/selftest-retry.js';
import { sideBySide, sideBySideCounts, sideBySideMarkdown, sideBySideTable, type SideBySideRow } from '../harness/side-by-side.js';
import { buildImage, DEBIAN_KERNEL_PREFIX, projectCacheDir } from '../images/build.js';
import { compareKernelConfig, mergeConfigs, parseKernelConfig, type ConfigComparison } from '../images/selftest-config.js';
import { ensureSelftestTools, type SelftestTools } from '../images/selftest-tools.js';
import { ensureSelftests, type SelftestsBuild } from '../images/selftests.js';
import { integerOption, UsageError, withCommandContext, type CommandContext } from './options.js';

/** The suite (guest/suites/kselftest.sh) that runs them in the guest. */
const SUITE = 'kselftest';
/** What runs without --targets: the collection netdev's CI runs on virtio first. */
const DEFAULT_RUN_TARGETS = ['drivers/net'];
/**
 * The guest's own limit per test, over the runner's: drivers/net's settings file says
 * timeout=360 and the runner enforces that itself; drivers/net/hw's says 0 (none), so this
 * one is all that stops a hung test there.
 */
const DEFAULT_TIMEOUT_SEC = 420;
/**
 * Queue pairs per NIC. netdev's CI gives its virtio NICs several (mq=on), but on our one-vCPU
 * guest two cost more than they give (7.3, measured): napi_threaded.py fails with two as with
 * one ("Check failed 1 < 2": virtio_net uses min(vCPUs, pairs) channels), and xdp.py's qstats
 * cases fail only with two, in the kernel (channels_set with XDP attached is EINVAL, and XDP_TX
 * on the extra transmitq is missing from tx-packets: the device's counters show all 1000 sent).
 */
const DEFAULT_QUEUES = 1;

export const selftestsHelp = `Usage: zcnic selftests [options]

Runs the kernel's own network selftests in a guest with two NICs back to back, the way netdev's
CI (NIPA) runs them on virtio: NETIF is the first NIC, the second is in netns ns-remote
(REMOTE_TYPE=netns, 192.0.3.1/.2 and 2001:db8:1::1/::2). Both NICs are zcnic devices joined by
the wire port (what one sends, the other receives, queue for queue). The guest's user space is
this host's root file system, read-only over 9p under a tmpfs overlay (python3, socat, iperf3:
make setup installs them), with newer ethtool and iproute2 than Debian 12's first on PATH (the
newest Debian serves that run on this host, unpacked under .cache/selftests/tools). The tests are built on this host from
Debian's linux-source-X.Y for the guest kernel (cached under .cache/selftests by source
version) and run through the kselftest runner, whose per-test timeouts (each target's settings
file) apply. Nested results are results of their own, each with the device's counters for its
time; a kernel oops or warning during a test fails it. A test file with a failed result runs
once more in a fresh boot, as netdev's CI retries: the table marks each verdict the retry gave
("retry; failed first"), the summary counts what passed only on the retry, and the JSON keeps
both runs whole.

Then the same guest and tests run on QEMU's own virtio-net on two taps bridged in a network
namespace (the reference), and the report shows both side by side: zcnic must pass whatever the
reference passes. Exit status 0 only when nothing failed on zcnic and no test passed on the
reference only.

Options:
  --kernel debian:X.Y  the guest kernel (default debian:latest)
  --targets T,...      selftest targets (default ${DEFAULT_RUN_TARGETS.join(',')}; also drivers/net/hw)
  --tests NAME,...     only these tests: TARGET:TEST as the runner names them, or TEST alone
  --no-reference       leave out the run on QEMU's virtio-net
  --queues N           queue pairs per NIC (default ${DEFAULT_QUEUES})
  --timeout S          the guest's own limit per test, over the runner's (default ${DEFAULT_TIMEOUT_SEC})
  --machine-slow auto|yes|no
                       KSFT_MACHINE_SLOW=yes for the tests, their own allowance for a slow
                       machine (so_txtime.py and gro.py's large cases then do not fail on
                       delivery times alone); auto: yes under TCG, no under KVM (default auto)
  --mem MB             guest memory (default 1024)
  --smp N|auto         vCPUs (default auto)
  --accel auto|kvm|tcg (default auto)
  --qemu PATH|debian:N the QEMU to run (default qemu-system-x86_64 on PATH)
  --results FILE       JSON: per test the zcnic and reference verdicts and the device's counters
  --junit FILE         JUnit XML of the zcnic run
  --markdown FILE      the side-by-side table in Markdown
  --keep               keep each run's temporary folder and say where
  --verbose            stream the guest console and the device's log
  -h, --help           this text
`;

type Parsed = ReturnType<typeof parse>;

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      kernel: { type: 'string', default: `${DEBIAN_KERNEL_PREFIX}latest` },
      targets: { type: 'string', default: DEFAULT_RUN_TARGETS.join(',') },
      tests: { type: 'string' },
      'no-reference': { type: 'boolean', default: false },
      queues: { type: 'string', default: String(DEFAULT_QUEUES) },
      timeout: { type: 'string', default: String(DEFAULT_TIMEOUT_SEC) },
      'machine-slow': { type: 'string', default: 'auto' },
      mem: { type: 'string', default: '1024' },
      smp: { type: 'string', default: 'auto' },
      accel: { type: 'string', default: 'auto' },
      qemu: { type: 'string' },
      results: { type: 'string' },
      junit: { type: 'string' },
      markdown: { type: 'string' },
      keep: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.kernel.startsWith(DEBIAN_KERNEL_PREFIX)) throw new UsageError("--kernel must be debian:X.Y (the tests are built from Debian's linux-source-X.Y)");
  if (!['auto', 'kvm', 'tcg'].includes(values.accel)) throw new UsageError(`--accel must be auto, kvm or tcg, not ${values.accel}`);
  if (!['auto', 'yes', 'no'].includes(values['machine-slow'])) throw new UsageError(`--machine-slow must be auto, yes or no, not ${values['machine-slow']}`);
  const targets = values.targets.split(',').filter((t) => t !== '');
  for (const t of targets) if (!/^[a-z0-9_/-]+$/.test(t)) throw new UsageError(`not a selftest target: ${t}`);
  if (targets.length === 0) throw new UsageError('--targets needs at least one target');
  const tests = values.tests?.split(',').filter((t) => t !== '');
  return {
    values,
    targets,
    tests,
    memMiB: integerOption('--mem', values.mem),
    queues: integerOption('--queues', values.queues),
    timeoutSec: integerOption('--timeout', values.timeout),
    smp: values.smp === 'auto' ? ('auto' as const) : integerOption('--smp', values.smp),
  };
}

/** TEST alone means TARGET:TEST of whichever chosen target has it; an unknown name is an error. */
export function resolveTestNames(wanted: readonly string[], available: readonly string[]): string[] {
  return wanted.map((w) => {
    if (available.includes(w)) return w;
    const matches = available.filter((a) => a.slice(a.indexOf(':') + 1) === w);
    if (matches.length === 1) return matches[0]!;
    throw new UsageError(matches.length > 1 ? `--tests ${w} is in several targets: ${matches.join(', ')}` : `--tests: no test ${w} in ${available.length ? 'the chosen targets' : 'the build (it installed none)'}`);
  });
}

/** The runner's names (TARGET:TEST) of the chosen targets' tests in a build. */
export function availableTests(build: SelftestsBuild, targets: readonly string[]): string[] {
  return build.manifest.results.filter((r) => targets.includes(r.target)).flatMap((r) => r.tests.map((t) => `${r.target}:${t}`));
}

/** What the targets' config files ask of the kernel in `moduleTree`, against its own config. */
function kernelConfigFor(build: SelftestsBuild, targets: readonly string[], moduleTree: string): ConfigComparison {
  // Not every target has one (drivers/net/hw has none).
  const configs = targets.map((t) => join(build.dir, t, 'config')).filter((f) => existsSync(f));
  const wanted = mergeConfigs(configs.map((f) => readFileSync(f, 'utf8')));
  return compareKernelConfig(wanted, parseKernelConfig(readFileSync(join(moduleTree, 'config'), 'utf8')));
}

interface Prepared {
  readonly build: SelftestsBuild;
  readonly tools: SelftestTools;
  readonly kernelConfig: ConfigComparison;
  readonly tests: string[] | undefined;
}

/** Step 1: the guest image (for the kernel's release) and the selftests built for that release. */
async function prepare(p: Parsed, ctx: CommandContext): Promise<Prepared> {
  const log = (line: string): void => ctx.progress(`  ${line}`);
  ctx.progress(`guest image for ${p.values.kernel}`);
  const image = await buildImage({ kernel: p.values.kernel, log });
  if (image.moduleTree === null) throw new UsageError(`the image for ${image.kernelRelease} has no module tree (is kmod's depmod installed? make setup installs it): the selftests load modules`);
  ctx.progress(`selftests for ${image.kernelRelease} (${p.targets.join(', ')})`);
  const build = await ensureSelftests({ kernelVersion: image.kernelRelease, targets: p.targets, cacheDir: projectCacheDir(), ro: { verbose: p.values.verbose, log } });
  ctx.progress(`selftests: ${build.cached ? 'cached' : 'built'} from linux-source ${build.version} in ${build.dir}`);
  const tools = await ensureSelftestTools(projectCacheDir(), { verbose: p.values.verbose, log });
  ctx.progress(`tools first on the tests' PATH: ${tools.packages.map((t) => `${t.name} ${t.version}`).join(', ')}`);
  const available = availableTests(build, p.targets);
  if (available.length === 0) throw new UsageError(`the build installed no tests for ${p.targets.join(', ')}`);
  const kernelConfig = kernelConfigFor(build, p.targets, image.moduleTree);
  if (kernelConfig.preload.length) ctx.progress(`modules loaded at boot (the tests' config wants them built in): ${kernelConfig.preload.join(', ')}`);
  for (const gap of kernelConfig.gaps) ctx.progress(`kernel config: ${gap} (tests that need it cannot pass on this kernel)`);
  return { build, tools, kernelConfig, tests: p.tests ? resolveTestNames(p.tests, available) : undefined };
}

/** One network's tests: the verdicts after the retry, both runs whole, the last problem. */
interface SideOutcome {
  readonly run: RetriedRun;
  readonly first: RunResults;
  readonly retry: RunResults | null;
  readonly problem: string | null;
}

/** One runSuites on a network, its kept folders and problem said. */
async function runOnce(network: RunOptions['network'], title: string, base: RunOptions, tests: RunOptions['tests'], ctx: CommandContext): Promise<RunOutcome> {
  const outcome = await runSuites({ ...base, network, tests });
  for (const dir of outcome.keptDirs) ctx.progress(`kept ${dir}`);
  if (outcome.problem) ctx.progress(`${title}: ${outcome.problem}`);
  return outcome;
}

/**
 * Step 2: the tests on one network, and each file with a failed result once more in a fresh
 * boot, as netdev's CI retries (a run that went wrong as a whole is not retried: its problem is
 * the verdict).
 */
async function runOn(network: 'zcnic-pair' | 'qemu-tap-pair', title: string, base: RunOptions, ctx: CommandContext): Promise<SideOutcome> {
  ctx.progress(`== ${title}`);
  const first = await runOnce(network, title, base, base.tests, ctx);
  const again = first.problem === null && !ctx.signal.aborted ? filesToRetry(first.results) : [];
  if (again.length === 0) return { run: { results: first.results, firstAttempts: new Map(), retried: [] }, first: first.results, retry: null, problem: first.problem };
  ctx.progress(`${title}: a failure in ${again.join(', ')}: running ${again.length === 1 ? 'it' : 'them'} once more in a fresh boot, as netdev's CI does (the first attempt stays in the results)`);
  const retry = await runOnce(network, title, base, again, ctx);
  return { run: mergeRetry(first.results, retry.results, again), first: first.results, retry: retry.results, problem: retry.problem };
}

/** Step 3: the table, the files, the last line; the exit status. */
function report(p: Parsed, { build, tools, kernelConfig }: Prepared, zcnic: SideOutcome, reference: SideOutcome | null): number {
  const rows: SideBySideRow[] = sideBySide(zcnic.run, reference?.run ?? null);
  process.stdout.write(`\n${sideBySideTable(rows)}\n`);
  const mine = sideBySideCounts(rows);
  const theirs = reference ? counts(reference.run.results.tests) : null;
  const regressions = rows.filter((r) => r.regression).map((r) => r.name);
  // KSFT_MACHINE_SLOW as the guest set it: auto is yes under TCG (guest/suites/kselftest.sh).
  const machineSlow = p.values['machine-slow'] === 'auto' ? zcnic.first.accel === 'tcg' : p.values['machine-slow'] === 'yes';
  const problems = { zcnic: zcnic.problem, reference: reference?.problem ?? null };
  if (p.values.results) {
    const summary = {
      ...mine,
      regressions,
      reference: theirs,
      problems,
      kernelRelease: zcnic.first.kernelRelease,
      accel: zcnic.first.accel,
      // KSFT_MACHINE_SLOW as asked; auto is yes under TCG (guest/suites/kselftest.sh).
      machineSlow,
      kernelConfig,
      selftests: { sourceVersion: build.version, targets: p.targets, dir: build.dir, notBuilt: build.manifest.results.flatMap((r) => r.failed.map((f) => `${r.target}/${f.name}`)), tools: tools.packages },
      tests: rows,
      retried: { zcnic: zcnic.run.retried, reference: reference?.run.retried ?? [] },
      // Each side's runs whole: the first, and the retry of the files that failed in it.
      runs: { zcnic: { first: zcnic.first, retry: zcnic.retry }, reference: reference ? { first: reference.first, retry: reference.retry } : null },
    };
    writeFileSync(p.values.results, `${JSON.stringify(summary, null, 2)}\n`);
  }
  if (p.values.junit) writeFileSync(p.values.junit, junitXml(zcnic.run.results));
  if (p.values.markdown) writeFileSync(p.values.markdown, `# Kernel selftests: zcnic and QEMU's virtio-net\n\n${sideBySideMarkdown(rows)}\n`);
  for (const [side, problem] of Object.entries(problems)) if (problem) process.stderr.write(`zcnic selftests (${side}): ${problem}\n`);
  const qemuLine = theirs ? `; QEMU virtio-net: ${theirs.passed} passed, ${theirs.failed} failed, ${theirs.skipped} skipped` : '';
  const regressionLine = regressions.length ? `; failing only on zcnic: ${regressions.join(', ')}` : '';
  if (machineSlow) process.stdout.write(`\nKSFT_MACHINE_SLOW=yes (${p.values['machine-slow'] === 'auto' ? 'auto: TCG' : '--machine-slow yes'}): the tests' allowance for a slow machine was on (--machine-slow no for the strict timing)\n`);
  const retryNote = mine.passedOnRetry ? ` (${mine.passedOnRetry} only on the retry)` : '';
  process.stdout.write(`\nzcnic: ${mine.passed} passed${retryNote}, ${mine.failed} failed, ${mine.skipped} skipped${qemuLine}${regressionLine}\n`);
  return mine.failed === 0 && regressions.length === 0 && zcnic.problem === null && reference?.problem == null ? 0 : 1;
}

export async function selftestsCommand(argv: string[]): Promise<number> {
  const p = parse(argv);
  if (p.values.help) {
    process.stdout.write(selftestsHelp);
    return 0;
  }
  return withCommandContext('the guests and the devices', async (ctx) => {
    const prepared = await prepare(p, ctx);
    const { build, tools, kernelConfig, tests } = prepared;
    const base: RunOptions = {
      suites: [SUITE],
      tests,
      append: `zcnic.ipv6=1 zcnic.machine_slow=${p.values['machine-slow']} zcnic.kselftest_dir=${build.dir} zcnic.kselftest_targets=${p.targets.join(',')} zcnic.tools_path=${tools.path.join(':')}${kernelConfig.preload.length ? ` zcnic.preload_modules=${kernelConfig.preload.join(',')}` : ''}`,
      accel: p.values.accel as AccelRequest,
      smp: p.smp,
      memMiB: p.memMiB,
      queues: p.queues,
      testTimeoutSec: p.timeoutSec,
      kernel: p.values.kernel,
      qemu: p.values.qemu,
      keep: p.values.keep,
      verbose: p.values.verbose,
      hostRoot: true,
      progress: ctx.progress,
      signal: ctx.signal,
    };
    const zcnic = await runOn('zcnic-pair', 'zcnic: two zcnic NICs joined by the wire port', base, ctx);
    if (ctx.signal.aborted) return 130;
    const reference = p.values['no-reference'] ? null : await runOn('qemu-tap-pair', "reference: QEMU's own virtio-net on two bridged taps", base, ctx);
    if (ctx.signal.aborted) return 130;
    return report(p, prepared, zcnic, reference);
  });
}
