// Runs the zcnic device (`node dist/cli/zcnic.js device ...`) as a child process for the
// harness, the integration tests and the bench, following its command-line contract: it
// creates the socket, serves its control API on `<socket>.ctl`, and on SIGINT prints its
// final stats as the last stdout line and exits 0.

import { execa, type ResultPromise } from 'execa';
import { existsSync, rmSync } from 'node:fs';

import { DeviceControl, parseDeviceStats, type DeviceStats, type JsonValue } from './device-control.js';
import { terminate, type EndedBy, type ExitInfo } from './dpdk/process.js';
import { LineTail } from './dpdk/tail.js';

export type ZcnicPort = 'sink' | 'reflect' | 'gen';

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
  /** Write every frame to this pcap file. */
  pcap?: string;
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
  if (o.pcap !== undefined) args.push('--pcap', o.pcap);
  if (o.extraArgs) args.push(...o.extraArgs);
  return args;
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
    this.child = execa(file, rest, {
      stdin: 'ignore',
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
