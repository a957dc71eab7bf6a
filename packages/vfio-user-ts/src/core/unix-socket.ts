/**
 * Unix stream sockets that can pass fds, on top of sys.ts. Reading is
 * non-blocking and driven by a readable callback; writing is synchronous,
 * which suits the small control messages of device protocols.
 */
import { unlinkSync } from 'node:fs';
import * as sys from './sys.js';
import type { FdWatcher } from './sys.js';

export type { FdWatcher } from './sys.js';

/** How long write() waits for a full socket buffer to drain before it gives up. */
const WRITE_TIMEOUT_MS = 2000;
/** Something to Atomics.wait on: nobody ever notifies it, so each wait is a plain sleep. */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function closedError(what: string): Error {
  return Object.assign(new Error(`${what}: the socket is closed`), { code: 'ERR_SOCKET_CLOSED' });
}

/** A connected unix stream socket. */
export class UnixStreamConnection {
  /** The socket's fd (non-blocking), owned by this object. */
  readonly fd: number;
  #closed = false;
  #watcher: FdWatcher | undefined;
  #onReadable: () => void = () => {};

  /** Takes ownership of a connected socket fd, which must be non-blocking. */
  constructor(fd: number) {
    this.fd = fd;
  }

  /** Connects to a listener at `path`. */
  static connect(path: string): UnixStreamConnection {
    return new UnixStreamConnection(sys.unixConnect(path));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Calls `cb` whenever the socket has data or the peer hung up, until
   * close(); a later call replaces the callback. `cb` should read until
   * read() returns -1 or 0, or it is called again at once.
   */
  onReadable(cb: () => void): void {
    if (this.#closed) throw closedError('onReadable');
    this.#onReadable = cb;
    this.#watcher ??= sys.watchReadable(this.fd, () => this.#onReadable());
  }

  /** Same contract as {@link sys.recvMsg}: bytes read, 0 at end of stream, -1 if none now. */
  read(target: Uint8Array, offset: number, length: number, fdsOut: number[]): number {
    if (this.#closed) throw closedError('read');
    return sys.recvMsg(this.fd, target, offset, length, fdsOut);
  }

  /**
   * Writes all of `bytes`, with `fds` attached to the first byte (fds need at
   * least one byte). While the socket buffer is full it sleeps in short steps,
   * blocking this thread, and throws ETIMEDOUT after about 2 s without progress.
   * The fds stay open here: the receiver gets its own copies.
   */
  write(bytes: Uint8Array, fds: readonly number[] = []): void {
    if (this.#closed) throw closedError('write');
    let offset = 0;
    let pendingFds = fds;
    let deadline = 0;
    while (offset < bytes.length || pendingFds.length > 0) {
      const sent = sys.sendMsg(this.fd, bytes, offset, bytes.length - offset, pendingFds);
      if (sent > 0) {
        offset += sent;
        pendingFds = []; // they went with the first byte sent
        deadline = 0;
        continue;
      }
      const now = Date.now();
      if (deadline === 0) {
        deadline = now + WRITE_TIMEOUT_MS;
      } else if (now >= deadline) {
        throw Object.assign(
          new Error(`write: peer read nothing for ${WRITE_TIMEOUT_MS} ms (${offset} of ${bytes.length} bytes sent)`),
          { code: 'ETIMEDOUT', syscall: 'sendmsg' },
        );
      }
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }

  /** Stops watching and closes the fd; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.stop();
    this.#watcher = undefined;
    sys.close(this.fd);
  }
}

/** A listening unix stream socket. */
export class UnixStreamListener {
  /** The socket file's path; close() removes it. */
  readonly path: string;
  /** The listening socket's fd (non-blocking). */
  readonly fd: number;
  #closed = false;
  #watcher: FdWatcher | undefined;
  #onConnection: (conn: UnixStreamConnection) => void = (conn) => conn.close();

  private constructor(fd: number, path: string) {
    this.fd = fd;
    this.path = path;
  }

  /**
   * Listens at `path` (mode 0600), replacing a socket file left there by an
   * earlier run; any other kind of file there makes it fail with EADDRINUSE.
   */
  static listen(path: string, backlog = 16): UnixStreamListener {
    return new UnixStreamListener(sys.unixListen(path, backlog), path);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Calls `cb` with each new connection, until close(); a later call replaces
   * the callback. The callback owns the connection.
   */
  onConnection(cb: (conn: UnixStreamConnection) => void): void {
    if (this.#closed) throw closedError('onConnection');
    this.#onConnection = cb;
    this.#watcher ??= sys.watchReadable(this.fd, () => {
      while (!this.#closed) {
        const fd = sys.accept(this.fd);
        if (fd < 0) break;
        this.#onConnection(new UnixStreamConnection(fd));
      }
    });
  }

  /** Stops listening, closes the fd and removes the socket file; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher?.stop();
    this.#watcher = undefined;
    sys.close(this.fd);
    try {
      unlinkSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
