/**
 * Where a vhost-user backend's connections come from. Usually the backend listens and the
 * frontend connects (ListeningSource); QEMU can also listen itself
 * (`-chardev socket,...,server=on,wait=off`) and let the backend connect to it
 * (ConnectingSource), which retries while the socket is absent or refusing and connects again
 * after the frontend went away. The server serves one connection at a time either way.
 */
import { UnixStreamConnection, UnixStreamListener } from '../core/unix-socket.js';
import { isSysError } from '../core/sys.js';

export interface ConnectionSource {
  /** What the source is, for logs: "listening on PATH" or "connecting to PATH". */
  readonly description: string;
  /** Starts handing connections to `onConnection` (the callback owns each one). */
  start(onConnection: (connection: UnixStreamConnection) => void): void;
  /** The connection handed out last has ended (a connector connects again). */
  connectionEnded(): void;
  /** Stops: no more connections (removes a listening socket's file). */
  close(): void;
}

export class ListeningSource implements ConnectionSource {
  private readonly listener: UnixStreamListener;
  readonly description: string;

  constructor(path: string) {
    this.listener = UnixStreamListener.listen(path);
    this.description = `listening on ${path}`;
  }

  start(onConnection: (connection: UnixStreamConnection) => void): void {
    this.listener.onConnection(onConnection);
  }

  connectionEnded(): void {}

  close(): void {
    this.listener.close();
  }
}

export interface ConnectingSourceOptions {
  /** Wait between attempts while the frontend's socket is absent or refusing, in ms (default 100). */
  readonly retryMs?: number;
  /** Told once per run of failed attempts, and when an unexpected error stops a try. */
  readonly log?: (line: string) => void;
}

/** Errors that mean "the frontend is not listening (yet)": keep trying. */
const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ECONNRESET', 'ENOTSOCK']);

export class ConnectingSource implements ConnectionSource {
  readonly description: string;
  private readonly retryMs: number;
  private readonly log: (line: string) => void;
  private onConnection: ((connection: UnixStreamConnection) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private waitingSaid = false;

  constructor(private readonly path: string, options: ConnectingSourceOptions = {}) {
    this.description = `connecting to ${path}`;
    this.retryMs = options.retryMs ?? 100;
    this.log = options.log ?? (() => {});
  }

  start(onConnection: (connection: UnixStreamConnection) => void): void {
    this.onConnection = onConnection;
    this.attempt();
  }

  connectionEnded(): void {
    this.waitingSaid = false;
    this.schedule();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.attempt();
    }, this.retryMs);
  }

  private attempt(): void {
    if (this.closed || !this.onConnection) return;
    let connection: UnixStreamConnection;
    try {
      connection = UnixStreamConnection.connect(this.path);
    } catch (error) {
      const code = isSysError(error) ? error.code : undefined;
      if (!this.waitingSaid) {
        this.waitingSaid = true;
        this.log(`vhost-user: waiting for a frontend at ${this.path} (${code ?? (error as Error).message}); retrying every ${this.retryMs} ms`);
      }
      if (code === undefined || !RETRYABLE.has(code)) this.log(`vhost-user: connecting to ${this.path}: ${(error as Error).message}`);
      this.schedule();
      return;
    }
    this.waitingSaid = false;
    this.onConnection(connection);
  }
}
