import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace, type ByteSpace } from 'vfio-user-ts';
import { copyBytes, NATIVE_COPY_MIN } from '../../device/copy-bytes.js';

function patterned(length: number): ByteSpace {
  return byteSpace(Uint8Array.from({ length }, (_, i) => (i * 31 + 7) & 0xff).buffer);
}

/** Copies with copyBytes into a filled space and checks every byte against a plain copy. */
function checkCopy(dst: ByteSpace, dstOffset: number, src: ByteSpace, srcOffset: number, length: number, what: string): void {
  dst.bytes.fill(0xee);
  copyBytes(dst, dstOffset, src, srcOffset, length);
  const want = new Uint8Array(dst.bytes.length).fill(0xee);
  want.set(src.bytes.subarray(srcOffset, srcOffset + length), dstOffset);
  assert.ok(dst.bytes.every((b, i) => b === want[i]), what);
}

test('copies exactly the range, for every length and alignment combination', () => {
  const src = patterned(4096);
  // 28-44 and 60-68: around the eight-word turns of the word loop and its remainder.
  for (const length of [0, 1, 3, 4, 5, 28, 31, 32, 33, 35, 36, 40, 44, 60, 64, 68, 127, 128, 252, 1500]) {
    for (const srcOffset of [0, 1, 2, 3, 12]) {
      for (const dstOffset of [0, 1, 2, 3, 12]) {
        checkCopy(byteSpace(new ArrayBuffer(2048)), dstOffset, src, srcOffset, length, `length ${length} src +${srcOffset} dst +${dstOffset}`);
      }
    }
  }
});

test('boundary sizes: around word and native-copy lengths, ending at the last byte of both spaces, spaces not at their buffer start', () => {
  const lengths = [2, 3, 4, 5, 7, 8, 9, NATIVE_COPY_MIN - 4, NATIVE_COPY_MIN - 3, NATIVE_COPY_MIN - 1, NATIVE_COPY_MIN, NATIVE_COPY_MIN + 1, NATIVE_COPY_MIN + 3, 4095, 4096];
  // Guest regions are byte spaces some way into their mapping (GuestMemory's lead).
  const src = byteSpace(patterned(8192).bytes.buffer, 4096, 4096);
  for (const length of lengths) {
    for (const misalign of [0, 1, 2, 3]) {
      const dst = byteSpace(new ArrayBuffer(4096 + 64), 64, 4096);
      checkCopy(dst, 4096 - length, src, 4096 - length, length, `${length} bytes ending at both ends`);
      if (length + misalign <= 4096) {
        checkCopy(dst, 0, src, 4096 - length - misalign, length, `${length} bytes from src end - ${misalign} to dst start`);
        checkCopy(dst, 4096 - length - misalign, src, misalign, length, `${length} bytes from src +${misalign} to dst end - ${misalign}`);
      }
    }
  }
});

test('a space that starts 4 bytes off an 8-byte boundary has no 8-byte view and still copies every byte', () => {
  const src = byteSpace(patterned(4100).bytes.buffer, 4, 4096);
  assert.is(src.doubles.length, 0);
  const dst = byteSpace(new ArrayBuffer(4096));
  assert.ok(dst.doubles.length > 0);
  for (const length of [8, 60, 64, 68, 200]) {
    for (const offset of [0, 4, 12]) checkCopy(dst, offset, src, offset, length, `length ${length} at +${offset}, src space at 4 mod 8`);
  }
});

test('every NaN bit pattern survives the 8-byte path, after the loop is optimised', () => {
  // Signalling and quiet NaNs, both signs, payloads across the 51 bits: a copy through
  // Float64Array must move bits, never canonicalise a NaN. 4000 rounds get the loop optimised.
  const count = 24;
  const src = byteSpace(new ArrayBuffer(count * 8));
  for (let k = 0; k < count; k++) {
    const high = (k & 1 ? 0xfff00000 : 0x7ff00000) | (k & 2 ? 0x80000 : 0) | ((k * 0x2f3d) & 0x7ffff);
    src.view.setUint32(k * 8 + 4, high >>> 0, true);
    src.view.setUint32(k * 8, (k * 0x9e3779b9 + 1) >>> 0, true);
  }
  const dst = byteSpace(new ArrayBuffer(count * 8));
  for (let round = 0; round < 4000; round++) {
    dst.bytes.fill(0);
    copyBytes(dst, 0, src, 0, count * 8 < NATIVE_COPY_MIN ? count * 8 : NATIVE_COPY_MIN - 8);
  }
  assert.equal([...dst.bytes], [...src.bytes]);
});

test('a native-length range past either end throws and copies nothing', () => {
  const src = patterned(1024);
  const dst = byteSpace(new ArrayBuffer(1024));
  assert.throws(() => copyBytes(dst, 1024 - NATIVE_COPY_MIN + 1, src, 0, NATIVE_COPY_MIN), RangeError);
  assert.throws(() => copyBytes(dst, 0, src, 1024 - NATIVE_COPY_MIN + 1, NATIVE_COPY_MIN), RangeError);
  assert.ok(dst.bytes.every((b) => b === 0));
});

test.run();
