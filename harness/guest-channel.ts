// The host side of the guest's KTAP port (virtio-serial "org.zcnic.ktap") when QEMU exposes it
// as a unix socket it listens on (qemu.ts, ktapChardev: 'socket').
//
// Guest -> host: KTAP lines, and control requests "#zcnic-ctl <request>" (a test asking the
// device something, e.g. its counters). Host -> guest: one answer line per request.
// Requests are answered one at a time, in the order they arrived, so a guest that writes
// several requests before reading gets its answers in that order. A handler that fails is
// answered "error <message>" (what zcnic_ctl in guest/suites/lib/common.sh treats as a
// failure) rather than left unanswered: the guest is blocked reading.
//
// The guest's /init waits up to 10 s for the host side to be connected before it falls back
// to the console, so connect soon after QEMU starts; connecting retries until QEMU has
// created the socket.

import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const CONTROL_PREFIX = '#zcnic-ctl ';

export class GuestChannelError extends Error {
  override name = 'GuestChannelError';
}

export interface GuestChannelOptions {
  /** The unix socket QEMU listens on (QemuOptions.ktapPath). */
  path: string;
  /** Every line that is not a control request, without its newline, in order. */
  onLine: (line: string) => void;
  /** Answers a control request (the text after "#zcnic-ctl "). Without it: "error no control handler". */
  onControl?: (request: string) => Promise<string>;
  /** Give up connecting after this long (default 30 s). */
  connectTimeoutMs?: number;
  /** Pause between attempts while the socket is missing or refusing (default 50 ms). */
  retryIntervalMs?: number;
  /** Stop retrying (e.g. QEMU exited before creating the socket). */
  signal?: AbortSignal;
}

export interface GuestChannel {
  readonly path: string;
  /** Resolves when the connection is gone (QEMU exited, or close()); never rejects. */
  readonly closed: Promise<void>;
  /** Socket errors, and exceptions thrown by onLine (which are caught so reading goes on). */
  readonly errors: readonly Error[];
  /** Everything the guest sent, verbatim (control requests included): for --keep and debugging. */
  raw(): string;
  /** Only the KTAP lines, newline-terminated: what a saved .ktap file should hold. */
  ktapText(): string;
  /** Control requests answered so far. */
  readonly controlRequests: number;
  /** Ends the connection. Pending answers are dropped. */
  close(): Promise<void>;
}

/** One line, safe to send: the guest reads answers with `read`, so no newline may be inside. */
export function answerLine(answer: string): string {
  return answer.replace(/\r?\n|\r/g, ' ');
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    const onError = (err: Error) => {
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

/** Connects (retrying until QEMU listens) and starts reading. */
export async function connectGuestChannel(o: GuestChannelOptions): Promise<GuestChannel> {
  const timeoutMs = o.connectTimeoutMs ?? 30_000;
  const retryMs = o.retryIntervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let socket: Socket;
  for (;;) {
    if (o.signal?.aborted) throw new GuestChannelError(`connecting to ${o.path}: aborted`);
    try {
      socket = await connectOnce(o.path);
      break;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // Missing or refusing: QEMU has not created or is not yet listening on the socket.
      const retriable = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EAGAIN';
      if (!retriable) throw new GuestChannelError(`cannot connect to the guest's KTAP socket ${o.path}: ${e.message}`);
      if (Date.now() >= deadline) {
        throw new GuestChannelError(`no QEMU listening on ${o.path} after ${timeoutMs} ms (last: ${e.code})`);
      }
      await sleep(retryMs);
    }
  }
  return new Channel(socket, o);
}

class Channel implements GuestChannel {
  readonly path: string;
  readonly closed: Promise<void>;
  readonly errors: Error[] = [];
  controlRequests = 0;
  private readonly chunks: string[] = [];
  private readonly ktapLines: string[] = [];
  private partial = '';
  /** The tail of the request queue: each request waits for the one before it. */
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: Socket,
    private readonly o: GuestChannelOptions,
  ) {
    this.path = o.path;
    // utf8 decoding in the stream keeps a character split across two chunks whole.
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.errors.push(new GuestChannelError(`KTAP socket ${this.path}: ${err.message}`)));
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        // A last line without its newline is still a line (the guest may die mid-write).
        if (this.partial !== '') {
          const last = this.partial;
          this.partial = '';
          this.onCompleteLine(last);
        }
        resolve();
      });
    });
  }

  raw(): string {
    return this.chunks.join('');
  }

  ktapText(): string {
    return this.ktapLines.map((l) => `${l}\n`).join('');
  }

  async close(): Promise<void> {
    this.socket.end();
    this.socket.destroy();
    await this.closed;
  }

  private onData(chunk: string): void {
    this.chunks.push(chunk);
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) this.onCompleteLine(l);
  }

  private onCompleteLine(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith(CONTROL_PREFIX)) {
      const request = line.slice(CONTROL_PREFIX.length);
      this.queue = this.queue.then(() => this.answer(request));
      return;
    }
    this.ktapLines.push(line);
    try {
      this.o.onLine(line);
    } catch (err) {
      this.errors.push(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async answer(request: string): Promise<void> {
    let reply: string;
    try {
      if (!this.o.onControl) throw new Error('no control handler');
      reply = await this.o.onControl(request);
    } catch (err) {
      reply = `error ${err instanceof Error ? err.message : String(err)}`;
    }
    this.controlRequests++;
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(`${answerLine(reply)}\n`);
  }
}
