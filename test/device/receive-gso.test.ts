/**
 * Receive offloads (GUEST_TSO4/TSO6/ECN, GUEST_USO4/6): a GSO frame from a port reaches the
 * driver whole, its gso_type, gso_size and hdr_len in the header, spread over as many mergeable
 * buffers as it needs; a type the driver did not negotiate never reaches it (dropped, counted).
 * The tap's offloads follow what the driver negotiated.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { byteSpace, FeatureBit, featureMask, sys, type ByteSpace } from 'vfio-user-ts';
import { Counter, createCounters, describeCounters } from '../../device/counters.js';
import { NO_RECEIVE_GSO, receiveGsoOffloads, type ReceiveGsoOffloads } from '../../device/gso.js';
import { tapOffloads } from '../../device/ports/tap.js';
import { queueErrorNames } from '../../device/queue-errors.js';
import { ReceiveQueue } from '../../device/receive-queue.js';
import { VirtioNet } from '../../device/virtio-net.js';
import { featureNames } from 'vfio-user-ts';
import { FakeGuest, FakeQueue } from '../support/fake-driver.js';
import { SINK_DEVICE_OPTIONS } from '../support/sink-device.js';

const HEADER = 12;
const TCP4: ReceiveGsoOffloads = { tcp4: true, tcp6: false, ecn: false, udp4: false, udp6: false };

function setup(receiveGso: ReceiveGsoOffloads, mergeable = true, size = 64) {
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 4 << 20 }]);
  const queue = new FakeQueue(guest, size);
  const counters = createCounters();
  const errors: string[] = [];
  const rx = new ReceiveQueue(guest.memory, queue.vring(), true, HEADER, mergeable, counters, { queueError: (_q, kind) => errors.push(queueErrorNames[kind]!) }, 0);
  rx.receiveGso = receiveGso;
  return { guest, queue, counters, errors, rx };
}

/** A frame of `length` bytes with `etherType` and a byte pattern after it. */
function frame(length: number, etherType = 0x0800): ByteSpace {
  const bytes = Uint8Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff);
  new DataView(bytes.buffer).setUint16(12, etherType);
  return byteSpace(bytes.buffer);
}

function post(queue: FakeQueue, length: number): number {
  const gpa = queue.guest.alloc(length);
  queue.makeAvailable(queue.addChain([{ gpa, length, writable: true }]));
  return gpa;
}

test('a 64 KiB TSO frame spreads over mergeable buffers with its GSO header fields', () => {
  const { guest, queue, counters, errors, rx } = setup(TCP4);
  const buffers = Array.from({ length: 20 }, () => post(queue, 4096));
  const length = 14 + 20 + 32 + 45 * 1448;
  const src = frame(length);
  rx.beginBurst();
  assert.ok(rx.receive(src, 0, length, 1, 34, 16, 1, 1448, 66));
  rx.endBurst();
  const chains = Math.ceil((HEADER + length) / 4096);
  assert.is(queue.usedIdx(), chains);
  const h = new DataView(guest.read(buffers[0]!, HEADER).buffer);
  assert.equal(
    { flags: h.getUint8(0), gsoType: h.getUint8(1), hdrLen: h.getUint16(2, true), gsoSize: h.getUint16(4, true), csumStart: h.getUint16(6, true), csumOffset: h.getUint16(8, true), numBuffers: h.getUint16(10, true) },
    { flags: 1, gsoType: 1, hdrLen: 66, gsoSize: 1448, csumStart: 34, csumOffset: 16, numBuffers: chains },
  );
  const placed: number[] = [];
  for (let i = 0; i < chains; i++) placed.push(...guest.read(buffers[i]!, queue.usedElement(i).length));
  assert.equal(placed.slice(HEADER), [...src.bytes], 'the frame, byte for byte');
  assert.equal(errors, []);
  const c = describeCounters(counters);
  assert.equal(c.rxGso, { frames: { tcp4: 1, tcp6: 0, udpL4: 0 }, largestFrame: length, notNegotiated: 0 });
  assert.is(c.receiveq.buffers, chains);
  guest.close();
});

test('without mergeable buffers a GSO frame takes one big chain (big packets)', () => {
  const { guest, queue, counters, rx } = setup({ ...TCP4, tcp6: true }, false);
  const gpa = queue.guest.alloc(70000);
  queue.makeAvailable(queue.addChain([{ gpa, length: 70000, writable: true }]));
  const length = 14 + 40 + 20 + 40000;
  rx.beginBurst();
  assert.ok(rx.receive(frame(length, 0x86dd), 0, length, 1, 54, 16, 4, 1440, 74));
  rx.endBurst();
  assert.is(queue.usedElement(0).length, HEADER + length);
  assert.is(guest.read(gpa, 2)[1], 4, 'TCPV6');
  assert.is(counters[Counter.rxGsoTcp6Frames], 1);
  guest.close();
});

test('a GSO type the driver did not negotiate is dropped and counted, never placed', () => {
  const cases: Array<[string, ReceiveGsoOffloads, number, number]> = [
    ['no receive GSO at all', NO_RECEIVE_GSO, 1, 0x0800],
    ['TCPV6 with GUEST_TSO4 only', TCP4, 4, 0x86dd],
    ['ECN without GUEST_ECN', TCP4, 0x81, 0x0800],
    ['UDP_L4 over IPv4 without GUEST_USO4', { ...TCP4, udp6: true }, 5, 0x0800],
    ['UDP_L4 over IPv6 without GUEST_USO6', { ...TCP4, udp4: true }, 5, 0x86dd],
    ['UDP_L4 on ARP', { ...TCP4, udp4: true, udp6: true }, 5, 0x0806],
    ['legacy UFO', { tcp4: true, tcp6: true, ecn: true, udp4: true, udp6: true }, 3, 0x0800],
    ['an unknown type', { tcp4: true, tcp6: true, ecn: true, udp4: true, udp6: true }, 9, 0x0800],
  ];
  for (const [name, offloads, gsoType, etherType] of cases) {
    const { guest, queue, counters, errors, rx } = setup(offloads);
    post(queue, 4096);
    rx.beginBurst();
    assert.ok(rx.receive(frame(3000, etherType), 0, 3000, 1, 34, 16, gsoType, 1448, 54), name);
    // The next frame (no GSO) still takes the buffer the dropped one did not.
    assert.ok(rx.receive(frame(100), 0, 100), name);
    rx.endBurst();
    assert.is(queue.usedIdx(), 1, `${name}: only the plain frame was placed`);
    assert.is(queue.usedElement(0).length, HEADER + 100, name);
    assert.is(counters[Counter.rxGsoNotNegotiated], 1, name);
    assert.is(counters[Counter.rxFrames], 1, name);
    assert.equal(errors, [], `${name}: not a driver error`);
    guest.close();
  }
});

test('the allowed types: ECN on TCP with GUEST_ECN, UDP_L4 by IP version', () => {
  const all: ReceiveGsoOffloads = { tcp4: true, tcp6: true, ecn: true, udp4: true, udp6: true };
  const { guest, queue, counters, rx } = setup(all);
  for (let i = 0; i < 3; i++) post(queue, 4096);
  rx.beginBurst();
  assert.ok(rx.receive(frame(3000), 0, 3000, 1, 34, 16, 0x81, 1448, 54));
  assert.ok(rx.receive(frame(3000), 0, 3000, 1, 34, 6, 5, 1472, 42));
  assert.ok(rx.receive(frame(3000, 0x86dd), 0, 3000, 1, 54, 6, 5, 1452, 62));
  rx.endBurst();
  assert.equal(describeCounters(counters).rxGso.frames, { tcp4: 1, tcp6: 0, udpL4: 2 });
  assert.is(counters[Counter.rxGsoNotNegotiated], 0);
  guest.close();
});

test('receive GSO needs GUEST_CSUM; the tap offloads follow the negotiated features', () => {
  const tso = featureMask(FeatureBit.netGuestCsum, FeatureBit.netGuestTso4, FeatureBit.netGuestTso6, FeatureBit.netGuestEcn);
  assert.equal(receiveGsoOffloads(tso), { tcp4: true, tcp6: true, ecn: true, udp4: false, udp6: false });
  assert.equal(receiveGsoOffloads(featureMask(FeatureBit.netGuestTso4)), NO_RECEIVE_GSO, 'no GSO without GUEST_CSUM');
  assert.equal(receiveGsoOffloads(featureMask(FeatureBit.netGuestCsum, FeatureBit.netGuestUso4, FeatureBit.netGuestUso6)), { tcp4: false, tcp6: false, ecn: false, udp4: true, udp6: true });
  assert.is(tapOffloads(tso), sys.TUN_F_CSUM | 0x02 | 0x04 | 0x08);
  assert.is(tapOffloads(featureMask(FeatureBit.netGuestCsum, FeatureBit.netGuestTso4)), sys.TUN_F_CSUM | 0x02);
  assert.is(tapOffloads(featureMask(FeatureBit.netGuestCsum, FeatureBit.netGuestEcn)), sys.TUN_F_CSUM, 'ECN alone is no TSO');
  assert.is(tapOffloads(featureMask(FeatureBit.netGuestCsum)), sys.TUN_F_CSUM);
  assert.is(tapOffloads(featureMask(FeatureBit.netGuestTso4, FeatureBit.netGuestTso6)), 0, 'TSO without GUEST_CSUM: none');
});

test('--guest-tso offers GUEST_TSO4, GUEST_TSO6 and GUEST_ECN (not GUEST_USO4/6); without it none', async () => {
  for (const guestTso of [true, false]) {
    const device = await VirtioNet.create({ ...SINK_DEVICE_OPTIONS, guestTso, onQueueError: () => {}, onFailure: () => {} });
    const names = featureNames(device.features);
    assert.equal(names.filter((n) => n.startsWith('GUEST_') && n !== 'GUEST_CSUM'), guestTso ? ['GUEST_TSO4', 'GUEST_TSO6', 'GUEST_ECN'] : []);
    await device.close();
  }
});

test.run();
