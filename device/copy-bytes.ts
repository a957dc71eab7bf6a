/**
 * Copies between guest memory and scratch, allocating nothing: the datapath promises no garbage
 * per frame. JavaScript copies a range between two ArrayBuffers natively only through a view
 * object of the range (`set(subarray(...))`; Node 20's Buffer.prototype.copy makes one too), so
 * large copies go to the addon's memmove (`sys.copyBytes`), and small ones, which include every
 * 64-byte frame, stay in JavaScript: aligned words through Int32Arrays, else DataView words.
 * Measured here (Node 20, a shared 2-core machine, so roughly): the word loop takes ~35 ns at 64
 * bytes and ~75-105 ns at 224-256, the native call 70-90 ns at any size up to 1500, which is
 * ~20 ns more than the view and `set` it replaces, their garbage collection included.
 */
import { sys, type ByteSpace } from 'vfio-user-ts';

/** From this length on, the native copy beats the JavaScript loops despite its call (see above). */
export const NATIVE_COPY_MIN = 256;

export function copyBytes(dst: ByteSpace, dstOffset: number, src: ByteSpace, srcOffset: number, length: number): void {
  if (length >= NATIVE_COPY_MIN) {
    sys.copyBytes(dst.bytes, dstOffset, src.bytes, srcOffset, length);
    return;
  }
  const d = dst.view;
  const s = src.view;
  let i = 0;
  if (((dstOffset ^ srcOffset) & 3) === 0) {
    for (; i < length && ((dstOffset + i) & 3) !== 0; i++) d.setUint8(dstOffset + i, s.getUint8(srcOffset + i));
    const dw = dst.words;
    const sw = src.words;
    let dWord = (dstOffset + i) >> 2;
    let sWord = (srcOffset + i) >> 2;
    const words = (length - i) >> 2;
    let w = 0;
    // Eight words a turn: about 40 % less time than one a turn at 64 bytes (bench/results/2026-12-03-datapath-64b.md).
    for (const last = words - 7; w < last; w += 8) {
      dw[dWord] = sw[sWord]!;
      dw[dWord + 1] = sw[sWord + 1]!;
      dw[dWord + 2] = sw[sWord + 2]!;
      dw[dWord + 3] = sw[sWord + 3]!;
      dw[dWord + 4] = sw[sWord + 4]!;
      dw[dWord + 5] = sw[sWord + 5]!;
      dw[dWord + 6] = sw[sWord + 6]!;
      dw[dWord + 7] = sw[sWord + 7]!;
      dWord += 8;
      sWord += 8;
    }
    for (; w < words; w++) dw[dWord++] = sw[sWord++]!;
    i += words << 2;
  } else {
    for (const last = length - 3; i < last; i += 4) d.setUint32(dstOffset + i, s.getUint32(srcOffset + i, true), true);
  }
  for (; i < length; i++) d.setUint8(dstOffset + i, s.getUint8(srcOffset + i));
}
