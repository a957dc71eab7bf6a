/**
 * The backend under fuzz: either a `zcnic device` the fuzzer starts itself (and restarts after
 * a crash), or one that is already listening on a socket (with its control socket, when there
 * is one, for the counters). Either way the fuzzer only talks to it through its sockets.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceControl, type DeviceStats, type JsonValue } from '../harness/device-control.js';
import { ZcnicDevice } from '../harness/device-process.js';
import { connectClient } from './connect.js';

export interface Target {
  readonly socketPath: string;
  /** Whether counters can be read (the control socket answers). */
  readonly hasControl: boolean;
  /** Whether restart() can bring a dead backend back. */
  readonly canRestart: boolean;
  /** The counters; rejects when the control socket does not answer. */
  stats(): Promise<DeviceStats>;
  /** One control request (e.g. setPort). */
  request(body: { [key: string]: JsonValue }): Promise<unknown>;
  /** Null while the backend is alive and answering, else why it is not. */
  check(): Promise<string | null>;
  /** Starts a fresh backend after a crash (spawned targets only). */
  restart(): Promise<void>;
  /** The backend's last output lines (spawned targets), for crash reports. */
  lastOutput(): string;
  /** Every log line the backend printed since the last call (spawned targets). */
  takeLog(): string[];
  /** How many fds the backend process has open (spawned targets; null otherwise). */
  openFds(): number | null;
  close(): Promise<void>;
}

/** dist/cli/zcnic.js, next to this module's folder. */
export const ZCNIC_ENTRY = new URL('../cli/zcnic.js', import.meta.url).pathname;

export interface SpawnOptions {
  /** Where the socket goes; default a fresh folder under the system's temp dir. */
  readonly socketPath?: string;
  /** Extra `zcnic device` arguments. */
  readonly extraArgs?: readonly string[];
  readonly onLog?: (line: string) => void;
}

/** A `zcnic device --port sink` child, watched: dead or silent counts as a crash. */
export class SpawnedTarget implements Target {
  readonly hasControl = true;
  readonly canRestart = true;
  readonly socketPath: string;
  private device: ZcnicDevice | null = null;
  private readonly dir: string | null;
  private log: string[] = [];
  private deathReason: string | null = null;

  private constructor(private readonly options: SpawnOptions) {
    this.dir = options.socketPath ? null : mkdtempSync(join(tmpdir(), 'zcnic-fuzz-'));
    this.socketPath = options.socketPath ?? join(this.dir!, 'vhost.sock');
  }

  static async start(options: SpawnOptions = {}): Promise<SpawnedTarget> {
    const target = new SpawnedTarget(options);
    try {
      await target.launch();
    } catch (error) {
      await target.close();
      throw error;
    }
    return target;
  }

  private async launch(): Promise<void> {
    this.deathReason = null;
    const device = await ZcnicDevice.start({
      entry: ZCNIC_ENTRY,
      socket: this.socketPath,
      port: 'sink',
      // GSO offered: cases that negotiate it (RingGenome.tso) check its rules; the others must
      // still see every gso_type refused.
      extraArgs: ['--tso', ...(this.options.extraArgs ?? [])],
      onOutput: (line, stream) => {
        if (stream !== 'stderr') return;
        if (this.log.length < 10_000) this.log.push(line);
        this.options.onLog?.(line);
      },
    });
    this.device = device;
    void device.exitPromiseForRun().then((how) => {
      if (this.device === device) this.deathReason = `the device process exited (${how})`;
    });
  }

  private get live(): ZcnicDevice {
    if (!this.device) throw new Error('the fuzz target is not running');
    return this.device;
  }

  stats(): Promise<DeviceStats> {
    return this.live.stats();
  }

  request(body: { [key: string]: JsonValue }): Promise<unknown> {
    return this.live.request(body);
  }

  async check(): Promise<string | null> {
    if (this.deathReason) return this.deathReason;
    if (!this.device || this.device.exited) return 'the device process is gone';
    try {
      await this.device.stats();
      return null;
    } catch (error) {
      // A dead process closes the control socket a moment before its exit is reaped.
      await new Promise((resolve) => setTimeout(resolve, 50));
      return this.deathReason ?? `the control socket does not answer: ${(error as Error).message}`;
    }
  }

  async restart(): Promise<void> {
    const old = this.device;
    this.device = null;
    await old?.stop();
    await this.launch();
  }

  lastOutput(): string {
    return this.device?.lastOutput(30) ?? '(no device)';
  }

  takeLog(): string[] {
    const lines = this.log;
    this.log = [];
    return lines;
  }

  openFds(): number | null {
    if (!this.device || this.device.exited) return null;
    try {
      return readdirSync(`/proc/${this.device.pid}/fd`).length;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    const device = this.device;
    this.device = null;
    await device?.stop();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A backend somebody else started; its control socket (default SOCKET.ctl) is optional. */
export class ExternalTarget implements Target {
  readonly canRestart = false;
  private control: DeviceControl | null;

  private constructor(readonly socketPath: string, control: DeviceControl | null, private readonly controlPath: string) {
    this.control = control;
  }

  static async connect(socketPath: string, controlPath = `${socketPath}.ctl`): Promise<ExternalTarget> {
    let control: DeviceControl | null = null;
    try {
      control = await DeviceControl.connect(controlPath, { retryForMs: 1000 });
    } catch {
      control = null;
    }
    return new ExternalTarget(socketPath, control, controlPath);
  }

  get hasControl(): boolean {
    return this.control !== null;
  }

  stats(): Promise<DeviceStats> {
    if (!this.control) return Promise.reject(new Error('no control socket'));
    return this.control.stats();
  }

  request(body: { [key: string]: JsonValue }): Promise<unknown> {
    if (!this.control) return Promise.reject(new Error('no control socket'));
    return this.control.request(body);
  }

  async check(): Promise<string | null> {
    if (!this.control) {
      // No counters to ask for: a backend that still negotiates is alive.
      try {
        const { client } = await connectClient(this.socketPath, 5000);
        client.close();
        return null;
      } catch (error) {
        return `the backend does not answer on ${this.socketPath}: ${(error as Error).message}`;
      }
    }
    try {
      await this.control.stats();
      return null;
    } catch (error) {
      return `the control socket ${this.controlPath} does not answer: ${(error as Error).message}`;
    }
  }

  async restart(): Promise<void> {
    throw new Error('an external backend cannot be restarted by the fuzzer');
  }

  lastOutput(): string {
    return '(external backend: its output is not ours)';
  }

  takeLog(): string[] {
    return [];
  }

  openFds(): number | null {
    return null;
  }

  async close(): Promise<void> {
    this.control?.close();
    this.control = null;
  }
}
