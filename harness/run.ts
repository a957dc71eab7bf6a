/**
 * One test run, start to end: the guest image (built or cached), the accelerator (probed),
 * the zcnic device (a child process, so a device crash is reported instead of taking the
 * harness down, and the harness's own event loop never delays the datapath), QEMU, and the
 * guest's KTAP port. Each test's verdict is the guest's (which checks the device's counters
 * itself through zcnic_ctl); the harness adds the device's counters for that test to the record.
 * Every child is stopped by its PID and the temporary folder removed, on success, failure,
 * timeout or Ctrl-C.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { ZcnicDevice } from './device-process.js';
import { PEER_ADDRESS, PeerNetns } from './peer-netns.js';
import { resolveAccel, type AccelRequest } from './accel.js';
import { connectGuestChannel, type GuestChannel } from './guest-channel.js';
import { answerGuestRequest } from './guest-requests.js';
import { KtapReader, type KtapSummary } from './ktap.js';
import { launchQemu } from './qemu.js';
import { testRecordFromKtap, type RunResults, type TestRecord } from './report.js';
import { buildImage } from '../images/build.js';

export interface RunOptions {
  readonly suites: readonly string[];
  readonly accel: AccelRequest;
  readonly smp: number;
  readonly memMiB: number;
  readonly queues: number;
  /** Per-test timeout in the guest, seconds. */
  readonly testTimeoutSec: number;
  readonly kernel?: string;
  readonly modules?: string;
  /** Keep the temporary folder (sockets, console log, raw KTAP, device log). */
  readonly keep: boolean;
  /** Stream the guest console and the device log. */
  readonly verbose: boolean;
  /** Boot into a shell instead of running suites (zcnic shell). */
  readonly shell?: boolean;
  /** Progress lines for a person. */
  readonly progress: (line: string) => void;
  /** Aborts the run (Ctrl-C). */
  readonly signal: AbortSignal;
}

export interface RunOutcome {
  readonly results: RunResults;
  readonly summary: KtapSummary;
  /** Why the run itself went wrong (QEMU died, timed out, the device crashed), or null. */
  readonly problem: string | null;
  /**
   * Set when the guest died of a fault of the emulator rather than of what it tested: QEMU 7.2's
   * multi-threaded TCG now and then runs a stale int3 that the kernel's text patching (jump
   * labels, static calls) had already removed, and the guest oopses in int3. Worth one retry.
   */
  readonly emulatorFault: string | null;
  readonly keptDir: string | null;
}

const MAC = '52:54:00:12:34:56';
/** Time to the first KTAP line before the run is declared stuck. */
const BOOT_TIMEOUT_MS = 120_000;
/** Suites (or suite groups, expanded in the guest) that need the netns peer (harness/peer-netns.ts). */
const PEER_SUITES: readonly string[] = ['msg-zerocopy', 'seeds'];
/** The device's tap for the peer, unique per run. */
const PEER_TAP = `zcp${process.pid % 1_000_000}`;
/** Per-test slack over the guest's own timeout (the guest kills a hung test itself). */
const TEST_SLACK_MS = 30_000;

function entryPoint(): string {
  return new URL('../cli/zcnic.js', import.meta.url).pathname;
}

export async function runSuites(o: RunOptions): Promise<RunOutcome> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-run-'));
  const paths = { vhost: join(dir, 'vhost.sock'), ktap: join(dir, 'ktap.sock'), console: join(dir, 'console.log'), deviceLog: join(dir, 'device.log') };
  let device: ZcnicDevice | null = null;
  let peer: PeerNetns | null = null;
  let qemu: ResultPromise | null = null;
  let channel: GuestChannel | null = null;
  const deviceLog: string[] = [];
  try {
    o.progress('building the guest image');
    const image = await buildImage({ kernel: o.kernel, modules: o.modules, log: (line) => o.progress(`  ${line}`) });
    const kernelKey = (JSON.parse(readFileSync(image.manifest, 'utf8')) as { kernelKey?: string }).kernelKey ?? image.cacheKey;
    const accel = await resolveAccel({ requested: o.accel, kernel: image.kernel, initramfs: image.initramfs, guestKernelKey: kernelKey });
    o.progress(`accelerator: ${accel.accel} (${accel.reason})`);

    device = await ZcnicDevice.start({
      entry: entryPoint(),
      socket: paths.vhost,
      port: 'sink',
      queues: o.queues,
      verify: true,
      onOutput: (line) => {
        deviceLog.push(line);
        if (o.verbose) o.progress(`device: ${line}`);
      },
    });
    const dev = device;

    // Suites that talk to a real peer get one: the device's tap in a namespace of its own.
    if (o.suites.some((suite) => PEER_SUITES.includes(suite))) {
      o.progress(`peer: tap ${PEER_TAP} in a network namespace, ${PEER_ADDRESS}`);
      try {
        await dev.request({ cmd: 'setPort', port: 'tap', tap: PEER_TAP });
        await dev.request({ cmd: 'setPort', port: 'sink' });
        peer = await PeerNetns.start({
          tap: PEER_TAP,
          control: join(dir, 'peer.ctl'),
          onOutput: (line) => {
            deviceLog.push(`peer: ${line}`);
            if (o.verbose) o.progress(`peer: ${line}`);
          },
        });
      } catch (err) {
        // Without root there is no tap and no namespace: the suites that need the peer skip.
        o.progress(`peer: not available, the tests that need it will skip: ${(err as Error).message}`);
        peer = null;
      }
    }
    const peerNow = peer;

    // Device counters per test: read when the result line arrives, before the guest's next
    // `begin` resets them (requests and results are handled in the order they arrived).
    let ordered: Promise<unknown> = Promise.resolve();
    const records: TestRecord[] = [];
    let planned = 0;
    const reader = new KtapReader({
      onBegin: (b) => o.progress(`test ${b.index}${planned ? `/${planned}` : ''} ${b.suite ?? ''}/${b.name}`),
      onResult: (r) => {
        o.progress(`  ${r.skip !== null ? `skip (${r.skip})` : r.ok ? 'ok' : 'FAILED'} ${r.name}${r.durationMs !== null ? ` (${(r.durationMs / 1000).toFixed(1)} s)` : ''}`);
        ordered = ordered.then(async () => {
          const counters = await dev.stats().catch(() => null);
          records.push(testRecordFromKtap(r, counters));
        });
      },
    });
    const begin = async (): Promise<void> => {
      await dev.request({ cmd: 'setPort', port: 'sink' });
      await dev.request({ cmd: 'setVerify', on: true });
      await dev.request({ cmd: 'setRequireLinearHeader', on: false });
      await dev.request({ cmd: 'setZeroCopyMap', map: null });
      await dev.request({ cmd: 'resetCounters' });
    };

    const appendCmdline = o.shell ? 'zcnic.shell=1' : undefined;
    o.progress(`booting ${image.kernelRelease} under ${accel.accel.toUpperCase()} (${o.smp} vCPUs, ${o.memMiB} MiB)`);
    const bootStart = Date.now();
    qemu = launchQemu(
      {
        kernel: image.kernel,
        initramfs: image.initramfs,
        accel: accel.accel,
        smp: o.smp,
        memMiB: o.memMiB,
        vhostUserSocket: paths.vhost,
        queues: o.queues,
        mac: MAC,
        ktapPath: paths.ktap,
        ktapChardev: 'socket',
        suite: o.suites,
        testTimeoutSec: o.testTimeoutSec,
        appendCmdline,
      },
      { execa: o.shell ? { stdio: 'inherit' } : { stdin: 'ignore', buffer: false } },
    );
    const vm = qemu;
    const consoleLines: string[] = [];
    if (!o.shell) {
      vm.stdout?.setEncoding('utf8');
      vm.stdout?.on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) {
          if (line === '') continue;
          consoleLines.push(line);
          if (o.verbose) o.progress(`guest: ${line.replace(/\r$/, '')}`);
        }
      });
    }
    const qemuExit = vm.then((r) => r);
    const abort = new AbortController();
    void qemuExit.then(() => abort.abort());
    o.signal.addEventListener('abort', () => abort.abort(), { once: true });

    let firstLine = false;
    channel = await connectGuestChannel({
      path: paths.ktap,
      signal: abort.signal,
      onLine: (line) => {
        if (!firstLine && line.startsWith('KTAP version')) {
          firstLine = true;
          o.progress(`  first KTAP line after ${((Date.now() - bootStart) / 1000).toFixed(1)} s`);
        }
        const plan = /^1\.\.(\d+)/.exec(line);
        if (plan) planned = Number(plan[1]);
        reader.line(line);
      },
      onControl: async (request) => {
        await ordered;
        const answer = answerGuestRequest(request, dev, begin, peerNow ?? undefined);
        ordered = answer;
        return answer;
      },
    });

    // Wait for the guest to power off, the deadline, the device to die, or Ctrl-C.
    let problem: string | null = null;
    const ticker = setInterval(() => {
      if (!firstLine) o.progress(`  booting… ${((Date.now() - bootStart) / 1000).toFixed(0)} s`);
    }, 5000);
    const deadline = (): number => bootStart + BOOT_TIMEOUT_MS + Math.max(1, planned) * (o.testTimeoutSec * 1000 + TEST_SLACK_MS);
    const timedOut = new Promise<string>((resolve) => {
      const check = setInterval(() => {
        if (Date.now() > deadline() || (!firstLine && !o.shell && Date.now() > bootStart + BOOT_TIMEOUT_MS)) {
          clearInterval(check);
          resolve(firstLine ? 'the run exceeded its deadline' : `no KTAP from the guest within ${BOOT_TIMEOUT_MS / 1000} s`);
        }
      }, 500);
      void qemuExit.finally(() => clearInterval(check));
    });
    const interrupted = new Promise<string>((resolve) => o.signal.addEventListener('abort', () => resolve('interrupted'), { once: true }));
    const deviceDied = device.exitPromiseForRun().then((e) => `the zcnic device exited unexpectedly (${e})`);
    const ended = await Promise.race([qemuExit.then((r) => (r.exitCode === 0 ? null : `QEMU exited with ${r.exitCode ?? r.signal}: ${String(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`)), timedOut, interrupted, deviceDied]);
    clearInterval(ticker);
    problem = ended;
    await channel.closed.catch(() => undefined);
    await ordered.catch(() => undefined);
    const summary = reader.end();
    if (!problem && !o.shell && !firstLine) problem = 'the guest printed no KTAP';
    if (!problem && summary.missing > 0) problem = `the guest reported ${planned - summary.missing} of ${planned} tests${summary.running ? ` (it was running ${summary.running})` : ''}`;
    if (!problem && !o.shell && !summary.done) problem = 'the guest did not finish its suites';
    // Tests the guest never reported are failures, so every count (JSON, JUnit, make test) sees them.
    if (problem && !o.shell) {
      const died = consoleLines.slice(-20).join('\n');
      for (const name of summary.running ? [summary.running] : []) {
        records.push({ name, suite: '', ok: false, skip: false, skipReason: null, timeout: null, durationMs: null, metrics: {}, deviceCounters: null, diagnostics: [`not finished: ${problem}`, died] });
      }
      const unreported = summary.missing - (summary.running ? 1 : 0);
      if (unreported > 0) records.push({ name: `${unreported} more planned test(s)`, suite: '', ok: false, skip: false, skipReason: null, timeout: null, durationMs: null, metrics: {}, deviceCounters: null, diagnostics: [`never ran: ${problem}`] });
    }
    const emulatorFault =
      problem && accel.accel === 'tcg' && consoleLines.some((l) => l.includes('Oops: int3')) ? 'the guest oopsed in int3 under multi-threaded TCG (a QEMU 7.2 emulation fault)' : null;
    if (problem && consoleLines.length > 0 && !o.verbose) o.progress(`last console lines:\n${consoleLines.slice(-15).join('\n')}`);
    if (o.keep) {
      writeFileSync(paths.console, consoleLines.join('\n'));
      writeFileSync(paths.deviceLog, deviceLog.join('\n'));
      writeFileSync(join(dir, 'ktap.raw'), channel.raw());
    }
    const results: RunResults = {
      accel: accel.accel,
      accelReason: accel.reason,
      kernelRelease: image.kernelRelease,
      suites: [...o.suites],
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      tests: records,
    };
    return { results, summary, problem, emulatorFault, keptDir: o.keep ? dir : null };
  } finally {
    await channel?.close().catch(() => undefined);
    // A child still running has neither an exit code nor a signal (both null).
    if (qemu?.pid && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGTERM');
      const killer = setTimeout(() => qemu?.kill('SIGKILL'), 3000);
      await qemu.catch(() => undefined);
      clearTimeout(killer);
    }
    await device?.stop().catch(() => undefined);
    await peer?.stop();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}
