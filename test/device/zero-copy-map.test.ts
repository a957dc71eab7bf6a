import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkZeroCopyMap, StreamPayloadProof, ZeroCopyMap } from '../../device/zero-copy-map.js';

// A 4-page buffer of 2048-byte frames whose pages are scattered in guest memory.
const map = new ZeroCopyMap({ frameSize: 2048, headroom: 0, pages: [[0, 0x9000], [4096, 0x3000], [8192, 0x20000], [12288, 0x1000]] });

test('a frame at the start of a buffer frame is found, wherever its page is', () => {
  assert.ok(map.holds(0x9000, 64), 'frame 0');
  assert.ok(map.holds(0x9800, 1500), 'frame 1 (second half of the first page)');
  assert.ok(map.holds(0x3000, 2048), 'frame 2, full length');
  assert.ok(map.holds(0x1800, 60), 'frame 7, last page');
  assert.is(map.pageOf(0x20010), 3, 'pages are sorted by address');
  assert.is(map.pageOf(0x4000), -1);
});

test('anything else is not the user buffer: other pages, mid-frame, overrunning a frame', () => {
  assert.not.ok(map.holds(0x5000, 64), 'a page outside the buffer (a kernel copy)');
  assert.not.ok(map.holds(0x9010, 64), 'inside a frame, not at its start');
  assert.not.ok(map.holds(0x9000, 2049), 'longer than a frame');
  assert.not.ok(map.holds(0x8fff, 1), 'the byte before the first page');
});

test('headroom moves where frames start', () => {
  const withHeadroom = new ZeroCopyMap({ frameSize: 4096, headroom: 256, pages: [[0, 0x4000]] });
  assert.ok(withHeadroom.holds(0x4100, 1500));
  assert.not.ok(withHeadroom.holds(0x4000, 64));
});

test('a stream buffer: stream offset S is buffer offset S mod its size, page by page', () => {
  const stream = new StreamPayloadProof({ stream: 'tcp', pages: [[0, 0x9000], [4096, 0x3000], [8192, 0x20000], [12288, 0x1000]] });
  assert.ok(stream.bufferHolds(0, 0x9000, 4096), 'a whole page');
  assert.ok(stream.bufferHolds(100, 0x9064, 1448), 'mid-page');
  assert.ok(stream.bufferHolds(16384 + 100, 0x9064, 1448), 'the ring wraps at the buffer size');
  assert.ok(stream.bufferHolds(4000, 0x9000 + 4000, 96), 'up to the end of a page');
  assert.not.ok(stream.bufferHolds(4000, 0x9000 + 4000, 97), 'the next byte is on another page (0x3000), not at 0xa000');
  assert.ok(stream.bufferHolds(16383, 0x1fff, 1), 'the last byte');
  assert.not.ok(stream.bufferHolds(101, 0x9064, 1448), 'the right buffer, one byte off');
  assert.not.ok(stream.bufferHolds(0, 0x5000, 64), 'a page outside the buffer (a kernel copy)');
});

test('the control API input is checked', () => {
  assert.match(checkZeroCopyMap({ frameSize: 0, pages: [[0, 0]] }) as string, /frameSize/);
  assert.match(checkZeroCopyMap({ frameSize: 4096, pages: [] }) as string, /pages/);
  assert.match(checkZeroCopyMap({ frameSize: 4096, pages: [[0, 0x1001]] }) as string, /page-aligned/);
  assert.match(checkZeroCopyMap({ frameSize: 4096, headroom: 4096, pages: [[0, 0]] }) as string, /headroom/);
  assert.equal(checkZeroCopyMap({ frameSize: 4096, pages: [[0, 0x1000]] }), { frameSize: 4096, headroom: 0, pages: [[0, 0x1000]] });
  assert.equal(checkZeroCopyMap({ stream: 'udp', pages: [[4096, 0x1000], [0, 0x5000]] }), { stream: 'udp', pages: [[4096, 0x1000], [0, 0x5000]] });
  assert.match(checkZeroCopyMap({ stream: 'sctp', pages: [[0, 0x1000]] }) as string, /stream must be/);
  assert.match(checkZeroCopyMap({ stream: 'tcp', frameSize: 4096, pages: [[0, 0x1000]] }) as string, /no frameSize/);
  assert.match(checkZeroCopyMap({ stream: 'tcp', pages: [[0, 0x1000], [0, 0x2000]] }) as string, /each once/, 'a page twice');
  assert.match(checkZeroCopyMap({ stream: 'tcp', pages: [[0, 0x1000], [8192, 0x2000]] }) as string, /each once/, 'a hole');
  assert.match(checkZeroCopyMap({ stream: 'tcp', pages: [[100, 0x1000]] }) as string, /each once/, 'not page-aligned');
});

test.run();
