// Client for the zcnic device's control socket (`<vhost socket>.ctl`): a unix stream socket
// carrying newline-delimited JSON, one reply line per request line, in order.

import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeviceStats } from '../device/virtio-net.js';

/** What `{"cmd":"stats"}` returns, and what the device prints as its last stdout line. */
export type { DeviceStats } from '../device/virtio-net.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export class DeviceControlError extends Error {
  override name = 'DeviceControlError';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCounterPair(v: unknown): boolean {
  return isRecord(v) && typeof v['frames'] === 'number' && typeof v['bytes'] === 'number';
}

/**
 * Checks the shape of a stats object (from the control socket or the final stdout line) where
 * callers depend on it, and hands the whole object on: the device owns the other fields.
 */
export function parseDeviceStats(v: unknown): DeviceStats {
  if (!isRecord(v)) throw new DeviceControlError('device stats: not a JSON object');
  if (!isCounterPair(v['transmitq']) || !isCounterPair(v['receiveq'])) throw new DeviceControlError('device stats: transmitq and receiveq must be {frames, bytes}');
  const heap = v['heap'];
  if (!isRecord(heap) || typeof heap['usedBytes'] !== 'number') throw new DeviceControlError('device stats: heap.usedBytes must be a number');
  return v as unknown as DeviceStats;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class DeviceControl {
  private buffered = '';
  private readonly pending: Pending[] = [];
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
    private readonly timeoutMs: number,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new DeviceControlError(`control socket ${path}: ${err.message}`)));
    socket.on('close', () => this.fail(new DeviceControlError(`control socket ${path} closed`)));
  }

  /**
   * Connects to the control socket. With `retryForMs`, keeps retrying while the socket does
   * not exist yet or refuses (the device creates it shortly after starting).
   */
  static async connect(
    path: string,
    opts: { timeoutMs?: number; retryForMs?: number } = {},
  ): Promise<DeviceControl> {
    const deadline = Date.now() + (opts.retryForMs ?? 0);
    for (;;) {
      try {
        const socket = await connectOnce(path);
        return new DeviceControl(socket, path, opts.timeoutMs ?? 5000);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const retriable = code === 'ENOENT' || code === 'ECONNREFUSED';
        if (!retriable || Date.now() >= deadline) {
          throw new DeviceControlError(`cannot connect to control socket ${path}: ${(err as Error).message}`);
        }
        await sleep(50);
      }
    }
  }

  /** Sends one JSON request and resolves with the parsed reply line. */
  request(obj: { [key: string]: JsonValue }): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Replies are matched by order, so a late reply would be taken for the next request:
        // the connection is unusable after a timeout.
        this.fail(new DeviceControlError(`control socket ${this.path}: no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.push({ resolve, reject, timer });
      this.socket.write(`${JSON.stringify(obj)}\n`);
    });
  }

  /** `{"cmd":"stats"}`, validated. */
  async stats(): Promise<DeviceStats> {
    const reply = await this.request({ cmd: 'stats' });
    if (isRecord(reply) && typeof reply['error'] === 'string') {
      throw new DeviceControlError(`device refused "stats": ${reply['error']}`);
    }
    return parseDeviceStats(reply);
  }

  /** Closes the connection; pending requests fail. Safe to call more than once. */
  close(): void {
    this.fail(new DeviceControlError(`control socket ${this.path} closed by the client`));
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line === '') continue;
      const p = this.pending.shift();
      if (!p) {
        this.fail(new DeviceControlError(`control socket ${this.path}: unsolicited line: ${line.slice(0, 200)}`));
        return;
      }
      clearTimeout(p.timer);
      try {
        p.resolve(JSON.parse(line));
      } catch {
        p.reject(new DeviceControlError(`control socket ${this.path}: reply is not JSON: ${line.slice(0, 200)}`));
      }
    }
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.socket.destroy();
  }
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    const onError = (err: Error): void => {
      s.destroy();
      reject(err);
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}
