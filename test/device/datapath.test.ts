/**
 * The datapath in-process, woken by real eventfd kicks and signalling real call eventfds, with
 * an in-process driver on a memfd: what a worker thread does, without the thread.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DescFlags, FeatureBit, featureMask, sys } from 'vfio-user-ts';
import { createCounters, describeCounters } from '../../device/counters.js';
import { Datapath } from '../../device/datapath/datapath.js';
import type { DatapathMode, FromDatapath } from '../../device/datapath/messages.js';
import type { PortOptions } from '../../device/ports/port.js';
import { TestFrameVerdict, verifyTestFrame } from '../../device/test-frame.js';
import { FakeGuest, FakePackedQueue, FakeQueue } from '../support/fake-driver.js';

const FEATURES = featureMask(FeatureBit.version1, FeatureBit.netMrgRxbuf, FeatureBit.ringEventIdx, FeatureBit.ringIndirectDesc);
const HEADER = 12;

function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(poll, 5));
    poll();
  });
}

function harness(port: PortOptions, mode: DatapathMode = 'kick', pcapPath: string | null = null, features = FEATURES) {
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 8 << 20 }]);
  const counters = createCounters();
  const messages: FromDatapath[] = [];
  const datapath = new Datapath({ counters: counters.buffer as SharedArrayBuffer, pairs: [0], mode, port, pcapPath, verify: true }, (m) => messages.push(m));
  datapath.handle({ type: 'memory', regions: guest.regions });
  const queues = [new FakeQueue(guest, 256), new FakeQueue(guest, 256)];
  const kicks = queues.map(() => sys.eventfdCreate(0, true));
  const calls = queues.map(() => sys.eventfdCreate(0, true));
  queues.forEach((q, i) =>
    datapath.handle({ type: 'start', start: { queue: i, addresses: q.addresses, base: 0, kickFd: kicks[i]!, callFd: calls[i]!, features } }),
  );
  const close = () => {
    datapath.handle({ type: 'shutdown' });
    for (const fd of [...kicks, ...calls]) sys.close(fd);
    guest.close();
  };
  return { guest, counters, messages, datapath, rxq: queues[0]!, txq: queues[1]!, kicks, calls, close };
}

function txChain(q: FakeQueue, frame: Uint8Array): void {
  q.makeAvailable(q.addChain([{ length: HEADER, data: new Uint8Array(HEADER) }, { length: frame.length, data: frame }]));
}

const sink: PortOptions = { port: 'sink', gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56' };

test('a kick wakes the transmit side; used buffers are returned and the driver is called', async () => {
  const h = harness(sink);
  try {
    assert.equal(h.messages.map((m) => m.type), ['memoryMapped', 'started', 'started']);
    for (let i = 0; i < 100; i++) txChain(h.txq, new Uint8Array(60).fill(i));
    h.txq.setUsedEvent(0);
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => describeCounters(h.counters).transmitq.frames === 100, '100 frames');
    assert.is(h.txq.usedIdx(), 100);
    await until(() => sys.eventfdRead(h.calls[1]!) > 0, 'a call on the transmit queue');
    await until(() => h.txq.availEvent() === 100, 'kicks re-enabled (avail_event = 100) after the ring ran dry');
  } finally {
    h.close();
  }
});

test('gen fills the receive queue with verifiable frames, waiting for buffers instead of dropping', async () => {
  const h = harness({ ...sink, port: 'gen', gen: { size: 100, count: 300, pps: 0 } });
  try {
    const bufferOfHead = new Map<number, number>();
    const postBuffers = (n: number) => {
      for (let i = 0; i < n; i++) {
        const gpa = h.guest.alloc(2048);
        const head = h.rxq.addChain([{ gpa, length: 2048, writable: true }]);
        bufferOfHead.set(head, gpa);
        h.rxq.makeAvailable(head);
      }
      sys.eventfdWrite(h.kicks[0]!, 1);
    };
    const result = { flow: 0, seq: 0 };
    // The used ring has 256 slots: check each batch before the next one overwrites it.
    const verifyUsed = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const { id, length } = h.rxq.usedElement(i);
        assert.is(length, HEADER + 100);
        const bytes = h.guest.read(bufferOfHead.get(id)!, length);
        assert.is(verifyTestFrame(new DataView(bytes.buffer), HEADER, 100, result), TestFrameVerdict.verified);
        assert.is(result.seq, i, 'in sequence');
      }
    };
    postBuffers(200);
    await until(() => h.rxq.usedIdx() === 200, '200 frames placed');
    assert.is(describeCounters(h.counters).receiveq.noBuffers, 0);
    verifyUsed(0, 200);
    postBuffers(200);
    await until(() => h.rxq.usedIdx() === 300, 'the other 100 after more buffers were posted');
    await new Promise((r) => setTimeout(r, 50));
    assert.is(h.rxq.usedIdx(), 300, 'exactly the count, no more');
    verifyUsed(200, 300);
  } finally {
    h.close();
  }
});

test('reflect returns each transmitted frame on the receive queue; a pcap records both directions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-dp-'));
  const pcap = join(dir, 'reflect.pcap');
  const h = harness({ ...sink, port: 'reflect' }, 'kick', pcap);
  try {
    const rxBuffer = h.guest.alloc(2048);
    h.rxq.makeAvailable(h.rxq.addChain([{ gpa: rxBuffer, length: 2048, writable: true }]));
    const frame = Uint8Array.from({ length: 80 }, (_, i) => i);
    txChain(h.txq, frame);
    txChain(h.txq, frame);
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => describeCounters(h.counters).transmitq.frames === 2, 'two frames');
    const c = describeCounters(h.counters);
    assert.is(c.receiveq.frames, 1);
    assert.is(c.receiveq.noBuffers, 1, 'the second had no receive buffer: dropped and counted');
    assert.equal([...h.guest.read(rxBuffer + HEADER, 80)], [...frame]);
    h.close();
    const file = readFileSync(pcap);
    assert.is(file.readUInt32LE(0), 0xa1b2c3d4);
    assert.is(file.length, 24 + 3 * (16 + 80), 'two transmitted and one received frame');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IN_ORDER: the transmitq marks a burst used with one element, the receiveq gives every buffer its own length', async () => {
  const h = harness({ ...sink, port: 'reflect' }, 'kick', null, FEATURES | featureMask(FeatureBit.inOrder));
  try {
    for (let slot = 0; slot < 256; slot++) h.txq.setUsedId(slot, 0xdead);
    const rxHeads: number[] = [];
    for (let i = 0; i < 10; i++) {
      rxHeads.push(h.rxq.addChain([{ length: 2048, writable: true }]));
      h.rxq.makeAvailable(rxHeads[i]!);
    }
    const txHeads: number[] = [];
    for (let i = 0; i < 10; i++) {
      txChain(h.txq, new Uint8Array(60 + i).fill(i));
      txHeads.push(2 * i);
    }
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => h.rxq.usedIdx() === 10, 'ten frames reflected');
    assert.is(h.txq.usedIdx(), 10);
    assert.equal(h.txq.usedElement(0), { id: txHeads[9]!, length: 0 }, 'one element, the last chain\'s, in the first slot');
    for (let slot = 1; slot < 10; slot++) assert.is(h.txq.usedElement(slot).id, 0xdead, `transmit used slot ${slot} not written`);
    for (let i = 0; i < 10; i++) assert.equal(h.rxq.usedElement(i), { id: rxHeads[i]!, length: HEADER + 60 + i }, `receive element ${i}`);
  } finally {
    h.close();
  }
});

test('a hostile transmit ring is reported as fatal and the datapath keeps serving the other queue', async () => {
  const h = harness({ ...sink, port: 'gen', gen: { size: 64, count: 1, pps: 0 } });
  try {
    h.txq.setAvailIdx(1000);
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => h.messages.some((m) => m.type === 'queueError'), 'the queue error');
    const error = h.messages.find((m) => m.type === 'queueError');
    assert.equal(error && { kind: error.kind, fatal: error.fatal, queue: error.queue }, { kind: 'availIndexJump', fatal: true, queue: 1 });
    const gpa = h.guest.alloc(2048);
    h.rxq.makeAvailable(h.rxq.addChain([{ gpa, length: 2048, writable: true }]));
    sys.eventfdWrite(h.kicks[0]!, 1);
    await until(() => h.rxq.usedIdx() === 1, 'the receive side still works');
  } finally {
    h.close();
  }
});

test('a flood of bad chains: every one counted, at most one message per kind per second', async () => {
  const h = harness(sink);
  try {
    const started = Date.now();
    const rounds = 5;
    const perRound = 100;
    for (let round = 1; round <= rounds; round++) {
      for (let i = 0; i < perRound; i++) {
        h.txq.makeAvailable(h.txq.addChain([{ length: HEADER + 60, writable: true }]));
        h.txq.makeAvailable(h.txq.addChain([{ length: 4 }]));
      }
      sys.eventfdWrite(h.kicks[1]!, 1);
      await until(() => h.txq.usedIdx() === 2 * perRound * round, `round ${round} returned`);
    }
    const elapsed = Date.now() - started;
    const errors = describeCounters(h.counters).errors;
    assert.is(errors.txWriteOnlyBuffer, rounds * perRound, 'every write-only chain counted');
    assert.is(errors.txHeaderTooShort, rounds * perRound, 'every short chain counted');
    const reports = (kind: string) => h.messages.filter((m) => m.type === 'queueError' && m.kind === kind);
    const allowed = 1 + Math.floor(elapsed / 1000);
    assert.ok(reports('txWriteOnlyBuffer').length <= allowed, `${reports('txWriteOnlyBuffer').length} txWriteOnlyBuffer messages in ${elapsed} ms`);
    assert.ok(reports('txHeaderTooShort').length <= allowed, `${reports('txHeaderTooShort').length} txHeaderTooShort messages in ${elapsed} ms`);
    // A second later the next one is reported again, with how many were held back.
    const first = reports('txWriteOnlyBuffer').length;
    await new Promise((resolve) => setTimeout(resolve, 1050));
    h.txq.makeAvailable(h.txq.addChain([{ length: HEADER + 60, writable: true }]));
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => reports('txWriteOnlyBuffer').length === first + 1, 'the next report');
    const last = reports('txWriteOnlyBuffer').at(-1);
    assert.ok(last?.type === 'queueError' && /more of this kind since the last report/.test(last.detail), last?.type === 'queueError' ? last.detail : '');
    assert.is(describeCounters(h.counters).errors.txWriteOnlyBuffer, rounds * perRound + 1);
  } finally {
    h.close();
  }
});

test('after a restart, a frontend that waits for interrupts (no polling) is called for what its dead device published', async () => {
  // The driver keeps at most 4 frames in flight and reaps completions only when called. Its
  // previous device completed the 4 in flight (used.idx 4) and was killed before the call.
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 8 << 20 }]);
  const counters = createCounters();
  const datapath = new Datapath({ counters: counters.buffer as SharedArrayBuffer, pairs: [0], mode: 'kick', port: sink, pcapPath: null, verify: false }, () => {});
  const txq = new FakeQueue(guest, 8);
  const kick = sys.eventfdCreate(0, true);
  const call = sys.eventfdCreate(0, true);
  try {
    datapath.handle({ type: 'memory', regions: guest.regions });
    const total = 12;
    const inFlight = 4;
    let sent = 0;
    for (; sent < inFlight; sent++) txChain(txq, new Uint8Array(60));
    txq.setUsedEvent(sent - 1); // "call me when all four are done"
    txq.setUsedIdx(sent);
    datapath.handle({ type: 'start', start: { queue: 1, addresses: txq.addresses, base: sent, kickFd: kick, callFd: call, features: FEATURES } });
    let reaped = 0;
    const deadline = Date.now() + 2000;
    while (reaped < total) {
      if (Date.now() > deadline) assert.unreachable(`the driver waited in vain: ${reaped} of ${total} frames reaped, used.idx ${txq.usedIdx()}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (sys.eventfdRead(call) === 0) continue;
      reaped = txq.usedIdx();
      for (; sent < total && sent - reaped < inFlight; sent++) txChain(txq, new Uint8Array(60));
      txq.setUsedEvent(sent - 1);
      sys.eventfdWrite(kick, 1);
    }
    assert.is(describeCounters(counters).transmitq.frames, total - inFlight, 'the new device sent the frames given to it');
  } finally {
    datapath.handle({ type: 'shutdown' });
    sys.close(kick);
    sys.close(call);
    guest.close();
  }
});

test('stop returns where the driver resumes', async () => {
  const h = harness(sink);
  try {
    for (let i = 0; i < 5; i++) txChain(h.txq, new Uint8Array(60));
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => describeCounters(h.counters).transmitq.frames === 5, 'five frames');
    h.datapath.handle({ type: 'stop', queue: 1 });
    assert.equal(h.messages.at(-1), { type: 'stopped', queue: 1, base: 5 });
  } finally {
    h.close();
  }
});

test('reflect: frames placed before a receive ring breaks are still published to the driver', async () => {
  const h = harness({ ...sink, port: 'reflect' });
  try {
    // Two good receive chains, then one whose buffer is outside guest memory.
    for (let i = 0; i < 2; i++) h.rxq.makeAvailable(h.rxq.addChain([{ gpa: h.guest.alloc(2048), length: 2048, writable: true }]));
    const bad = h.rxq.addChain([{ gpa: h.guest.alloc(2048), length: 2048, writable: true }]);
    h.rxq.setDescriptor(bad, 0x10, 2048, DescFlags.write, 0);
    h.rxq.makeAvailable(bad);
    for (let i = 0; i < 3; i++) txChain(h.txq, new Uint8Array(60).fill(i));
    sys.eventfdWrite(h.kicks[1]!, 1);
    await until(() => h.messages.some((m) => m.type === 'queueError'), 'the receive ring error');
    await until(() => h.rxq.usedIdx() === 2, 'the two frames placed before the error, published');
    const stats = describeCounters(h.counters);
    assert.is(stats.receiveq.frames, 2);
    assert.is(stats.errors.bufferOutsideMemory, 1);
    assert.is(stats.receiveq.noBuffers, 1, 'the third frame had nowhere to go');
    assert.is(stats.transmitq.frames, 3);
    assert.ok(sys.eventfdRead(h.calls[0]!) > 0, 'and the driver is told');
  } finally {
    h.close();
  }
});

test('strict stall: the first refusal stops the transmit queue; leaving stall mode (begin) flushes and resumes it', async () => {
  const h = harness(sink);
  try {
    const strict = (on: boolean) => h.datapath.handle({ type: 'txPolicy', policy: { requireLinearHeader: on, linearHeaderRefusal: 'stall', zeroCopyMap: null } });
    const kick = () => sys.eventfdWrite(h.kicks[1]!, 1);
    const linear = (fill: number) => h.txq.makeAvailable(h.txq.addChain([{ length: HEADER + 60, data: new Uint8Array(HEADER + 60).fill(fill, HEADER) }]));
    strict(true);
    h.txq.setUsedEvent(0);
    for (let i = 0; i < 10; i++) txChain(h.txq, new Uint8Array(60).fill(i)); // header alone: refused
    kick();
    await until(() => describeCounters(h.counters).chainShapes.linearHeaderViolations === 1, 'the refusal');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.is(h.txq.usedIdx(), 1, 'only the refused chain completes');
    linear(1);
    kick();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.is(h.txq.usedIdx(), 1, 'a stalled queue takes no chain, not even a linear one');
    assert.is(describeCounters(h.counters).transmitq.frames, 0);
    sys.eventfdRead(h.calls[1]!);
    h.txq.setUsedEvent(1);
    strict(false); // what the harness's begin sends
    assert.is(h.txq.usedIdx(), 11, 'the 10 chains posted while stalled are flushed before the answer');
    assert.equal(h.messages.at(-1)?.type, 'txPolicySet');
    assert.is(describeCounters(h.counters).transmitq.frames, 0, 'flushed, not sent');
    await until(() => sys.eventfdRead(h.calls[1]!) > 0, 'the driver is called for the flushed chains');
    linear(2);
    kick();
    await until(() => describeCounters(h.counters).transmitq.frames === 1, 'a frame after the reset');
    assert.is(h.txq.usedIdx(), 12);
  } finally {
    h.close();
  }
});

test('RING_PACKED: the queues start on packed rings, a kick sends their frames, stop answers both halves of the base', async () => {
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 8 << 20 }]);
  const counters = createCounters();
  const messages: FromDatapath[] = [];
  const datapath = new Datapath({ counters: counters.buffer as SharedArrayBuffer, pairs: [0], mode: 'kick', port: sink, pcapPath: null, verify: true }, (m) => messages.push(m));
  const queues = [new FakePackedQueue(guest, 256), new FakePackedQueue(guest, 256)];
  const fds = [0, 1, 2, 3].map(() => sys.eventfdCreate(0, true));
  try {
    datapath.handle({ type: 'memory', regions: guest.regions });
    const features = FEATURES | featureMask(FeatureBit.ringPacked);
    queues.forEach((q, i) => datapath.handle({ type: 'start', start: { queue: i, addresses: q.addresses, base: 0x80008000, kickFd: fds[i]!, callFd: fds[2 + i]!, features } }));
    assert.equal(
      messages.filter((m) => m.type === 'started').map((m) => (m.type === 'started' ? m.result : null)),
      [{ layout: 'packed' }, { layout: 'packed' }],
    );
    const txq = queues[1]!;
    // Two rounds of 100 chains of 2 descriptors: 400 slots, past the end of the 256-slot ring.
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < 100; i++) txq.post([{ length: HEADER, data: new Uint8Array(HEADER) }, { length: 60, data: new Uint8Array(60).fill(i) }]);
      sys.eventfdWrite(fds[1]!, 1);
      await until(() => describeCounters(counters).transmitq.frames === 100 * round, `${100 * round} frames`);
      let used = 0;
      await until(() => {
        while (txq.takeUsed()) used++;
        return used === 100;
      }, `round ${round}: 100 used elements`);
      await until(() => sys.eventfdRead(fds[3]!) > 0, 'a call on the transmit queue');
    }
    datapath.handle({ type: 'stop', queue: 1 });
    const stopped = messages.find((m) => m.type === 'stopped');
    assert.equal(stopped, { type: 'stopped', queue: 1, base: 0x00900090 }, 'slot 144 of the second lap (wrap counter 0), in both halves');
  } finally {
    datapath.handle({ type: 'shutdown' });
    for (const fd of fds) sys.close(fd);
    guest.close();
  }
});

test.run();
