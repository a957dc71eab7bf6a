/**
 * Writes frames to a classic pcap file (LINKTYPE_ETHERNET, microsecond timestamps), which tshark
 * and Wireshark read. Frames are appended to a buffer and written with one write per flush, so a
 * burst costs one syscall; the worker flushes when idle so the file is current while it runs.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { byteSpace, type ByteSpace } from 'vfio-user-ts';
import { copyBytes } from './copy-bytes.js';

const BUFFER_BYTES = 1 << 20;
const RECORD_HEADER = 16;
const SNAPLEN = 65535;

export class PcapWriter {
  private readonly fd: number;
  private readonly buffer = new Uint8Array(BUFFER_BYTES);
  private readonly space: ByteSpace = byteSpace(this.buffer.buffer);
  private used = 0;
  frames = 0;

  /** Creates (truncates) `path` and writes the file header. */
  constructor(path: string) {
    this.fd = openSync(path, 'w', 0o644);
    const v = this.space.view;
    v.setUint32(0, 0xa1b2c3d4, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setUint32(16, SNAPLEN, true);
    v.setUint32(20, 1, true);
    this.used = 24;
  }

  /** Appends one frame (cut to the snap length). */
  write(src: ByteSpace, srcOffset: number, length: number, nowMs: number): void {
    const captured = length < SNAPLEN ? length : SNAPLEN;
    if (this.used + RECORD_HEADER + captured > BUFFER_BYTES) this.flush();
    const v = this.space.view;
    const at = this.used;
    const micros = Math.floor(nowMs * 1000);
    v.setUint32(at, Math.floor(micros / 1e6), true);
    v.setUint32(at + 4, micros % 1e6, true);
    v.setUint32(at + 8, captured, true);
    v.setUint32(at + 12, length, true);
    copyBytes(this.space, at + RECORD_HEADER, src, srcOffset, captured);
    this.used = at + RECORD_HEADER + captured;
    this.frames++;
  }

  flush(): void {
    let done = 0;
    while (done < this.used) done += writeSync(this.fd, this.buffer, done, this.used - done);
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}
