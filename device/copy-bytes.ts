/**
 * Copies between guest memory and scratch, allocating nothing: the datapath promises no garbage
 * per frame. JavaScript copies a range between two ArrayBuffers natively only through a view
 * object of the range (`set(subarray(...))`; Node 20's Buffer.prototype.copy makes one too), so
 * large copies go to the addon's memmove (`sys.copyBytes`), and small ones, which include every
 * 64-byte frame, stay in JavaScript, in the widest element both sides are aligned to: 8-byte
 * elements through Float64Arrays, else 32-bit words through Int32Arrays, else DataView words.
 *
 * The 8-byte elements are moved as raw bits, never computed with: V8 on x64 loads and stores a
 * Float64Array element with movsd, which keeps every NaN's payload (copy-bytes.test.ts checks
 * all of them through the optimised loop). Fewer, wider stores matter beyond the instruction
 * count: a 64-byte frame is 8 stores instead of 16, so the store buffer holds more frames' worth
 * of writes to lines that must first come from the other CPU (bench/results/2026-12-03-datapath-64b.md).
 *
 * Measured here (Node 20, a shared 2-core machine, so roughly): at 64 bytes one 32-bit word a
 * turn took ~28-31 ns, eight a turn ~17-22 ns, 8-byte elements ~15 ns; the native call 70-90 ns
 * at any size up to 1500, which is ~20 ns more than the view and `set` it replaces, their
 * garbage collection included.
 */
import { sys, type ByteSpace } from 'vfio-user-ts';

/** From this length on, the native copy beats the JavaScript loops despite its call (see above). */
export const NATIVE_COPY_MIN = 256;

export function copyBytes(dst: ByteSpace, dstOffset: number, src: ByteSpace, srcOffset: number, length: number): void {
  if (length >= NATIVE_COPY_MIN) {
    sys.copyBytes(dst.bytes, dstOffset, src.bytes, srcOffset, length);
    return;
  }
  let i: number;
  if (((dstOffset ^ srcOffset) & 7) === 0 && dst.doubles.length > 0 && src.doubles.length > 0) i = copyDoubles(dst, dstOffset, src, srcOffset, length);
  else if (((dstOffset ^ srcOffset) & 3) === 0) i = copyWords(dst, dstOffset, src, srcOffset, length);
  else i = copyUnalignedWords(dst.view, dstOffset, src.view, srcOffset, length);
  const d = dst.view;
  const s = src.view;
  for (; i < length; i++) d.setUint8(dstOffset + i, s.getUint8(srcOffset + i));
}

/** Bytes up to dst's next multiple of `unit` (both sides reach it together); returns how many. */
function copyHead(d: DataView, dstOffset: number, s: DataView, srcOffset: number, length: number, unit: number): number {
  let i = 0;
  for (; i < length && ((dstOffset + i) & (unit - 1)) !== 0; i++) d.setUint8(dstOffset + i, s.getUint8(srcOffset + i));
  return i;
}

/**
 * Both offsets agree mod 8: a byte head, then 8-byte elements, eight a turn. Returns the bytes
 * copied. copyWords is the same loop over Int32Arrays on purpose: one function taking either
 * array type would make every element access in it polymorphic.
 */
function copyDoubles(dst: ByteSpace, dstOffset: number, src: ByteSpace, srcOffset: number, length: number): number {
  const i = copyHead(dst.view, dstOffset, src.view, srcOffset, length, 8);
  const dd = dst.doubles;
  const sd = src.doubles;
  let dAt = (dstOffset + i) >> 3;
  let sAt = (srcOffset + i) >> 3;
  const count = (length - i) >> 3;
  let n = 0;
  for (const last = count - 7; n < last; n += 8) {
    dd[dAt] = sd[sAt]!;
    dd[dAt + 1] = sd[sAt + 1]!;
    dd[dAt + 2] = sd[sAt + 2]!;
    dd[dAt + 3] = sd[sAt + 3]!;
    dd[dAt + 4] = sd[sAt + 4]!;
    dd[dAt + 5] = sd[sAt + 5]!;
    dd[dAt + 6] = sd[sAt + 6]!;
    dd[dAt + 7] = sd[sAt + 7]!;
    dAt += 8;
    sAt += 8;
  }
  for (; n < count; n++) dd[dAt++] = sd[sAt++]!;
  return i + (count << 3);
}

/** Both offsets agree mod 4: a byte head, then 32-bit words, eight a turn. Returns the bytes copied. */
function copyWords(dst: ByteSpace, dstOffset: number, src: ByteSpace, srcOffset: number, length: number): number {
  const i = copyHead(dst.view, dstOffset, src.view, srcOffset, length, 4);
  const dw = dst.words;
  const sw = src.words;
  let dAt = (dstOffset + i) >> 2;
  let sAt = (srcOffset + i) >> 2;
  const count = (length - i) >> 2;
  let n = 0;
  for (const last = count - 7; n < last; n += 8) {
    dw[dAt] = sw[sAt]!;
    dw[dAt + 1] = sw[sAt + 1]!;
    dw[dAt + 2] = sw[sAt + 2]!;
    dw[dAt + 3] = sw[sAt + 3]!;
    dw[dAt + 4] = sw[sAt + 4]!;
    dw[dAt + 5] = sw[sAt + 5]!;
    dw[dAt + 6] = sw[sAt + 6]!;
    dw[dAt + 7] = sw[sAt + 7]!;
    dAt += 8;
    sAt += 8;
  }
  for (; n < count; n++) dw[dAt++] = sw[sAt++]!;
  return i + (count << 2);
}

/** Offsets that disagree mod 4: unaligned 32-bit DataView words. Returns the bytes copied. */
function copyUnalignedWords(d: DataView, dstOffset: number, s: DataView, srcOffset: number, length: number): number {
  let i = 0;
  for (const last = length - 3; i < last; i += 4) d.setUint32(dstOffset + i, s.getUint32(srcOffset + i, true), true);
  return i;
}
