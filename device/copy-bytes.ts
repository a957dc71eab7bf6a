/**
 * Copies between guest memory and scratch without creating an object per call:
 * `Uint8Array.prototype.set` would need a subarray view per copy, so this moves 32-bit words
 * through DataViews (which the JIT inlines) and finishes byte by byte.
 */
export function copyBytes(dst: DataView, dstOffset: number, src: DataView, srcOffset: number, length: number): void {
  let i = 0;
  const words = length - 3;
  for (; i < words; i += 4) dst.setUint32(dstOffset + i, src.getUint32(srcOffset + i, true), true);
  for (; i < length; i++) dst.setUint8(dstOffset + i, src.getUint8(srcOffset + i));
}
