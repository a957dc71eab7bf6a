// Runs the zcnic device (`node dist/cli/zcnic.js device ...`) as a child process for the
// harness, the integration tests and the bench, following its command-line contract: it
// creates the socket, serves its control API on `<socket>.ctl`, and on SIGINT prints its
// final stats as the last stdout line and exits 0.

import { execa, type ResultPromise } from 'execa';
import { existsSync, rmSync } from 'node:fs';
import { sys } from 'vfio-user-ts';

import { DeviceControl, parseDeviceStats, type DeviceStats, type JsonValue } from './device-control.js';
import { terminate, type EndedBy, type ExitInfo } from './dpdk/process.js';
import { LineTail } from './dpdk/tail.js';

export type ZcnicPort = 'sink' | 'reflect' | 'gen' | 'wire';

export interface ZcnicDeviceOptions {
  /** Path of dist/cli/zcnic.js. */
  entry: string;
  socket: string;
  port: ZcnicPort;
  genSize?: number;
  genCount?: number;
  genPps?: number;
  queues?: number;
  /** Busy-poll the datapath (the bench wants this). */
  poll?: boolean;
  /** Verify every transmitted test frame. */
  verify?: boolean;
  /** Offer VIRTIO_F_RING_RESET (zcnic device --ring-reset). */
  ringReset?: boolean;
  /** Offer VIRTIO_F_ACCESS_PLATFORM (zcnic device --access-platform). */
  accessPlatform?: boolean;
  /** Offer transmit segmentation (zcnic device --tso). */
  tso?: boolean;
  /** Offer receive segmentation (zcnic device --guest-tso). */
  guestTso?: boolean;
  /** Write every frame to this pcap file. */
  pcap?: string;
  /**
   * This device's ends of a wire (one of createWire's sides), one per queue pair: the child gets
   * them as fds 3, 4, ... (`--wire-fds 3,4,...`), for port wire now or through setPort later.
   */
  wireFds?: readonly number[];
  /** More `zcnic device` arguments (e.g. --workers 2). */
  extraArgs?: readonly string[];
  /** taskset CPU list for the whole Node process, e.g. "1"; undefined = no pinning. */
  cpus?: string;
  readyTimeoutMs?: number;
  onOutput?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface ZcnicExit extends ExitInfo {
  endedBy: EndedBy;
  /** The stats line printed at exit, if there was a valid one. */
  final: DeviceStats | undefined;
  /** Why `final` is missing. */
  finalError: string | undefined;
}

export class ZcnicDeviceError extends Error {
  override name = 'ZcnicDeviceError';
}

export function zcnicArgs(o: ZcnicDeviceOptions): string[] {
  const args = [o.entry, 'device', '--socket', o.socket, '--port', o.port];
  if (o.genSize !== undefined) args.push('--gen-size', String(o.genSize));
  if (o.genCount !== undefined) args.push('--gen-count', String(o.genCount));
  if (o.genPps !== undefined) args.push('--gen-pps', String(o.genPps));
  if (o.queues !== undefined) args.push('--queues', String(o.queues));
  if (o.poll) args.push('--poll');
  if (o.verify) args.push('--verify');
  if (o.ringReset) args.push('--ring-reset');
  if (o.accessPlatform) args.push('--access-platform');
  if (o.tso) args.push('--tso');
  if (o.guestTso) args.push('--guest-tso');
  if (o.pcap !== undefined) args.push('--pcap', o.pcap);
  if (o.wireFds !== undefined) args.push('--wire-fds', o.wireFds.map((_, i) => CHILD_WIRE_FD + i).join(','));
  if (o.extraArgs) args.push(...o.extraArgs);
  return args;
}

/** The child's fd of the first wire end (the next ones follow): the first after stdio. */
const CHILD_WIRE_FD = 3;

/** Two devices' ends of the wires that join them back to back: a[k] and b[k] for queue pair k. */
export interface Wire {
  readonly a: readonly number[];
  readonly b: readonly number[];
  /**
   * Closes this process's copies (idempotent): once both devices have started (their children
   * hold their own), so that one's exit is seen by the other (a closed peer).
   */
  close(): void;
}

/**
 * The wires for two zcnic devices joined by port wire, one unix SOCK_SEQPACKET socket pair per
 * queue pair: start one device with `wireFds: wire.a`, the other with `wireFds: wire.b` (and the
 * same `queues`), then call close().
 */
export function createWire(queuePairs: number): Wire {
  const a: number[] = [];
  const b: number[] = [];
  try {
    for (let i = 0; i < queuePairs; i++) {
      const [x, y] = sys.socketPair();
      a.push(x);
      b.push(y);
    }
  } catch (err) {
    for (const fd of [...a, ...b]) sys.close(fd);
    throw err;
  }
  let closed = false;
  return {
    a,
    b,
    close() {
      if (closed) return;
      closed = true;
      for (const fd of [...a, ...b]) sys.close(fd);
    },
  };
}

/** Devices not yet stopped, so that a signal handler can stop them all. */
const live = new Set<ZcnicDevice>();

export class ZcnicDevice {
  readonly pid: number;
  readonly commandLine: readonly string[];
  private readonly child: ResultPromise;
  private readonly exitPromise: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private readonly stdoutTail = new LineTail(50);
  private readonly stderrTail = new LineTail(50);
  private control: DeviceControl | undefined;
  private stopping: Promise<ZcnicExit> | undefined;

  private constructor(private readonly opts: ZcnicDeviceOptions) {
    const node = process.execPath;
    const argv = opts.cpus !== undefined ? ['taskset', '-c', opts.cpus, node] : [node];
    this.commandLine = [...argv, ...zcnicArgs(opts)];
    const [file, ...rest] = this.commandLine as [string, ...string[]];
    // Wire ends go to the child as fds 3, 4, ... (dup2()ed there, which clears close-on-exec).
    // Execa hands any fd number to child_process.spawn; its types only name 3 to 9.
    const stdio = opts.wireFds === undefined ? { stdin: 'ignore' as const } : { stdio: ['ignore', 'pipe', 'pipe', ...(opts.wireFds as readonly 3[])] as const };
    this.child = execa(file, rest, {
      ...stdio,
      buffer: false,
      reject: false,
      cleanup: true,
    });
    // taskset execs the program, so this is the device's own PID.
    this.pid = this.child.pid ?? -1;
    live.add(this);
    this.exitPromise = this.child.then((r) => {
      this.exitInfo = { exitCode: r.exitCode, signal: r.signal };
      return this.exitInfo;
    });
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (c: string) => this.stdoutTail.push(c, (l) => opts.onOutput?.(l, 'stdout')));
    this.child.stderr?.on('data', (c: string) => this.stderrTail.push(c, (l) => opts.onOutput?.(l, 'stderr')));
  }

  /** Starts the device and resolves once its vhost-user and control sockets answer. */
  static async start(opts: ZcnicDeviceOptions): Promise<ZcnicDevice> {
    if (!existsSync(opts.entry)) {
      throw new ZcnicDeviceError(`zcnic entry point ${opts.entry} does not exist: build it first (npx tsc -b)`);
    }
    const d = new ZcnicDevice(opts);
    const timeoutMs = opts.readyTimeoutMs ?? 20_000;
    try {
      const exited = d.exitPromise.then((e) => {
        throw new ZcnicDeviceError(`zcnic device exited before it was ready (${describe(e)})`);
      });
      d.control = await Promise.race([
        DeviceControl.connect(`${opts.socket}.ctl`, { retryForMs: timeoutMs }),
        exited,
      ]);
      if (!existsSync(opts.socket)) {
        throw new ZcnicDeviceError(`zcnic control socket answers but ${opts.socket} does not exist`);
      }
      return d;
    } catch (err) {
      await d.close();
      const msg = err instanceof Error ? err.message : String(err);
      throw new ZcnicDeviceError(`${msg}\ncommand: ${d.commandLine.join(' ')}\n${d.lastOutput()}`);
    }
  }

  static async closeAll(): Promise<void> {
    await Promise.allSettled([...live].map((d) => d.close()));
  }

  lastOutput(n = 20): string {
    return `last stdout lines:\n${this.stdoutTail.format(n)}\nlast stderr lines:\n${this.stderrTail.format(n)}`;
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  async stats(): Promise<DeviceStats> {
    if (!this.control) throw new ZcnicDeviceError('zcnic device is not connected');
    return this.control.stats();
  }

  /** One control API request; resolves to the device's answer (which may be {error}). */
  request(body: { [key: string]: JsonValue }): Promise<unknown> {
    if (!this.control) return Promise.reject(new ZcnicDeviceError('zcnic device is not connected'));
    return this.control.request(body);
  }

  /** Resolves, with a description, if the device exits before stop() was called. */
  exitPromiseForRun(): Promise<string> {
    return this.exitPromise.then((e) => (this.stopping ? new Promise<string>(() => {}) : describe(e)));
  }

  /** SIGINT, then SIGTERM/SIGKILL if it hangs; parses the final stats line. Idempotent. */
  stop(): Promise<ZcnicExit> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  async close(): Promise<void> {
    await this.stop();
  }

  private async doStop(): Promise<ZcnicExit> {
    this.control?.close();
    let ended: { exit: ExitInfo; endedBy: EndedBy };
    try {
      if (this.pid < 0 || this.exitInfo !== undefined) {
        ended = { exit: await this.exitPromise, endedBy: 'already-exited' };
      } else {
        try {
          process.kill(this.pid, 'SIGINT');
        } catch {
          // Already gone: terminate() sees the exit.
        }
        ended = await terminate(this.pid, this.exitPromise, { graceMs: 10_000, termMs: 3000 });
      }
    } finally {
      // The device should remove its sockets; after a kill they stay behind.
      rmSync(this.opts.socket, { force: true });
      rmSync(`${this.opts.socket}.ctl`, { force: true });
      live.delete(this);
    }
    let final: DeviceStats | undefined;
    let finalError: string | undefined;
    const last = this.stdoutTail
      .last(50)
      .filter((l) => l.trim() !== '')
      .pop();
    if (last === undefined) {
      finalError = 'no stdout at exit';
    } else {
      try {
        final = parseDeviceStats(JSON.parse(last));
      } catch (err) {
        finalError = `last stdout line is not the stats JSON (${(err as Error).message}): ${last.slice(0, 200)}`;
      }
    }
    return { ...ended.exit, endedBy: ended.endedBy, final, finalError };
  }
}

function describe(e: ExitInfo): string {
  if (e.signal !== undefined) return `signal ${e.signal}`;
  return e.exitCode !== undefined ? `code ${e.exitCode}` : 'spawn failed';
}
