/**
 * vhost-user framing over a unix stream connection: reads the 12-byte header (the file
 * descriptors arrive with it), then exactly `size` payload bytes, and hands whole messages on.
 * A header that claims more than MAX_PAYLOAD ends the connection: a size that lies cannot make
 * us allocate or wait for gigabytes.
 */
import * as sys from '../core/sys.js';
import type { UnixStreamConnection } from '../core/unix-socket.js';
import { HEADER_SIZE, HeaderFlags, MAX_PAYLOAD, VERSION } from './protocol.js';
import type { RawMessage } from './message-validator.js';

export class MessageChannel {
  private readonly header = new Uint8Array(HEADER_SIZE);
  private headerFill = 0;
  private payload: Uint8Array | null = null;
  private payloadFill = 0;
  private fds: number[] = [];
  private ended = false;

  constructor(
    private readonly connection: UnixStreamConnection,
    private readonly onMessage: (message: RawMessage) => void,
    /** Called once when the stream ends or breaks; `reason` is null for an orderly close. */
    private readonly onEnd: (reason: string | null) => void,
  ) {
    connection.onReadable(() => this.readAvailable());
  }

  /** Sends a reply to `request` with `payload` (and `fds`, e.g. GET_INFLIGHT_FD's memfd). */
  reply(request: number, payload: Uint8Array, fds: readonly number[] = []): void {
    this.send(request, VERSION | HeaderFlags.reply, payload, fds);
  }

  /** Sends a message (the frontend side of the protocol uses this too). */
  send(request: number, flags: number, payload: Uint8Array, fds: readonly number[]): void {
    const bytes = new Uint8Array(HEADER_SIZE + payload.length);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, request, true);
    view.setUint32(4, flags, true);
    view.setUint32(8, payload.length, true);
    bytes.set(payload, HEADER_SIZE);
    this.connection.write(bytes, fds);
  }

  /** Closes the connection (and any fds of a message half read). */
  close(reason: string | null): void {
    if (this.ended) return;
    this.ended = true;
    for (const fd of this.fds) sys.close(fd);
    this.fds = [];
    this.connection.close();
    this.onEnd(reason);
  }

  private readAvailable(): void {
    try {
      while (!this.ended) {
        if (this.headerFill < HEADER_SIZE) {
          const n = this.connection.read(this.header, this.headerFill, HEADER_SIZE - this.headerFill, this.fds);
          if (n < 0) return;
          if (n === 0) return this.close(this.headerFill === 0 && this.fds.length === 0 ? null : 'connection closed in the middle of a message');
          this.headerFill += n;
          if (this.headerFill < HEADER_SIZE) continue;
          const view = new DataView(this.header.buffer);
          const flags = view.getUint32(4, true);
          const size = view.getUint32(8, true);
          if ((flags & HeaderFlags.versionMask) !== VERSION) return this.close(`message with protocol version ${flags & HeaderFlags.versionMask}, expected ${VERSION}`);
          if (size > MAX_PAYLOAD) return this.close(`message claims a ${size}-byte payload, more than ${MAX_PAYLOAD}`);
          this.payload = new Uint8Array(size);
          this.payloadFill = 0;
        }
        const payload = this.payload!;
        if (this.payloadFill < payload.length) {
          const n = this.connection.read(payload, this.payloadFill, payload.length - this.payloadFill, this.fds);
          if (n < 0) return;
          if (n === 0) return this.close('connection closed in the middle of a message');
          this.payloadFill += n;
          if (this.payloadFill < payload.length) continue;
        }
        const view = new DataView(this.header.buffer);
        const message: RawMessage = { request: view.getUint32(0, true), flags: view.getUint32(4, true), payload, fds: this.fds };
        this.fds = [];
        this.headerFill = 0;
        this.payload = null;
        this.onMessage(message);
      }
    } catch (error) {
      this.close(`socket error: ${(error as Error).message}`);
    }
  }
}
