import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace } from 'vfio-user-ts';
import { copyBytes } from '../../device/copy-bytes.js';

test('copies exactly the range, for every length and alignment combination', () => {
  const src = byteSpace(Uint8Array.from({ length: 4096 }, (_, i) => (i * 31 + 7) & 0xff).buffer);
  for (const length of [0, 1, 3, 4, 5, 31, 64, 127, 128, 1500]) {
    for (const srcOffset of [0, 1, 2, 3, 12]) {
      for (const dstOffset of [0, 1, 2, 3, 12]) {
        const dst = byteSpace(new ArrayBuffer(2048));
        dst.bytes.fill(0xee);
        copyBytes(dst, dstOffset, src, srcOffset, length);
        const want = new Uint8Array(2048).fill(0xee);
        want.set(src.bytes.subarray(srcOffset, srcOffset + length), dstOffset);
        assert.ok(dst.bytes.every((b, i) => b === want[i]), `length ${length} src +${srcOffset} dst +${dstOffset}`);
      }
    }
  }
});

test.run();
