/**
 * `zcnic run`: boots the guest on the zcnic device, runs suites, reports. `zcnic shell`: the same
 * setup with an interactive console instead of suites.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { AccelRequest } from '../harness/accel.js';
import { counts, formatResultsJson, junitXml, markdown, terminalTable, wantColor } from '../harness/report.js';
import { matrixAsOneRun, matrixHtml, matrixJson, matrixMarkdown, matrixTable, type KernelRun } from '../harness/matrix.js';
import { NEGATIVE_CONTROLS, runSuites, type NegativeControl, type RunOptions } from '../harness/run.js';
import { suiteConflict, withSuiteBuilds } from '../harness/suite-builds.js';
import { IPERF3_SUITE } from '../harness/iperf3-server.js';
import { suiteTables } from '../harness/suite-tables.js';
import { integerOption, UsageError, withCommandContext } from './options.js';
import { DEBIAN_KERNEL_PREFIX } from '../images/build.js';

export const DEFAULT_SUITES = ['smoke', 'xdpsock'];
/** The suite (guest/suites/command.sh) that runs `zcnic run -- CMD ARGS...` in the guest. */
const COMMAND_SUITE = 'command';
/** `--kernels all`: Debian 12's two kernels and the newest any suite serves. */
export const ALL_KERNELS = ['6.1', '6.12', 'latest'] as const;

const common = `  --accel auto|kvm|tcg KVM if a real boot under it works here (probed once, cached), else TCG
                       (default auto); kvm fails if KVM does not work; tcg never probes
  --smp N|auto         vCPUs (default auto: 2 under KVM; under TCG 1, or 2 for suites that need
                       a second CPU (cpumap, seeds): two TCG vCPUs now and then crash the guest
                       when the kernel patches its own text, see harness/run.ts guestCpus)
  --mem MB             guest memory (default 512)
  --queues N           NIC queue pairs (default 1)
  --kernel debian:X.Y  Debian's newest X.Y kernel (e.g. debian:6.1, debian:6.12, debian:7.3;
                       debian:latest = the newest served), fetched through private apt lists
                       (bookworm, bookworm-backports, trixie-backports, sid) under .cache/apt
  --kernel BZIMAGE     your own kernel instead of Debian's (with --modules)
  --modules DIR        its modules tree (lib/modules/RELEASE)
  --qemu PATH|debian:N a QEMU binary, or Debian's QEMU N for this release (debian:10: bookworm-
                       backports' 10.0), unpacked under .cache/qemu beside the system's; default:
                       qemu-system-x86_64 on PATH (Debian 12's 7.2)
  --xsk-zero-copy      a NIC that virtio_net can bind AF_XDP sockets to in zero-copy mode (6.11+
                       receive, 6.13+ transmit): iommu_platform=on (VIRTIO_F_ACCESS_PLATFORM)
                       and the device's --ring-reset (VIRTIO_F_RING_RESET; see zcnic device
                       --help for what that costs). Without it the zero-copy tests SKIP
  --tso                the device offers transmit segmentation (HOST_TSO4, HOST_TSO6, HOST_ECN,
                       HOST_USO, which QEMU does not pass on):
                       the guest sends TCP as GSO chains of up to 64 KiB, which the device checks
                       and segments for its ports (zcnic device --tso)
  --guest-tso          the device offers receive segmentation (GUEST_TSO4, GUEST_TSO6, GUEST_ECN):
                       the peer's tap hands TCP to the guest as GSO frames of up to 64 KiB; QEMU's
                       NIC gets ctrl_guest_offloads=off, so the guest cannot switch them off
                       behind the device's back (native XDP then refuses to attach)
  --packed-ring        the NIC's queues run on packed rings (VIRTIO_F_RING_PACKED: QEMU's
                       packed=on; the device offers it unless --split-ring-only); each test's
                       deviceCounters name the features and every queue's layout
  --qemu-nic           the NIC is QEMU's own virtio-net on a host tap (-netdev tap, no vhost) that
                       holds the netns peer's address, not zcnic's: the reference for suites
                       that ask the device nothing (iperf3; the others fail their device checks)
  --in-order           QEMU's NIC offers the guest VIRTIO_F_IN_ORDER (in_order=on: QEMU 10 has it,
                       7.2 not, so with --qemu debian:10; the device offers it unless
                       --no-in-order)
  --rootfs host        the guest's user space is this host's root file system (read-only over 9p,
                       a tmpfs overlay on top): host programs (python3, iproute2, ethtool, socat,
                       iperf3, ...) run on the guest's kernel and NICs; the shell is bash there
  --keep               keep the temporary folder (console log, device log, raw KTAP) and say where
  --verbose            stream the guest console and the device's log
  -h, --help           this text
`;

export const runHelp = `Usage: zcnic run [--suite NAME ...] [options]
       zcnic run [options] -- CMD [ARGS...]

Builds the guest image (cached), starts the zcnic device and QEMU, runs the suites in the guest
and reports each test with the device's counters for it. Exit status 0 only when nothing failed.
With -- CMD ARGS..., runs that host program in the guest instead of suites, on the guest's kernel
and the zcnic NIC (the guest's user space is then this host's root: --rootfs host); its output is
printed after the run, and the exit status is 0 only when it exited 0. The NIC is eth0 at
198.18.0.2/24 (ZCNIC_IFACE, ZCNIC_GUEST_IP in its environment).

Options:
  --suite NAME         suite to run (repeatable or comma-separated; default ${DEFAULT_SUITES.join(',')});
                       xskxceiver (AF_XDP's own test) and kernel-msg-zerocopy (the kernel's
                       msg_zerocopy between two zcnic NICs joined by the wire port; run it alone)
                       are built from the guest kernel's linux-source on first use (cached) and
                       run from the host's root: they imply --rootfs host; iperf3 (guest TCP
                       throughput to the netns peer, the host's iperf3 at both ends) implies it too
  --append ARGS        more kernel command line (e.g. "dyndbg=... initcall_debug"), after zcnic's
  --tests NAME,...     run only these tests of the suites (a name no suite has fails the run)
  --timeout S          per-test timeout in the guest, seconds (default 60)
  --results FILE       write the results as JSON
  --junit FILE         write JUnit XML
  --markdown FILE      write a Markdown report
  --kernels LIST       run the suites once per Debian kernel (e.g. 6.1,6.12,7.3 or latest; all =
                       ${ALL_KERNELS.join(',')}) and report them side by side: a column per
                       kernel, ≠ where kernels differ; JSON gets a "kernels" array
  --html FILE          write one self-contained page: the table and SVG charts (pps per frame
                       size per mode, one line per kernel; chain shapes per kernel)
  --negative-control KIND   inject a fault that the suites' checks must catch, so they fail:
                       corrupt-byte (smoke: one frame's byte flipped on the wire),
                       count-off-by-one (every device count a test reads is one larger)
${common}
A guest that dies of QEMU's TCG int3 fault before or between tests is booted once more; both
attempts are in the results (JSON "attempts", a line under the table).
`;

export const shellHelp = `Usage: zcnic shell [options]

Boots the guest on the zcnic device with an interactive shell on this terminal (exit it, or
'reboot -f', to stop: the VM has no ACPI, so poweroff would only halt it). The device runs in
sink mode with verification on.

Options:
${common}`;

function parse(argv: string[], withSuites: boolean) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      suite: { type: 'string', multiple: true },
      tests: { type: 'string' },
      append: { type: 'string' },
      accel: { type: 'string', default: 'auto' },
      smp: { type: 'string', default: 'auto' },
      mem: { type: 'string', default: '512' },
      queues: { type: 'string', default: '1' },
      kernel: { type: 'string' },
      modules: { type: 'string' },
      qemu: { type: 'string' },
      timeout: { type: 'string', default: '60' },
      results: { type: 'string' },
      junit: { type: 'string' },
      markdown: { type: 'string' },
      html: { type: 'string' },
      kernels: { type: 'string' },
      'negative-control': { type: 'string' },
      'xsk-zero-copy': { type: 'boolean', default: false },
      tso: { type: 'boolean', default: false },
      'guest-tso': { type: 'boolean', default: false },
      'packed-ring': { type: 'boolean', default: false },
      'qemu-nic': { type: 'boolean', default: false },
      'in-order': { type: 'boolean', default: false },
      rootfs: { type: 'string', default: 'initramfs' },
      keep: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  const command = positionals.length > 0 ? positionals : undefined;
  if (command && (!withSuites || values.suite || values.tests || values.kernels)) throw new UsageError('-- CMD runs a host program instead of suites: leave out --suite, --tests and --kernels (and it needs zcnic run)');
  if (!withSuites && (values.suite || values.tests || values.results || values.junit || values.markdown || values.html || values.kernels || values['negative-control'])) throw new UsageError('zcnic shell runs no suites');
  const negativeControl = values['negative-control'];
  if (negativeControl !== undefined && !(NEGATIVE_CONTROLS as readonly string[]).includes(negativeControl)) {
    throw new UsageError(`--negative-control must be one of ${NEGATIVE_CONTROLS.join(', ')}, not ${negativeControl}`);
  }
  if (!['initramfs', 'host'].includes(values.rootfs)) throw new UsageError(`--rootfs must be initramfs or host, not ${values.rootfs}`);
  if (!['auto', 'kvm', 'tcg'].includes(values.accel)) throw new UsageError(`--accel must be auto, kvm or tcg, not ${values.accel}`);
  const debianKernel = values.kernel?.startsWith(DEBIAN_KERNEL_PREFIX) ?? false;
  if (debianKernel && values.modules !== undefined) throw new UsageError(`--kernel ${values.kernel} brings its own modules: leave out --modules`);
  if (!debianKernel && (values.kernel === undefined) !== (values.modules === undefined)) throw new UsageError('--kernel BZIMAGE and --modules DIR go together');
  let kernels: string[] | undefined;
  if (values.kernels !== undefined) {
    if (values.kernel !== undefined || values.modules !== undefined) throw new UsageError('--kernels runs Debian kernels: leave out --kernel and --modules');
    kernels = values.kernels === 'all' ? [...ALL_KERNELS] : values.kernels.split(',').map((k) => k.trim().replace(DEBIAN_KERNEL_PREFIX, '')).filter((k) => k !== '');
    for (const k of kernels) if (!/^(?:\d+\.\d+|latest)$/.test(k)) throw new UsageError(`--kernels: ${k} is not a kernel series such as 6.12, 7.3 or latest`);
    if (kernels.length === 0) throw new UsageError('--kernels needs at least one kernel');
  }
  const suites = (values.suite ?? DEFAULT_SUITES).flatMap((s) => s.split(',')).filter((s) => s !== '');
  for (const s of suites) if (!/^[a-z0-9-]+$/.test(s)) throw new UsageError(`not a suite name: ${s}`);
  const conflict = suiteConflict(suites);
  if (conflict !== undefined) throw new UsageError(conflict);
  const tests = values.tests?.split(',').filter((t) => t !== '');
  for (const t of tests ?? []) if (!/^[a-z0-9-]+$/.test(t)) throw new UsageError(`not a test name: ${t}`);
  return { values, suites: command ? [COMMAND_SUITE] : suites, tests, kernels, command, negativeControl: negativeControl as NegativeControl | undefined };
}

async function execute(argv: string[], shell: boolean): Promise<number> {
  const { values, suites, tests, kernels, command, negativeControl } = parse(argv, !shell);
  if (values.help) {
    process.stdout.write(shell ? shellHelp : runHelp);
    return 0;
  }
  return withCommandContext('the guest and the device', async ({ progress, signal }) => {
    const options: RunOptions = {
      suites,
      tests,
      append: values.append,
      accel: values.accel as AccelRequest,
      smp: values.smp === 'auto' ? 'auto' : integerOption('--smp', values.smp),
      memMiB: integerOption('--mem', values.mem),
      queues: integerOption('--queues', values.queues),
      testTimeoutSec: integerOption('--timeout', values.timeout),
      kernel: values.kernel,
      modules: values.modules,
      qemu: values.qemu,
      keep: values.keep,
      verbose: values.verbose,
      shell,
      negativeControl,
      xskZeroCopy: values['xsk-zero-copy'],
      tso: values.tso,
      guestTso: values['guest-tso'],
      packedRing: values['packed-ring'],
      inOrder: values['in-order'],
      hostRoot: values.rootfs === 'host' || command !== undefined || suites.includes(IPERF3_SUITE),
      network: values['qemu-nic'] ? 'qemu-tap' : undefined,
      command,
      progress,
      signal,
    };
    if (kernels) return await runMatrix(kernels, options, values, signal);
    const outcome = await runSuites(await withSuiteBuilds(options));
    for (const dir of outcome.keptDirs) progress(`kept ${dir}`);
    if (signal.aborted) return 130;
    if (shell) return outcome.problem ? 1 : 0;
    if (values.html) writeFileSync(values.html, matrixHtml([{ kernel: values.kernel ?? 'default', results: outcome.results, problem: outcome.problem }]));
    const { results } = outcome;
    // The program's own output first: it is what the user asked to see.
    if (command) for (const t of results.tests) process.stdout.write(t.diagnostics.map((d) => `${d}\n`).join(''));
    process.stdout.write(`\n${terminalTable(results, { color: wantColor() })}\n`);
    const tables = suiteTables(results);
    for (const table of tables) process.stdout.write(`\n${table.title}\n${table.columns.join('\t')}\n${table.rows.map((r) => r.join('\t')).join('\n')}\n`);
    if (values.results) writeFileSync(values.results, formatResultsJson(results));
    if (values.junit) writeFileSync(values.junit, junitXml(results));
    if (values.markdown) writeFileSync(values.markdown, markdown(results, tables));
    const { failed } = counts(results.tests);
    if (outcome.problem) process.stderr.write(`zcnic run: ${outcome.problem}\n`);
    return failed === 0 && !outcome.problem ? 0 : 1;
  });
}

/** `--kernels`: the suites once per kernel, one report with a column per kernel. */
async function runMatrix(
  kernels: readonly string[],
  options: RunOptions,
  files: { results?: string; junit?: string; markdown?: string; html?: string },
  signal: AbortSignal,
): Promise<number> {
  const runs: KernelRun[] = [];
  for (const kernel of kernels) {
    options.progress(`== kernel ${kernel}`);
    const outcome = await runSuites(await withSuiteBuilds({ ...options, kernel: `${DEBIAN_KERNEL_PREFIX}${kernel}`, modules: undefined }));
    for (const dir of outcome.keptDirs) options.progress(`kept ${dir}`);
    if (outcome.problem) options.progress(`kernel ${kernel}: ${outcome.problem}`);
    runs.push({ kernel, results: outcome.results, problem: outcome.problem });
    if (signal.aborted) return 130;
  }
  process.stdout.write(`\n${matrixTable(runs)}`);
  if (files.results) writeFileSync(files.results, `${JSON.stringify(matrixJson(runs), null, 2)}\n`);
  if (files.markdown) writeFileSync(files.markdown, matrixMarkdown(runs));
  if (files.html) writeFileSync(files.html, matrixHtml(runs));
  // JUnit has no columns: one testsuite per kernel and suite.
  if (files.junit) writeFileSync(files.junit, junitXml(matrixAsOneRun(runs)));
  const json = matrixJson(runs);
  return json.failed === 0 && runs.every((r) => r.problem === null) ? 0 : 1;
}

export const runCommand = (argv: string[]): Promise<number> => execute(argv, false);
export const shellCommand = (argv: string[]): Promise<number> => execute(argv, true);
