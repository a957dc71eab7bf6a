/**
 * In-process cost of the transmit and receive paths per frame, without a peer: a fake driver
 * refills a 256-entry ring and the queue drains it, over and over. Nanoseconds per frame on
 * this machine; steadier than the end-to-end bench for seeing what a change to the hot path
 * does. `node dist/bench/datapath-micro.js [seconds] [only cases whose name contains this]`
 */
import { byteSpace } from 'vfio-user-ts';
import { Counter, createCounters } from '../device/counters.js';
import { describeQueueError, queueErrorNames, type QueueErrorReporter } from '../device/queue-errors.js';
import { ReceiveQueue } from '../device/receive-queue.js';
import { GenPort } from '../device/ports/gen.js';
import { TransmitQueue } from '../device/transmit-queue.js';
import { FrameVerifier } from '../device/frame-verifier.js';
import { SinkPort } from '../device/ports/sink.js';
import { QueuePair } from '../device/queue-pair.js';
import { FakeGuest, FakeQueue } from '../test/support/fake-driver.js';

const SIZE = 256;
const HEADER = 12;
const seconds = Number(process.argv[2] ?? 2);
/** Only the cases whose name contains this (e.g. for a profile of one path). */
const only = process.argv[3] ?? '';

/** The driver's side: makes every one of `heads` available again, as one avail.idx update. */
function refill(q: FakeQueue, heads: readonly number[]): () => void {
  let idx = 0;
  return () => {
    for (const head of heads) {
      guest.setU16(q.availAddr + 4 + 2 * (idx % SIZE), head);
      idx = (idx + 1) & 0xffff;
    }
    guest.setU16(q.availAddr + 2, idx);
  };
}

function measure(name: string, fill: () => void, drain: () => number): void {
  if (!name.includes(only)) return;
  let frames = 0;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < deadline) {
    for (let i = 0; i < 100; i++) {
      fill();
      frames += drain();
    }
  }
  const ns = ((performance.now() - start) * 1e6) / frames;
  console.log(`${name.padEnd(36)} ${ns.toFixed(1).padStart(7)} ns/frame  (${(1000 / ns).toFixed(2)} Mpps, refill included)`);
}

const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 16 << 20 }]);
const counters = createCounters();
const reporter: QueueErrorReporter = { queueError: (_q, kind, _fatal, head, a, b, c) => console.log(queueErrorNames[kind], describeQueueError(kind, head, a, b, c)) };

for (const [name, layout] of [
  ['transmitq 64 B, one buffer', [HEADER + 64]],
  ['transmitq 64 B, header alone', [HEADER, 64]],
  ['transmitq 1500 B, one buffer', [HEADER + 1500]],
] as const) {
  const q = new FakeQueue(guest, SIZE);
  const heads = Array.from({ length: SIZE }, () => q.addChain(layout.map((length) => ({ length }))));
  const tx = new TransmitQueue(guest.memory, q.vring(), true, HEADER, counters, { transmitted() {} }, reporter, 1);
  measure(
    name,
    refill(q, heads),
    () => tx.processBurst(SIZE),
  );
}

{
  // What make bench's zcnic transmitq case does per frame: the sink port with verification on
  // (the frame copied out of guest memory into scratch and its headers read).
  const q = new FakeQueue(guest, SIZE);
  const heads = Array.from({ length: SIZE }, () => q.addChain([{ length: HEADER + 64 }]));
  const pair = new QueuePair(1, null, counters);
  pair.port = new SinkPort();
  pair.verifier = new FrameVerifier(counters);
  const tx = new TransmitQueue(guest.memory, q.vring(), true, HEADER, counters, pair, reporter, 1);
  pair.tx = tx;
  measure(
    'transmitq 64 B -> sink + verify',
    refill(q, heads),
    () => tx.processBurst(SIZE),
  );
}

for (const frameLength of [64, 1500]) {
  const q = new FakeQueue(guest, SIZE);
  const heads = Array.from({ length: SIZE }, () => q.addChain([{ length: 2048, writable: true }]));
  const rx = new ReceiveQueue(guest.memory, q.vring(), true, HEADER, true, counters, reporter, 0);
  const frame = byteSpace(new ArrayBuffer(frameLength));
  measure(
    `receiveq ${frameLength} B, mergeable`,
    refill(q, heads),
    () => {
      rx.beginBurst();
      let n = 0;
      while (rx.receive(frame, 0, frameLength)) n++;
      rx.endBurst();
      return n;
    },
  );
}
{
  // The gen port feeding the receive queue: what `zcnic device --port gen` does per frame.
  const q = new FakeQueue(guest, SIZE);
  const heads = Array.from({ length: SIZE }, () => q.addChain([{ length: 2048, writable: true }]));
  const rx = new ReceiveQueue(guest.memory, q.vring(), true, HEADER, true, counters, reporter, 0);
  const gen = new GenPort({ receive: (src, offset, length) => rx.receive(src, offset, length) }, { size: 64, count: 0, pps: 0 }, '52:54:00:12:34:56', 0);
  measure(
    'gen 64 B into receiveq',
    refill(q, heads),
    () => {
      const before = counters[Counter.rxFrames]!;
      rx.beginBurst();
      gen.service(performance.now());
      rx.endBurst();
      return counters[Counter.rxFrames]! - before;
    },
  );
}
guest.close();
