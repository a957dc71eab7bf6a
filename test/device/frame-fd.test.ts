// FrameFd's receive side over a real SOCK_SEQPACKET pair (one frame per read, as a tap and a
// wire give them): a frame that finds no receive buffer is dropped and counted, or, for an fd
// that holds back (a tap), kept and delivered first once buffers come, with nothing lost and
// the order kept.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sys, type ByteSpace } from 'vfio-user-ts';
import { Counter, createCounters } from '../../device/counters.js';
import { FrameFd } from '../../device/ports/frame-fd.js';
import { ServiceAgain, type FrameReceiver } from '../../device/ports/port.js';

/** Takes frames (their first byte) while it has buffers. */
class Receiver implements FrameReceiver {
  readonly got: number[] = [];
  constructor(public buffers: number) {}
  receive(src: ByteSpace, srcOffset: number, _length: number): boolean {
    if (this.buffers === 0) return false;
    this.buffers--;
    this.got.push(src.bytes[srcOffset]!);
    return true;
  }
}

/** Frames 1..count of 60 bytes, each starting with its number, written into the pair's other end. */
function withFrames(count: number, run: (fd: FrameFd, counters: Float64Array) => void, holds: boolean): void {
  const [mine, theirs] = sys.socketPair();
  const fd = new FrameFd(mine, 'test pair', 0);
  fd.holdsWhenNoBuffers = holds;
  try {
    const frame = new Uint8Array(60);
    for (let i = 1; i <= count; i++) {
      frame[0] = i;
      assert.is(sys.writeFd(theirs, frame, 0, frame.length), frame.length);
    }
    run(fd, createCounters());
  } finally {
    fd.close();
    sys.close(theirs);
  }
}

test('a frame without a receive buffer is dropped and counted (a wire)', () => {
  withFrames(
    3,
    (fd, counters) => {
      const receiver = new Receiver(1);
      fd.readInto(receiver, counters);
      assert.equal(receiver.got, [1]);
      assert.is(counters[Counter.rxNoBuffers], 2);
    },
    false,
  );
});

test('a tap holds the frame back until buffers come, and delivers it first', () => {
  withFrames(
    3,
    (fd, counters) => {
      const receiver = new Receiver(1);
      assert.is(fd.readInto(receiver, counters), ServiceAgain.whenBuffers);
      assert.equal(receiver.got, [1]);
      // Still no buffer: the held frame stays, nothing more is read or dropped.
      assert.is(fd.readInto(receiver, counters), ServiceAgain.whenBuffers);
      receiver.buffers = 10;
      assert.is(fd.readInto(receiver, counters), ServiceAgain.onEvent);
      assert.equal(receiver.got, [1, 2, 3]);
      assert.is(counters[Counter.rxNoBuffers], 0);
    },
    true,
  );
});

test('a port reading with no receiver drops and counts the held frame like the ones after it', () => {
  withFrames(
    2,
    (fd, counters) => {
      assert.is(fd.readInto(new Receiver(0), counters), ServiceAgain.whenBuffers);
      fd.readInto(null, counters);
      assert.is(counters[Counter.rxNoBuffers], 2);
    },
    true,
  );
});

test.run();
