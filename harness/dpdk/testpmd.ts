// Driver for DPDK's dpdk-testpmd in interactive mode, as a vhost-user frontend (net_virtio_user)
// or backend (net_vhost). One instance = one testpmd process with one port (port 0).
//
// Why interactive mode: it lets the caller start forwarding, read exact counters at chosen
// moments (`show port stats all`), stop, read the final counters, and quit, which the periodic
// `--stats-period` printout cannot do.
//
// How the console is framed: testpmd's command line library echoes the typed command, then the
// command prints its output, then the prompt `testpmd> ` is written (without a newline). So the
// reply to one command is everything between sending it and the next prompt. Commands are
// serialized; asynchronous event lines may land inside a reply and are ignored by the parsers.
//
// testpmd prints through stdio, which is block-buffered when stdout is a pipe: replies would only
// arrive at exit. We run it under coreutils' `stdbuf -oL` (an LD_PRELOAD that makes stdout line
// buffered); stdbuf execs testpmd, so the PID we hold is testpmd's own.

import { execa, type ResultPromise } from 'execa';
import { performance } from 'node:perf_hooks';
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { buildTestpmdArgs, type TestpmdOptions, type TestpmdRole } from './args.js';
import { parsePortStats, type PortStats, TESTPMD_PROMPT } from './stats.js';
import { pidAlive, terminate, type EndedBy, type ExitInfo } from './process.js';
import { LineTail } from './tail.js';

export { buildTestpmdArgs, defaultCpus } from './args.js';
export type { ForwardMode, TestpmdOptions, TestpmdRole } from './args.js';
export { parsePortStats, stripPrompts, StatsParseError, TESTPMD_PROMPT } from './stats.js';
export type { PortStats } from './stats.js';
export { pidAlive } from './process.js';
export type { EndedBy, ExitInfo } from './process.js';

export interface TestpmdStartOptions extends TestpmdOptions {
  /** Program to run; default `dpdk-testpmd` from PATH. */
  binary?: string;
  /** Time to reach the prompt (and link up, see waitForLink). Default 30 s. */
  readyTimeoutMs?: number;
  /**
   * Wait for port 0's link to be up before resolving start(). Default: true for the frontend
   * (virtio-user is up once connected), false for the backend (its link only comes up when a
   * frontend connects and sets DRIVER_OK; call waitLinkUp() then).
   */
  waitForLink?: boolean;
  /** Sees every output line as it arrives, e.g. for a --verbose log. */
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** Counters of all ports, with the time they were read (performance.now(), ms). */
export interface StatsSnapshot {
  ports: PortStats[];
  /** Midpoint between sending the command and receiving the reply. */
  atMs: number;
}

export interface TestpmdExit extends ExitInfo {
  endedBy: EndedBy;
}

export class TestpmdError extends Error {
  override name = 'TestpmdError';
}

const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
let instanceCounter = 0;
/** Instances not yet stopped, so that a signal handler can stop them all. */
const live = new Set<Testpmd>();

/** Where EAL keeps its per-prefix runtime files (same rule as DPDK's eal_create_runtime_dir). */
export function dpdkRuntimeDir(filePrefix: string): string {
  const uid = process.getuid?.() ?? 0;
  const xdg = process.env['XDG_RUNTIME_DIR'];
  const base = uid === 0 ? '/var/run' : (xdg ?? '/tmp');
  return join(base, 'dpdk', filePrefix);
}

/**
 * Removes runtime directories of our naming (see uniqueFilePrefix) left by a Node process that
 * no longer exists, e.g. one killed before it could close its instances. Returns what it removed.
 */
export function sweepStaleRuntimeDirs(): string[] {
  const base = dirname(dpdkRuntimeDir('x'));
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /^zcnic-v[uh]-(\d+)-\d+$/.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || pidAlive(owner)) continue;
    rmSync(join(base, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** A file prefix unique to this process and instance, recognisable as ours. */
export function uniqueFilePrefix(role: TestpmdRole): string {
  instanceCounter += 1;
  return `zcnic-${role === 'frontend' ? 'vu' : 'vh'}-${process.pid}-${instanceCounter}`;
}

interface Waiter {
  resolve: (text: string) => void;
  reject: (err: Error) => void;
}

export class Testpmd {
  readonly role: TestpmdRole;
  readonly pid: number;
  readonly filePrefix: string;
  readonly runtimeDir: string;
  /** The full command line, for reports and error messages. */
  readonly commandLine: readonly string[];
  readonly socket: string;

  private readonly child: ResultPromise;
  private readonly exitPromise: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private readonly stdoutTail = new LineTail();
  private readonly stderrTail = new LineTail();
  /** stdout not yet consumed by a prompt wait. */
  private pending = '';
  private waiter: Waiter | undefined;
  /** Serializes commands: each one waits for the previous reply. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopping: Promise<TestpmdExit> | undefined;
  private readonly onOutput: TestpmdStartOptions['onOutput'];

  private constructor(opts: TestpmdStartOptions, filePrefix: string, args: string[]) {
    this.role = opts.role;
    this.socket = opts.socket;
    this.filePrefix = filePrefix;
    this.runtimeDir = dpdkRuntimeDir(filePrefix);
    this.onOutput = opts.onOutput;
    const binary = opts.binary ?? 'dpdk-testpmd';
    this.commandLine = ['stdbuf', '-oL', binary, ...args];
    this.child = execa('stdbuf', ['-oL', binary, ...args], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      reject: false,
      // execa kills the child if this Node process exits without calling close().
      cleanup: true,
    });
    if (this.child.pid === undefined) {
      // Spawn failed synchronously (ENOENT, ...); the result promise carries the reason.
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
    }
    this.exitPromise = this.child.then((r) => {
      const info: ExitInfo = {
        exitCode: r.exitCode,
        signal: r.signal,
      };
      this.exitInfo = info;
      const why = r.failed && r.exitCode === undefined && r.signal === undefined ? ` (${r.shortMessage})` : '';
      this.failWaiter(
        new TestpmdError(
          `testpmd (${this.role}) exited (${describeExit(info)})${why}\n` +
            `command: ${this.commandLine.join(' ')}\n${this.lastOutput()}`,
        ),
      );
      return info;
    });
    live.add(this);
    this.child.stdin?.on('error', () => {
      // EPIPE after testpmd died; the exit handler reports the real cause.
    });
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr?.on('data', (chunk: string) =>
      this.stderrTail.push(chunk, (l) => this.onOutput?.(l, 'stderr')),
    );
  }

  /**
   * Starts testpmd and resolves once its prompt is up (and, by default for the frontend, its
   * link). On any failure the process is stopped and its files removed before the error is
   * thrown; the error quotes testpmd's last output lines.
   */
  static async start(opts: TestpmdStartOptions): Promise<Testpmd> {
    if (opts.role === 'frontend' && !existsSync(opts.socket)) {
      throw new TestpmdError(
        `vhost-user socket ${opts.socket} does not exist: start the backend before the frontend`,
      );
    }
    sweepStaleRuntimeDirs();
    const filePrefix = opts.filePrefix ?? uniqueFilePrefix(opts.role);
    const args = buildTestpmdArgs(opts, filePrefix);
    const t = new Testpmd(opts, filePrefix, args);
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const deadline = performance.now() + timeoutMs;
    try {
      await t.waitPrompt(timeoutMs, 'its prompt');
      if (opts.role === 'backend' && !isSocket(opts.socket)) {
        throw new TestpmdError(`testpmd backend is up but did not create ${opts.socket}`);
      }
      if (opts.waitForLink ?? opts.role === 'frontend') {
        await t.waitLinkUp(Math.max(1, deadline - performance.now()));
      }
      return t;
    } catch (err) {
      await t.close().catch(() => undefined);
      throw err;
    }
  }

  /** Stops every instance of this process that is still running (for signal handlers). */
  static async closeAll(): Promise<void> {
    await Promise.allSettled([...live].map((t) => t.close()));
  }

  /** True once the process has exited (and been reaped). */
  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** The last lines testpmd printed on stdout and stderr, formatted for an error message. */
  lastOutput(n = 30): string {
    return `last stdout lines:\n${this.stdoutTail.format(n)}\nlast stderr lines:\n${this.stderrTail.format(n)}`;
  }

  /**
   * Sends one command line and returns its reply (the echo of the command removed). Throws
   * TestpmdError if testpmd rejects the command, exits, or does not answer in time.
   */
  command(cmd: string, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<string> {
    if (cmd.includes('\n')) throw new TestpmdError('one command at a time (no newline)');
    const run = async (): Promise<string> => {
      this.assertRunning(cmd);
      // Nothing is awaited between commands, so what is pending is only asynchronous event
      // text; dropping it keeps the reply to this command alone.
      this.pending = '';
      this.child.stdin?.write(`${cmd}\n`);
      const reply = stripEcho(await this.waitPrompt(timeoutMs, `the reply to "${cmd}"`), cmd);
      if (/^(Command not found|Bad arguments)/m.test(reply)) {
        throw new TestpmdError(`testpmd (${this.role}) rejected "${cmd}":\n${reply.trim()}`);
      }
      return reply;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** `start` (or `start tx_first`, which first sends one burst from every port). */
  async startForwarding(opts: { txFirst?: boolean } = {}): Promise<void> {
    await this.command(opts.txFirst ? 'start tx_first' : 'start');
  }

  /** `stop`: the forwarding lcore stops; counters are final afterwards. */
  async stopForwarding(): Promise<void> {
    await this.command('stop');
  }

  /** `show port stats all`, parsed. */
  async readStats(): Promise<StatsSnapshot> {
    const sent = performance.now();
    const reply = await this.command('show port stats all');
    const atMs = (sent + performance.now()) / 2;
    const ports = parsePortStats(reply);
    if (ports.length === 0) {
      throw new TestpmdError(`no NIC statistics in the reply to "show port stats all":\n${reply}`);
    }
    return { ports, atMs };
  }

  /** Counters of one port (default port 0). */
  async portStats(port = 0): Promise<PortStats> {
    const snap = await this.readStats();
    const s = snap.ports.find((p) => p.port === port);
    if (!s) throw new TestpmdError(`testpmd (${this.role}) has no port ${port}`);
    return s;
  }

  /** `clear port stats all`. */
  async clearStats(): Promise<void> {
    await this.command('clear port stats all');
  }

  /** Whether `show port info` reports the link up. */
  async linkUp(port = 0): Promise<boolean> {
    const reply = await this.command(`show port info ${port}`);
    const m = /Link status:\s*(up|down)/i.exec(reply);
    if (!m) throw new TestpmdError(`no "Link status" in the reply to "show port info ${port}":\n${reply}`);
    return (m[1] as string).toLowerCase() === 'up';
  }

  /** Polls the link until it is up; throws with the last output on timeout. */
  async waitLinkUp(timeoutMs = 15_000, port = 0): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (await this.linkUp(port)) return;
      if (performance.now() >= deadline) {
        throw new TestpmdError(
          `testpmd (${this.role}) port ${port} link still down after ${timeoutMs} ms\n${this.lastOutput()}`,
        );
      }
      await sleep(100);
    }
  }

  /**
   * Quits: `quit` on the console, then SIGTERM after `graceMs`, then SIGKILL after `termMs`;
   * then removes the EAL runtime directory and (backend) the socket it created. Idempotent:
   * every call returns the same result.
   */
  stop(opts: { graceMs?: number; termMs?: number } = {}): Promise<TestpmdExit> {
    this.stopping ??= this.doStop(opts.graceMs ?? 5000, opts.termMs ?? 3000);
    return this.stopping;
  }

  /** stop() for finally blocks: never throws twice, safe to call any number of times. */
  async close(): Promise<void> {
    await this.stop();
  }

  private async doStop(graceMs: number, termMs: number): Promise<TestpmdExit> {
    let result: { exit: ExitInfo; endedBy: EndedBy };
    try {
      if (this.pid < 0) {
        result = { exit: await this.exitPromise, endedBy: 'already-exited' };
      } else if (this.exitInfo !== undefined) {
        result = { exit: this.exitInfo, endedBy: 'already-exited' };
      } else {
        // quit stops forwarding itself; EOF on stdin also ends the command line loop.
        this.child.stdin?.write('quit\n');
        this.child.stdin?.end();
        result = await terminate(this.pid, this.exitPromise, { graceMs, termMs });
      }
    } finally {
      this.removeFiles();
      live.delete(this);
    }
    return { ...result.exit, endedBy: result.endedBy };
  }

  private removeFiles(): void {
    rmSync(this.runtimeDir, { recursive: true, force: true });
    // DPDK's vhost backend unlinks its socket on a clean exit; after a kill it stays behind.
    if (this.role === 'backend' && isSocket(this.socket)) rmSync(this.socket, { force: true });
  }

  private assertRunning(what: string): void {
    if (this.exitInfo !== undefined) {
      throw new TestpmdError(
        `testpmd (${this.role}) has exited (${describeExit(this.exitInfo)}); cannot run "${what}"\n${this.lastOutput()}`,
      );
    }
    if (this.stopping !== undefined) {
      throw new TestpmdError(`testpmd (${this.role}) is being stopped; cannot run "${what}"`);
    }
  }

  private onStdout(chunk: string): void {
    this.stdoutTail.push(chunk, (l) => this.onOutput?.(l, 'stdout'));
    this.pending += chunk;
    const i = this.pending.indexOf(TESTPMD_PROMPT);
    if (i >= 0 && this.waiter) {
      const reply = this.pending.slice(0, i);
      this.pending = this.pending.slice(i + TESTPMD_PROMPT.length);
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(reply);
    } else if (this.pending.length > 1 << 16) {
      // Nobody waits: keep only the tail so endless async output cannot grow memory.
      this.pending = this.pending.slice(-(1 << 12));
    }
  }

  private failWaiter(err: Error): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err);
  }

  /** Resolves with the stdout text before the next prompt. */
  private waitPrompt(timeoutMs: number, what: string): Promise<string> {
    if (this.waiter) return Promise.reject(new TestpmdError('internal: concurrent prompt waits'));
    if (this.exitInfo !== undefined) {
      return Promise.reject(
        new TestpmdError(`testpmd (${this.role}) exited (${describeExit(this.exitInfo)})\n${this.lastOutput()}`),
      );
    }
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter !== waiter) return;
        this.waiter = undefined;
        reject(
          new TestpmdError(
            `testpmd (${this.role}, pid ${this.pid}) did not print ${what} within ${timeoutMs} ms\n` +
              `command: ${this.commandLine.join(' ')}\n${this.lastOutput()}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiter = waiter;
      // The prompt may already be buffered (it arrived before anyone waited).
      if (this.pending.includes(TESTPMD_PROMPT)) this.onStdout('');
    });
  }
}

function stripEcho(reply: string, cmd: string): string {
  const nl = reply.indexOf('\n');
  const first = (nl < 0 ? reply : reply.slice(0, nl)).replace(/\r$/, '');
  return first.trim() === cmd.trim() ? reply.slice(nl + 1) : reply;
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

function describeExit(e: ExitInfo): string {
  if (e.signal !== undefined) return `signal ${e.signal}`;
  if (e.exitCode !== undefined) return `code ${e.exitCode}`;
  return 'spawn failed';
}
