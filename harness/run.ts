/**
 * One test run, start to end: the guest image (built or cached) and the accelerator (probed),
 * once; then a boot of the guest (an attempt): the zcnic device (a child process, so a device
 * crash is reported instead of taking the harness down, and the harness's own event loop never
 * delays the datapath), the netns peer when a suite needs one, QEMU, and the guest's KTAP port.
 * Each test's verdict is the guest's (which checks the device's counters itself through
 * zcnic_ctl); the harness adds the device's counters for that test to the record. Every child
 * is stopped by its PID and the temporary folder removed, on success, failure, timeout or Ctrl-C.
 *
 * A second attempt happens only when the guest died of an emulator fault before or between
 * tests (see EMULATOR_FAULT); every attempt is kept in the results.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { resolveAccel, type AccelChoice, type AccelRequest } from './accel.js';
import { ConsoleLines } from './console-lines.js';
import type { ZcnicDevice } from './device-process.js';
import { connectGuestChannel, type GuestChannel } from './guest-channel.js';
import { GuestNics, NIC_MACS, type Network } from './guest-nics.js';
import type { PeerUnavailable } from './guest-requests.js';
import type { KtapSummary } from './ktap.js';
import { PEER_ADDRESS, PeerNetns } from './peer-netns.js';
import { IPERF3_PORT, IPERF3_SUITE, Iperf3Server } from './iperf3-server.js';
import { launchQemu } from './qemu.js';
import { msixUnderTcg, resolveQemu, type QemuBinary } from './qemu-binary.js';
import type { AttemptRecord, RunResults } from './report.js';
import { XSKXCEIVER_SUITE } from './suite-builds.js';
import { TestRecorder } from './test-recorder.js';
import { buildImage, projectCacheDir, type BuiltImage } from '../images/build.js';

/**
 * Faults a run can inject to show its own checks failing (make test's negative controls). The
 * guest sees them as ZCNIC_FAULT: `corrupt-byte` flips one byte of one smoke frame, which the
 * device's verification must catch; `count-off-by-one` makes every device count a guest test
 * reads one larger, which each reconciliation must catch.
 */
export const NEGATIVE_CONTROLS = ['corrupt-byte', 'count-off-by-one'] as const;
export type NegativeControl = (typeof NEGATIVE_CONTROLS)[number];

export interface RunOptions {
  readonly suites: readonly string[];
  /** Only these tests of the suites (by name); all when absent. */
  readonly tests?: readonly string[];
  /** More kernel command line (zcnic run --append), after zcnic's own. */
  readonly append?: string;
  readonly accel: AccelRequest;
  /** vCPUs, or 'auto' (guestCpus). */
  readonly smp: number | 'auto';
  readonly memMiB: number;
  readonly queues: number;
  /** Per-test timeout in the guest, seconds. */
  readonly testTimeoutSec: number;
  readonly kernel?: string;
  readonly modules?: string;
  /** `--qemu`: a QEMU binary, `debian:MAJOR`, or undefined for the one on PATH (harness/qemu-binary.ts). */
  readonly qemu?: string;
  /** Keep the temporary folder (sockets, console log, raw KTAP, device log). */
  readonly keep: boolean;
  /** Stream the guest console and the device log. */
  readonly verbose: boolean;
  /** Boot into a shell instead of running suites (zcnic shell). */
  readonly shell?: boolean;
  /** A fault to inject, so that the checks it targets must fail. */
  readonly negativeControl?: NegativeControl;
  /**
   * The NIC offers what virtio_net's AF_XDP zero-copy needs: VIRTIO_F_ACCESS_PLATFORM (QEMU's
   * iommu_platform=on) and VIRTIO_F_RING_RESET (the device's --ring-reset).
   */
  readonly xskZeroCopy?: boolean;
  /** The device offers transmit segmentation (HOST_TSO4/TSO6/ECN: zcnic device --tso). */
  readonly tso?: boolean;
  /**
   * The device offers receive segmentation (GUEST_TSO4/TSO6/ECN: zcnic device --guest-tso), and
   * QEMU's NIC gets ctrl_guest_offloads=off (see QemuOptions.fixedGuestOffloads).
   */
  readonly guestTso?: boolean;
  /** The NIC's queues run on packed rings (QEMU's packed=on; see QemuOptions.packedRing). */
  readonly packedRing?: boolean;
  /** The NIC offers the guest IN_ORDER (QEMU's in_order=on; see QemuOptions.inOrder). */
  readonly inOrder?: boolean;
  /** The guest's NICs (harness/guest-nics.ts); default one zcnic NIC. */
  readonly network?: Network;
  /** The guest's user space is the host's root file system (zcnic.rootfs=host, over 9p). */
  readonly hostRoot?: boolean;
  /** A host program and its arguments for the `command` suite (zcnic run -- CMD ARGS...). */
  readonly command?: readonly string[];
  /** Progress lines for a person. */
  readonly progress: (line: string) => void;
  /** Aborts the run (Ctrl-C). */
  readonly signal: AbortSignal;
}

export interface RunOutcome {
  readonly results: RunResults;
  /** The last attempt's KTAP summary. */
  readonly summary: KtapSummary;
  /** Why the last attempt went wrong (QEMU died, timed out, the device crashed), or null. */
  readonly problem: string | null;
  /** The temporary folders kept (--keep), one per attempt. */
  readonly keptDirs: string[];
}

/**
 * QEMU 7.2's multi-threaded TCG now and then runs a stale int3 that the kernel's text patching
 * (jump labels, static calls) had already removed, and the guest oopses in int3. That is the
 * emulator's fault, not the tested code's, so a guest that died of it before or between tests
 * is booted once more.
 */
const EMULATOR_FAULT = { consoleText: 'Oops: int3', description: 'the guest oopsed in int3 under multi-threaded TCG (a QEMU 7.2 emulation fault)' } as const;
/** Boots per run: the second only after an emulator fault before or between tests. */
const MAX_ATTEMPTS = 2;
/** Time to the first KTAP line before the run is declared stuck. */
const BOOT_TIMEOUT_MS = 120_000;
/** Suites (or suite groups, expanded in the guest) that need the netns peer (harness/peer-netns.ts). */
const PEER_SUITES: readonly string[] = ['msg-zerocopy', 'zcrx', 'seeds', IPERF3_SUITE];
/** The device's tap for the peer, unique per run. */
const PEER_TAP = `zcp${process.pid % 1_000_000}`;
/** Per-test slack over the guest's own timeout (the guest kills a hung test itself). */
const TEST_SLACK_MS = 30_000;
const CONSOLE_TAIL_LINES = 20;
/** The MTU of the suites' one NIC (QEMU's host_mtu). */
const STANDARD_MTU = 1500;

/** Suites whose tests nest the kernel's own KTAP (guest/suites/kselftest.sh, xskxceiver.sh: harness/nested-results.ts). */
const NESTING_SUITES: readonly string[] = ['kselftest', XSKXCEIVER_SUITE];

/** Suites whose tests need a second vCPU (cpumap redirects to CPU 1); `seeds` includes cpumap. */
const TWO_CPU_SUITES: readonly string[] = ['cpumap', 'seeds'];

/**
 * `--smp auto`: 2 vCPUs under KVM; under TCG 1, unless a suite needs 2. Multi-threaded TCG with
 * 2 vCPUs crashes the guest now and then when the kernel patches its own text on one vCPU while
 * the other runs it (static keys flip whenever an XDP program comes or goes): "Oops: int3",
 * or, seen in a clean-clone make test on 2026-12-02, a fault in kmem_cache_alloc_node() with a
 * garbage EFLAGS right after a patched jump label, in the middle of an xdpsock test. One vCPU
 * has no second vCPU to race, and on these 2-core machines it also leaves the device a core.
 */
export function guestCpus(smp: number | 'auto', accel: 'kvm' | 'tcg', suites: readonly string[]): number {
  if (smp !== 'auto') return smp;
  if (accel === 'kvm') return 2;
  return suites.some((s) => TWO_CPU_SUITES.includes(s)) ? 2 : 1;
}

interface PreparedGuest {
  readonly image: BuiltImage;
  readonly accel: AccelChoice;
  readonly qemu: QemuBinary;
  /** vCPUs, resolved (guestCpus). */
  readonly cpus: number;
}

/** One boot's outcome. */
interface Attempt {
  readonly record: AttemptRecord;
  readonly summary: KtapSummary;
  /** A test failed in this attempt (then it is never retried). */
  readonly anyTestFailed: boolean;
  readonly keptDir: string | null;
}

/** What one boot started, so that cleanup stops exactly that. */
interface Children {
  nics: GuestNics | null;
  peer: PeerNetns | null;
  iperf3: Iperf3Server | null;
  qemu: ResultPromise | null;
  channel: GuestChannel | null;
}

function entryPoint(): string {
  return new URL('../cli/zcnic.js', import.meta.url).pathname;
}

export async function runSuites(o: RunOptions): Promise<RunOutcome> {
  const started = Date.now();
  const guest = await prepareGuest(o);
  const attempts: Attempt[] = [];
  for (let n = 1; ; n++) {
    const attempt = await bootAndRun(o, guest, n);
    attempts.push(attempt);
    if (n >= MAX_ATTEMPTS || o.signal.aborted || !diedBetweenTestsOfEmulatorFault(attempt)) break;
    attempt.record.retried = true;
    o.progress(`attempt ${n}: ${attempt.record.emulatorFault}, before or between tests; booting once more (attempt ${n} stays in the results)`);
  }
  const last = attempts.at(-1)!;
  const results: RunResults = {
    accel: guest.accel.accel,
    accelReason: guest.accel.reason,
    kernelRelease: guest.image.kernelRelease,
    qemu: guest.qemu.description,
    cpus: guest.cpus,
    bootSeconds: last.record.bootSeconds,
    suites: [...o.suites],
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    tests: last.record.tests,
    attempts: attempts.map((a) => a.record),
  };
  return { results, summary: last.summary, problem: last.record.problem, keptDirs: attempts.flatMap((a) => (a.keptDir ? [a.keptDir] : [])) };
}

/**
 * A retry may only repeat what nothing had judged yet: the guest died of the emulator fault
 * while no test was running and none had failed.
 */
export function diedBetweenTestsOfEmulatorFault(a: { readonly record: Pick<AttemptRecord, 'problem' | 'emulatorFault'>; readonly anyTestFailed: boolean }): boolean {
  return a.record.problem !== null && a.record.emulatorFault !== null && !a.anyTestFailed;
}

async function prepareGuest(o: RunOptions): Promise<PreparedGuest> {
  o.progress('building the guest image');
  const image = await buildImage({ kernel: o.kernel, modules: o.modules, log: (line) => o.progress(`  ${line}`) });
  const kernelKey = (JSON.parse(readFileSync(image.manifest, 'utf8')) as { kernelKey?: string }).kernelKey ?? image.cacheKey;
  const qemu = await resolveQemu(o.qemu, projectCacheDir(), { log: (line) => o.progress(`  ${line}`) });
  o.progress(`QEMU: ${qemu.description}`);
  const accel = await resolveAccel({ requested: o.accel, kernel: image.kernel, initramfs: image.initramfs, guestKernelKey: kernelKey, qemu: qemu.path, firmwareDirs: qemu.firmwareDirs });
  o.progress(`accelerator: ${accel.accel} (${accel.reason})`);
  return { image, accel, qemu, cpus: guestCpus(o.smp, accel.accel, o.suites) };
}

/** One boot: device, peer, QEMU, the guest's tests; everything it started is stopped again. */
async function bootAndRun(o: RunOptions, guest: PreparedGuest, attempt: number): Promise<Attempt> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-run-'));
  const paths = { vhost: join(dir, 'vhost.sock'), ktap: join(dir, 'ktap.sock'), console: join(dir, 'console.log'), deviceLog: join(dir, 'device.log') };
  const children: Children = { nics: null, peer: null, iperf3: null, qemu: null, channel: null };
  const deviceLog: string[] = [];
  const logLine = (source: string) => (line: string): void => {
    deviceLog.push(source === 'device' ? line : `${source}: ${line}`);
    if (o.verbose) o.progress(`${source}: ${line}`);
  };
  try {
    const nics = await GuestNics.start({
      network: o.network ?? 'zcnic',
      entry: entryPoint(),
      socket: (i) => (i === 0 ? paths.vhost : join(dir, `vhost${i}.sock`)),
      queues: o.queues,
      ringReset: o.xskZeroCopy === true,
      accessPlatform: o.xskZeroCopy === true,
      tso: o.tso === true,
      guestTso: o.guestTso === true,
      onOutput: logLine,
    });
    children.nics = nics;
    const peer = nics.primary ? await startPeerIfNeeded(o, nics.primary, join(dir, 'peer.ctl'), logLine('peer')) : undefined;
    if (peer instanceof PeerNetns) children.peer = peer;
    children.iperf3 = await startIperf3IfNeeded(o, peer instanceof PeerNetns ? peer.namespace : nics.netns?.namespace, logLine('iperf3'));
    const recorder = new TestRecorder({ device: nics.recorded, begin: () => nics.begin(), peer, progress: o.progress, nestingSuites: NESTING_SUITES });

    o.progress(`booting ${guest.image.kernelRelease} under ${guest.accel.accel.toUpperCase()} (${guest.cpus} vCPU${guest.cpus > 1 ? 's' : ''}, ${o.memMiB} MiB)${attempt > 1 ? `, attempt ${attempt}` : ''}`);
    const bootStart = Date.now();
    let bootSeconds: number | null = null;
    const ktapSeen = { at: Date.now() };
    const commandFile = o.command ? writeCommandScript(dir, o.command) : null;
    const vm = launchGuest(o, guest, nics, paths, commandFile);
    children.qemu = vm;
    const console = followConsole(o, vm);
    const ended = new AbortController();
    void vm.then(() => ended.abort());
    o.signal.addEventListener('abort', () => ended.abort(), { once: true });
    children.channel = await connectGuestChannel({
      path: paths.ktap,
      signal: ended.signal,
      onLine: (line) => {
        ktapSeen.at = Date.now();
        if (!recorder.line(line)) return;
        bootSeconds = (Date.now() - bootStart) / 1000;
        o.progress(`  first KTAP line after ${bootSeconds.toFixed(1)} s`);
      },
      onControl: (request) => recorder.answer(request),
    });

    const ending = await waitForGuestEnd(o, vm, nics, recorder, bootStart, ktapSeen);
    // A run that ended on a problem (a hung guest, the deadline, Ctrl-C) has a QEMU still
    // running, whose KTAP port would never close: stop it, then read what the port still had.
    if (ending !== null) await stopQemu(vm);
    await children.channel.closed.catch(() => undefined);
    console.end();
    const final = await recorder.finish((summary) => ending ?? unfinishedRun(o, recorder, summary), console.tail(CONSOLE_TAIL_LINES));
    const problem = final.problem;
    const emulatorFault = problem !== null && guest.accel.accel === 'tcg' && console.includes(EMULATOR_FAULT.consoleText) ? EMULATOR_FAULT.description : null;
    if (problem !== null && console.lines.length > 0 && !o.verbose) o.progress(`last console lines:\n${console.tail(15)}`);
    if (o.keep) {
      writeFileSync(paths.console, console.lines.join('\n'));
      writeFileSync(paths.deviceLog, deviceLog.join('\n'));
      writeFileSync(join(dir, 'ktap.raw'), children.channel.raw());
    }
    return {
      record: { attempt, startedAt: new Date(started).toISOString(), durationMs: Date.now() - started, bootSeconds, problem, emulatorFault, retried: false, tests: final.tests },
      summary: final.summary,
      anyTestFailed: final.anyTestFailed,
      keptDir: o.keep ? dir : null,
    };
  } finally {
    await stopChildren(children);
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Suites that talk to a real peer get one: the device's tap in a namespace of its own. A peer
 * that cannot be set up (no root, no ip) is a broken setup: the tests that need it fail with
 * this reason.
 */
async function startPeerIfNeeded(o: RunOptions, device: ZcnicDevice, control: string, onOutput: (line: string) => void): Promise<PeerNetns | PeerUnavailable | undefined> {
  if (!o.suites.some((suite) => PEER_SUITES.includes(suite))) return undefined;
  o.progress(`peer: tap ${PEER_TAP} in a network namespace, ${PEER_ADDRESS}`);
  try {
    await device.request({ cmd: 'setPort', port: 'tap', tap: PEER_TAP });
    await device.request({ cmd: 'setPort', port: 'sink' });
    return await PeerNetns.start({ tap: PEER_TAP, control, onOutput });
  } catch (err) {
    const unavailable = (err as Error).message;
    o.progress(`peer: could not be set up, the tests that need it will fail: ${unavailable}`);
    return { unavailable };
  }
}

/**
 * The iperf3 suite's far end: iperf3's server in the peer's namespace, zcnic's tap peer or the
 * reference's tap (qemu-tap). A server that cannot start is a broken setup, and the run fails.
 */
async function startIperf3IfNeeded(o: RunOptions, namespace: string | undefined, onOutput: (line: string) => void): Promise<Iperf3Server | null> {
  if (!o.suites.includes(IPERF3_SUITE)) return null;
  if (namespace === undefined) throw new Error(`the ${IPERF3_SUITE} suite needs a peer: zcnic's tap port or QEMU's tap (network qemu-tap), and this run has none`);
  o.progress(`iperf3: server at ${PEER_ADDRESS} in ${namespace}`);
  return Iperf3Server.start(['ip', 'netns', 'exec', namespace], PEER_ADDRESS, onOutput);
}

/** Quotes a word for sh: single quotes, each ' as '\''. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, "'\\''")}'`;
}

/** The script the guest's `command` suite runs from the host's root: the command, then its status. */
function writeCommandScript(dir: string, command: readonly string[]): string {
  const file = join(dir, 'command.sh');
  writeFileSync(file, `cd /root 2>/dev/null\n${command.map(shellQuote).join(' ')}\necho $? >/tmp/zcnic-command.status\n`);
  return file;
}

/**
 * The guest mounts its own /tmp and /run over the host's: a checkout there (a CI's clean clone)
 * would hide its .cache, whose selftests, tools and builds the guest runs (guest/init
 * zcnic.host_paths). Its real path: the guest does not follow the host's symlinks to it.
 */
function hostPathsWord(): string {
  const dir = projectCacheDir();
  const cache = existsSync(dir) ? realpathSync(dir) : dir;
  return /^\/(tmp|run)\//.test(cache) ? `zcnic.host_paths=${cache}` : '';
}

function launchGuest(o: RunOptions, guest: PreparedGuest, nics: GuestNics, paths: { ktap: string }, commandFile: string | null): ResultPromise {
  const moduleTree = o.hostRoot === true ? guest.image.moduleTree : null;
  const cmdline = [
    // The suites may need to know how fast their guest runs (kselftest.sh: KSFT_MACHINE_SLOW).
    `zcnic.accel=${guest.accel.accel}`,
    commandFile !== null ? `zcnic.command_file=${commandFile}` : '',
    o.shell ? 'zcnic.shell=1' : '',
    o.hostRoot === true ? 'zcnic.rootfs=host' : '',
    o.hostRoot === true ? hostPathsWord() : '',
    moduleTree !== null ? `zcnic.module_tree=${moduleTree}` : '',
    // The suites that run on either NIC (iperf3) ask the device nothing on QEMU's own.
    nics.devices.length === 0 ? 'zcnic.nic=qemu' : '',
    o.suites.includes(IPERF3_SUITE) ? `zcnic.iperf_port=${IPERF3_PORT}` : '',
    nics.backends.length > 1 ? `zcnic.local_mac=${NIC_MACS[0]} zcnic.remote_mac=${NIC_MACS[1]}` : '',
    o.negativeControl ? `zcnic.fault=${o.negativeControl}` : '',
    o.tests !== undefined && o.tests.length > 0 ? `zcnic.only=${o.tests.join(',')}` : '',
    o.append?.trim() ?? '',
  ]
    .filter((w) => w !== '')
    .join(' ');
  return launchQemu(
    {
      kernel: guest.image.kernel,
      initramfs: guest.image.initramfs,
      accel: guest.accel.accel,
      smp: guest.cpus,
      memMiB: o.memMiB,
      nics: nics.backends,
      queues: o.queues,
      hostRoot: o.hostRoot === true,
      ktapPath: paths.ktap,
      ktapChardev: 'socket',
      suite: o.suites,
      testTimeoutSec: o.testTimeoutSec,
      appendCmdline: cmdline === '' ? undefined : cmdline,
      firmwareDirs: guest.qemu.firmwareDirs,
      msixUnderTcg: msixUnderTcg(guest.qemu),
      accessPlatform: o.xskZeroCopy === true,
      fixedGuestOffloads: o.guestTso === true,
      packedRing: o.packedRing === true,
      inOrder: o.inOrder === true,
      // The suites' one NIC has the standard MTU, which the device learns (NET_SET_MTU); the
      // selftests' NIC pairs have none, as netdev's CI gives them, nor has xskxceiver's NIC:
      // it sets MTU 1518 for every test and 9000 for its multi-buffer ones.
      hostMtu: nics.backends.length > 1 || o.suites.includes(XSKXCEIVER_SUITE) ? undefined : STANDARD_MTU,
    },
    { qemu: guest.qemu.path, prefix: nics.netns?.exec, execa: o.shell ? { stdio: 'inherit' } : { stdin: 'ignore', buffer: { stdout: false, stderr: true } } },
  );
}

/** The guest console, line by line (streamed with --verbose); empty for a shell on the terminal. */
function followConsole(o: RunOptions, vm: ResultPromise): ConsoleLines {
  const console = new ConsoleLines();
  const show = o.verbose ? (line: string) => o.progress(`guest: ${line}`) : undefined;
  vm.stdout?.setEncoding('utf8');
  vm.stdout?.on('data', (chunk: string) => console.push(chunk, show));
  vm.stdout?.on('end', () => console.end(show));
  return console;
}

/** Waits for the guest to end the VM, the deadline, the device to die, or Ctrl-C; the problem, if any. */
async function waitForGuestEnd(
  o: RunOptions,
  vm: ResultPromise,
  nics: GuestNics,
  recorder: TestRecorder,
  bootStart: number,
  ktapSeen: { readonly at: number },
): Promise<string | null> {
  const timers: NodeJS.Timeout[] = [];
  timers.push(
    setInterval(() => {
      if (!recorder.started) o.progress(`  booting… ${((Date.now() - bootStart) / 1000).toFixed(0)} s`);
    }, 5000),
  );
  const deadline = (): number => bootStart + BOOT_TIMEOUT_MS + Math.max(1, recorder.planned) * (o.testTimeoutSec * 1000 + TEST_SLACK_MS);
  const timedOut = new Promise<string>((resolve) => {
    timers.push(
      setInterval(() => {
        // The guest ends a test itself after its timeout and says so: silence past that is a
        // guest that no longer runs its init (a livelocked kernel), not a slow test.
        const silentMs = Date.now() - ktapSeen.at;
        if (recorder.started && silentMs > o.testTimeoutSec * 1000 + TEST_SLACK_MS) {
          resolve(`the guest sent nothing for ${Math.round(silentMs / 1000)} s, past its own per-test timeout of ${o.testTimeoutSec} s: it stopped running its tests (hung)`);
        }
        if (Date.now() > deadline()) resolve(recorder.started ? 'the run exceeded its deadline' : `no KTAP from the guest within ${BOOT_TIMEOUT_MS / 1000} s`);
        else if (!recorder.started && !o.shell && Date.now() > bootStart + BOOT_TIMEOUT_MS) resolve(`no KTAP from the guest within ${BOOT_TIMEOUT_MS / 1000} s`);
      }, 500),
    );
  });
  const interrupted = new Promise<string>((resolve) => o.signal.addEventListener('abort', () => resolve('interrupted'), { once: true }));
  const deviceDied = nics.exited();
  const qemuEnded = vm.then((r) => (r.exitCode === 0 ? null : `QEMU exited with ${r.exitCode ?? r.signal}: ${String(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`));
  try {
    return await Promise.race([qemuEnded, timedOut, interrupted, deviceDied]);
  } finally {
    for (const t of timers) clearInterval(t);
  }
}

/** A guest that powered off cleanly may still have left its suites unfinished. */
function unfinishedRun(o: RunOptions, recorder: TestRecorder, summary: KtapSummary): string | null {
  if (o.shell) return null;
  if (!recorder.started) return 'the guest printed no KTAP';
  if (summary.missing > 0) return `the guest reported ${recorder.planned - summary.missing} of ${recorder.planned} tests${summary.running ? ` (it was running ${summary.running})` : ''}`;
  if (!summary.done) return 'the guest did not finish its suites';
  return null;
}

/** SIGTERM, then SIGKILL after 3 s, to a QEMU still running; waits for it to be gone. */
async function stopQemu(qemu: ResultPromise): Promise<void> {
  // A child still running has neither an exit code nor a signal (both null).
  if (!qemu.pid || qemu.exitCode !== null || qemu.signalCode !== null) return;
  qemu.kill('SIGTERM');
  const killer = setTimeout(() => qemu.kill('SIGKILL'), 3000);
  await qemu.catch(() => undefined);
  clearTimeout(killer);
}

async function stopChildren(c: Children): Promise<void> {
  await c.channel?.close().catch(() => undefined);
  if (c.qemu) await stopQemu(c.qemu);
  await c.nics?.stop();
  await c.peer?.stop();
  await c.iperf3?.stop();
}
