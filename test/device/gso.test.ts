/**
 * Transmit GSO on the device's path (TransmitQueue, QueuePair, the segmenter, a port): 64 KiB
 * TSO and USO frames in several descriptor layouts come out as wire frames whose lengths,
 * sequence numbers, IPv4 identifications and checksums are checked here by code of the test's
 * own; every header mismatch is its own counted kind, and the queue goes on.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Counter, createCounters, describeCounters, sumCounters } from '../../device/counters.js';
import { NO_GSO_OFFLOADS, type GsoOffloads } from '../../device/gso.js';
import { GsoType } from '../../device/net-header.js';
import { PcapWriter } from '../../device/pcap-writer.js';
import type { Port } from '../../device/ports/port.js';
import { QueuePair } from '../../device/queue-pair.js';
import { describeQueueError, queueErrorNames, type QueueErrorReporter } from '../../device/queue-errors.js';
import { TransmitQueue } from '../../device/transmit-queue.js';
import type { WireFrame } from '../../device/tx-frame.js';
import { VirtioNet } from '../../device/virtio-net.js';
import { featureNames } from 'vfio-user-ts';
import { FakeGuest, FakeQueue, type FakeBuffer } from '../support/fake-driver.js';
import { SINK_DEVICE_OPTIONS } from '../support/sink-device.js';

const HEADER = 12;
const ALL_OFFLOADS: GsoOffloads = { tcp4: true, tcp6: true, ecn: true, udpL4: true };
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_ECE = 0x40;
const TCP_CWR = 0x80;

function setup(offloads: GsoOffloads = ALL_OFFLOADS, pcap: PcapWriter | null = null) {
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 8 << 20 }]);
  const queue = new FakeQueue(guest, 256);
  const counters = createCounters();
  const wire: Uint8Array[] = [];
  const errors: Array<{ kind: string; fatal: boolean; detail: string }> = [];
  const pair = new QueuePair(0, pcap, counters);
  const port: Port = {
    transmit: (frame: WireFrame) => void wire.push(frame.linear.slice(0, frame.length)),
    service: () => -1,
  };
  pair.port = port;
  const reporter: QueueErrorReporter = {
    queueError: (_q, kind, fatal, head, a, b, c) => void errors.push({ kind: queueErrorNames[kind]!, detail: describeQueueError(kind, head, a, b, c), fatal }),
  };
  const tx = new TransmitQueue(guest.memory, queue.vring(), true, HEADER, counters, pair, reporter, 1);
  tx.gsoOffloads = offloads;
  return { guest, queue, counters, wire, errors, tx };
}

interface NetHeaderFields {
  flags?: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

function netHeader(h: NetHeaderFields): Uint8Array {
  const bytes = new Uint8Array(HEADER);
  const v = new DataView(bytes.buffer);
  v.setUint8(0, h.flags ?? 1);
  v.setUint8(1, h.gsoType);
  v.setUint16(2, h.hdrLen, true);
  v.setUint16(4, h.gsoSize, true);
  v.setUint16(6, h.csumStart, true);
  v.setUint16(8, h.csumOffset, true);
  return bytes;
}

interface Flow {
  readonly ipv6: boolean;
  readonly tcp: boolean;
  /** TCP header length (20 + options). */
  readonly tcpHeader?: number;
  readonly payload: number;
  readonly tcpFlags?: number;
}

/** An Ethernet + IPv4/IPv6 + TCP/UDP frame as Linux hands a GSO frame to virtio_net. */
function buildFrame(flow: Flow): { frame: Uint8Array; l4: number; headers: number } {
  const l3 = 14;
  const l4 = l3 + (flow.ipv6 ? 40 : 20);
  const l4Header = flow.tcp ? (flow.tcpHeader ?? 32) : 8;
  const headers = l4 + l4Header;
  const frame = new Uint8Array(headers + flow.payload);
  const v = new DataView(frame.buffer);
  frame.set([0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x02, 0x7a, 0x63, 0, 0, 2]);
  v.setUint16(12, flow.ipv6 ? 0x86dd : 0x0800);
  const protocol = flow.tcp ? 6 : 17;
  if (flow.ipv6) {
    v.setUint32(l3, 0x60012345);
    v.setUint16(l3 + 4, frame.length - l4);
    v.setUint8(l3 + 6, protocol);
    v.setUint8(l3 + 7, 64);
    for (let i = 0; i < 32; i++) frame[l3 + 8 + i] = 0x20 + i * 3;
  } else {
    v.setUint8(l3, 0x45);
    v.setUint16(l3 + 2, frame.length - l3);
    v.setUint16(l3 + 4, 0xfffe); // the identification wraps inside the frame
    v.setUint16(l3 + 6, 0x4000); // DF
    v.setUint8(l3 + 8, 64);
    v.setUint8(l3 + 9, protocol);
    v.setUint32(l3 + 12, 0xc6120002);
    v.setUint32(l3 + 16, 0xc6120001);
  }
  v.setUint16(l4, 40000);
  v.setUint16(l4 + 2, 5201);
  if (flow.tcp) {
    v.setUint32(l4 + 4, 0xffff0000); // the sequence number wraps inside the frame
    v.setUint32(l4 + 8, 0x01020304);
    v.setUint8(l4 + 12, (l4Header / 4) << 4);
    v.setUint8(l4 + 13, flow.tcpFlags ?? TCP_ACK | TCP_PSH);
    v.setUint16(l4 + 14, 512);
    // Options: NOP NOP timestamp, as Linux sends them.
    if (l4Header >= 32) frame.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], l4 + 20);
  } else {
    v.setUint16(l4 + 4, frame.length - l4);
  }
  for (let i = headers; i < frame.length; i++) frame[i] = (i * 31 + (i >> 8)) & 0xff;
  // The checksum field as the driver leaves it: anything (the device computes it per segment).
  v.setUint16(l4 + (flow.tcp ? 16 : 6), 0xbeef);
  return { frame, l4, headers };
}

/** The frame's GSO header as Linux writes it (hdr_len: the headers, as skb_headlen of a TSO skb). */
function gsoHeaderFor(flow: Flow, built: { l4: number; headers: number }, mss: number, gsoType: number): NetHeaderFields {
  return { gsoType, hdrLen: built.headers, gsoSize: mss, csumStart: built.l4, csumOffset: flow.tcp ? 16 : 6 };
}

// ---- the test's own checksum, independent of the device's ------------------------------
function sum16(bytes: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (bytes[i]! << 8) | (i + 1 < end ? bytes[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function transportChecksumVerifies(seg: Uint8Array, ipv6: boolean, l4: number, protocol: number): boolean {
  const addresses = ipv6 ? sum16(seg, 22, 54) : sum16(seg, 26, 34);
  let sum = addresses + protocol + (seg.length - l4) + sum16(seg, l4, seg.length);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

const be16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;
const be32 = (b: Uint8Array, at: number): number => be16(b, at) * 65536 + be16(b, at + 2);

/** Checks every wire segment against the original frame. */
function checkSegments(wire: readonly Uint8Array[], original: Uint8Array, flow: Flow, l4: number, headers: number, mss: number): void {
  const payload = original.length - headers;
  const count = Math.ceil(payload / mss);
  assert.is(wire.length, count, 'one wire frame per MSS of payload');
  const originalFlags = original[l4 + 13]!;
  wire.forEach((seg, i) => {
    const take = Math.min(mss, payload - i * mss);
    assert.is(seg.length, headers + take, `segment ${i} length`);
    assert.equal([...seg.subarray(0, 14)], [...original.subarray(0, 14)], 'Ethernet header');
    assert.ok(seg.subarray(headers).every((b, j) => b === original[headers + i * mss + j]), `segment ${i} payload bytes`);
    if (flow.ipv6) {
      assert.is(be16(seg, 18), seg.length - 54, 'IPv6 payload length');
      assert.equal([...seg.subarray(14, 18)], [...original.subarray(14, 18)]);
      assert.equal([...seg.subarray(20, 54)], [...original.subarray(20, 54)], 'addresses, next header, hop limit');
    } else {
      assert.is(be16(seg, 16), seg.length - 14, 'IPv4 total length');
      assert.is(be16(seg, 18), (0xfffe + i) & 0xffff, 'IPv4 identification, +1 per segment');
      assert.is(sum16(seg, 14, 34), 0xffff, `segment ${i} IPv4 header checksum`);
      assert.equal([...seg.subarray(20, 24)], [...original.subarray(20, 24)], 'flags, TTL, protocol');
      assert.equal([...seg.subarray(26, 34)], [...original.subarray(26, 34)], 'addresses');
    }
    if (flow.tcp) {
      assert.is(be32(seg, l4 + 4), (0xffff0000 + i * mss) % 2 ** 32, `segment ${i} sequence number`);
      let flags = originalFlags;
      if (i < count - 1) flags &= ~(TCP_FIN | TCP_PSH);
      if (i > 0) flags &= ~TCP_CWR;
      assert.is(seg[l4 + 13], flags, `segment ${i} TCP flags`);
      assert.equal([...seg.subarray(l4 + 8, l4 + 13)], [...original.subarray(l4 + 8, l4 + 13)], 'ack, data offset');
      assert.equal([...seg.subarray(l4 + 18, headers)], [...original.subarray(l4 + 18, headers)], 'urgent pointer, options');
    } else {
      assert.is(be16(seg, l4 + 4), seg.length - l4, 'UDP length');
    }
    assert.ok(transportChecksumVerifies(seg, flow.ipv6, l4, flow.tcp ? 6 : 17), `segment ${i} transport checksum`);
  });
}

/** The chain layouts a driver may use for one GSO frame. */
function layouts(header: Uint8Array, frame: Uint8Array, headers: number): Array<{ name: string; buffers: FakeBuffer[]; indirect: boolean }> {
  const whole = new Uint8Array([...header, ...frame]);
  const pages = (from: number, size: number): FakeBuffer[] => {
    const out: FakeBuffer[] = [];
    for (let at = from; at < frame.length; at += size) out.push({ length: Math.min(size, frame.length - at), data: frame.subarray(at, at + size) });
    return out;
  };
  const uneven: FakeBuffer[] = [];
  for (let at = headers, n = 1; at < frame.length; n++) {
    const size = Math.min(n * 997, frame.length - at);
    uneven.push({ length: size, data: frame.subarray(at, at + size) });
    at += size;
  }
  return [
    { name: 'one buffer', buffers: [{ length: whole.length, data: whole }], indirect: false },
    // virtio_net's skb: the header alone, the linear part (the packet headers), a page per frag.
    { name: 'header alone, headers, 4 KiB frags', buffers: [{ length: HEADER, data: header }, { length: headers, data: frame.subarray(0, headers) }, ...pages(headers, 4096)], indirect: false },
    // Split inside the virtio-net header and the IP header; uneven payload buffers, indirect.
    {
      name: 'split headers, uneven payload, indirect',
      buffers: [{ length: 5, data: whole.subarray(0, 5) }, { length: HEADER + 20 - 5, data: whole.subarray(5, HEADER + 20) }, { length: headers - 20, data: frame.subarray(20, headers) }, ...uneven],
      indirect: true,
    },
  ];
}

function runFlow(flow: Flow, mss: number, gsoType: number): void {
  const built = buildFrame(flow);
  const header = netHeader(gsoHeaderFor(flow, built, mss, gsoType));
  for (const layout of layouts(header, built.frame, built.headers)) {
    const { guest, queue, counters, wire, errors, tx } = setup();
    queue.makeAvailable(queue.addChain(layout.buffers, { indirect: layout.indirect }));
    assert.is(tx.processBurst(8), 1, layout.name);
    assert.equal(errors, [], layout.name);
    checkSegments(wire, built.frame, flow, built.l4, built.headers, mss);
    const c = describeCounters(counters);
    assert.is(c.gso.segments, wire.length, layout.name);
    assert.is(c.gso.largestFrame, built.frame.length);
    assert.is(c.transmitq.frames, 1, 'the GSO frame counts once on the transmitq');
    assert.is(c.transmitq.bytes, built.frame.length);
    assert.is(queue.usedIdx(), 1);
    guest.close();
  }
}

test('a 64 KiB TCP/IPv4 TSO frame becomes MSS-sized wire frames in every layout', () => {
  const flow: Flow = { ipv6: false, tcp: true, payload: 45 * 1448 + 100 };
  assert.ok(66 + flow.payload <= 65536);
  runFlow(flow, 1448, 1);
});

test('a TCP/IPv6 TSO frame likewise (no options, MSS 1440)', () => {
  runFlow({ ipv6: true, tcp: true, tcpHeader: 20, payload: 65000 }, 1440, 4);
});

test('a UDP GSO (USO) frame over IPv4 and IPv6 becomes datagrams with their own lengths and checksums', () => {
  runFlow({ ipv6: false, tcp: false, payload: 40 * 1472 + 7 }, 1472, 5);
  runFlow({ ipv6: true, tcp: false, payload: 30 * 1452 }, 1452, 5);
});

test('gso counters by type, and ECN: CWR on the first segment only, FIN and PSH on the last only', () => {
  const { guest, queue, counters, wire, errors, tx } = setup();
  const flow: Flow = { ipv6: false, tcp: true, payload: 3 * 1000 + 1, tcpFlags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR | TCP_ECE };
  const built = buildFrame(flow);
  const bytes = new Uint8Array([...netHeader(gsoHeaderFor(flow, built, 1000, 0x81)), ...built.frame]);
  queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  const v6: Flow = { ipv6: true, tcp: true, payload: 3000 };
  const built6 = buildFrame(v6);
  const bytes6 = new Uint8Array([...netHeader(gsoHeaderFor(v6, built6, 1000, 4)), ...built6.frame]);
  queue.makeAvailable(queue.addChain([{ length: bytes6.length, data: bytes6 }]));
  assert.is(tx.processBurst(8), 2);
  assert.equal(errors, []);
  assert.equal(wire.slice(0, 4).map((s) => s[34 + 13]), [TCP_ACK | TCP_CWR | TCP_ECE, TCP_ACK | TCP_ECE, TCP_ACK | TCP_ECE, TCP_ACK | TCP_ECE | TCP_PSH | TCP_FIN]);
  checkSegments(wire.slice(0, 4), built.frame, flow, built.l4, built.headers, 1000);
  const c = describeCounters(counters);
  assert.equal(c.gso, { frames: { tcp4: 1, tcp6: 1, udpL4: 0 }, segments: 7, largestFrame: built6.frame.length });
  guest.close();
});

test('the pcap holds the wire frames, not the GSO frame', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-gso-'));
  const path = join(dir, 'tx.pcap');
  const pcap = new PcapWriter(path);
  const { guest, queue, wire, tx } = setup(ALL_OFFLOADS, pcap);
  const flow: Flow = { ipv6: false, tcp: true, payload: 20000 };
  const built = buildFrame(flow);
  const bytes = new Uint8Array([...netHeader(gsoHeaderFor(flow, built, 1448, 1)), ...built.frame]);
  queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  tx.processBurst(8);
  pcap.close();
  const file = readFileSync(path);
  const records: Uint8Array[] = [];
  for (let at = 24; at < file.length; ) {
    const captured = file.readUInt32LE(at + 8);
    records.push(file.subarray(at + 16, at + 16 + captured));
    at += 16 + captured;
  }
  assert.is(records.length, Math.ceil(20000 / 1448));
  assert.equal(records.map((r) => [...r]), wire.map((w) => [...w]), 'the port and the pcap see the same wire frames');
  guest.close();
  rmSync(dir, { recursive: true });
});

test('a GSO frame no larger than one segment goes out as one frame', () => {
  const { guest, queue, wire, tx } = setup();
  const flow: Flow = { ipv6: false, tcp: true, payload: 500 };
  const built = buildFrame(flow);
  const bytes = new Uint8Array([...netHeader(gsoHeaderFor(flow, built, 1448, 1)), ...built.frame]);
  queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  tx.processBurst(8);
  checkSegments(wire, built.frame, flow, built.l4, built.headers, 1448);
  guest.close();
});

/** One bad GSO chain per case, then a good one: each case's kind is counted and the queue goes on. */
test('every header mismatch is dropped and counted under its own kind; the queue goes on', () => {
  const flow4: Flow = { ipv6: false, tcp: true, payload: 5000 };
  const good4 = buildFrame(flow4);
  const good6 = buildFrame({ ipv6: true, tcp: true, payload: 5000 });
  const udpFlow4: Flow = { ipv6: false, tcp: false, payload: 5000 };
  const udp4 = buildFrame(udpFlow4);
  const udp6 = buildFrame({ ipv6: true, tcp: false, payload: 5000 });
  const tso4 = gsoHeaderFor(flow4, good4, 1448, 1);
  const uso4 = gsoHeaderFor(udpFlow4, udp4, 1472, 5);
  const uso6: NetHeaderFields = { ...uso4, csumStart: udp6.l4, hdrLen: udp6.headers };
  const patched = (edit: (frame: Uint8Array) => void, from = good4.frame): Uint8Array => {
    const f = from.slice();
    edit(f);
    return f;
  };
  const cases: Array<[string, NetHeaderFields, Uint8Array, GsoOffloads?]> = [
    ['txGsoNotNegotiated', { ...tso4, gsoType: GsoType.udp }, udp4.frame], // legacy UFO: never offered
    ['txGsoNotNegotiated', { ...tso4, gsoType: 2 }, good4.frame], // no such type
    ['txGsoNotNegotiated', { ...tso4, gsoType: 0x81 }, good4.frame, { ...ALL_OFFLOADS, ecn: false }],
    ['txGsoNotNegotiated', { ...tso4, gsoType: 0x85 }, udp4.frame], // ECN is TCP's
    ['txGsoNotNegotiated', { ...tso4, gsoType: 4, csumStart: 54 }, good6.frame, { ...ALL_OFFLOADS, tcp6: false }],
    ['txGsoNotNegotiated', { ...tso4, gsoType: 5, csumOffset: 6 }, udp4.frame, { ...ALL_OFFLOADS, udpL4: false }],
    ['txGsoWithoutChecksum', { ...tso4, flags: 0 }, good4.frame],
    ['txGsoWrongNetworkProtocol', { ...tso4, gsoType: 1 }, good6.frame], // TCPV4 on IPv6
    ['txGsoWrongNetworkProtocol', { ...tso4, gsoType: 4 }, good4.frame], // TCPV6 on IPv4
    ['txGsoWrongNetworkProtocol', tso4, patched((f) => f.set([0x08, 0x06], 12))], // ARP
    ['txGsoWrongNetworkProtocol', tso4, patched((f) => (f[14] = 0x65))], // version 6 under IPv4's EtherType
    ['txGsoMalformedHeaders', tso4, patched((f) => (f[14] = 0x44))], // IHL 4
    ['txGsoMalformedHeaders', tso4, patched((f) => (f[20] = 0x20))], // More Fragments
    ['txGsoMalformedHeaders', tso4, patched((f) => (f[34 + 12] = 0x40))], // TCP data offset 4
    ['txGsoMalformedHeaders', tso4, good4.frame.slice(0, 60)], // TCP options past the end (the checksum field fits)
    ['txGsoWrongTransport', tso4, patched((f) => (f[23] = 17))], // TCPV4 on UDP
    ['txGsoWrongTransport', { ...tso4, gsoType: 5, csumOffset: 6 }, good4.frame], // USO on TCP
    ['txGsoBadChecksumOffsets', { ...tso4, csumOffset: 6 }, good4.frame],
    ['txGsoBadChecksumOffsets', { ...tso4, csumStart: 14 }, good4.frame],
    ['txGsoBadHeaderLength', { ...tso4, hdrLen: 54 }, good4.frame], // below the TCP options
    ['txGsoBadHeaderLength', { ...tso4, hdrLen: good4.frame.length + 1 }, good4.frame],
    ['txGsoBadSegmentSize', { ...tso4, gsoSize: 0 }, good4.frame],
    ['txGsoBadSegmentSize', { ...tso4, gsoSize: 65536 - 66 + 1 }, good4.frame],
    ['txFrameTooLarge', tso4, new Uint8Array(65589 + 1)],
    // UDP_L4 (USO): where UDP differs, and the same checks on a UDP frame.
    ['txGsoWithoutChecksum', { ...uso4, flags: 0 }, udp4.frame],
    ['txGsoWithoutChecksum', { ...uso4, flags: 2 }, udp4.frame], // DATA_VALID is no partial checksum
    ['txGsoWrongNetworkProtocol', uso4, patched((f) => f.set([0x08, 0x06], 12), udp4.frame)], // ARP
    ['txGsoWrongNetworkProtocol', uso4, patched((f) => (f[14] = 0x45), udp6.frame)], // IPv4 under IPv6's EtherType
    ['txGsoMalformedHeaders', uso4, patched((f) => (f[21] = 0x10), udp4.frame)], // a fragment offset
    ['txGsoWrongTransport', uso4, patched((f) => (f[23] = 6), udp4.frame)], // UDP_L4 on TCP (IPv4)
    ['txGsoWrongTransport', uso6, patched((f) => (f[20] = 6), udp6.frame)], // UDP_L4 on TCP (IPv6)
    ['txGsoWrongTransport', uso6, patched((f) => (f[20] = 0), udp6.frame)], // an extension header first: not followed
    ['txGsoWrongTransport', uso4, patched((f) => (f[23] = 136), udp4.frame)], // UDP-Lite
    ['txGsoBadChecksumOffsets', { ...uso4, csumOffset: 16 }, udp4.frame], // TCP's offset on UDP
    ['txGsoBadChecksumOffsets', { ...uso4, csumStart: 14 }, udp4.frame],
    ['txGsoBadChecksumOffsets', { ...uso6, csumStart: 34 }, udp6.frame], // IPv4's transport offset on IPv6
    ['txGsoBadHeaderLength', { ...uso4, hdrLen: 41 }, udp4.frame], // short of the UDP header
    ['txGsoBadHeaderLength', { ...uso4, hdrLen: 0 }, udp4.frame],
    ['txGsoBadHeaderLength', { ...uso4, hdrLen: udp4.frame.length + 1 }, udp4.frame],
    ['txGsoBadSegmentSize', { ...uso4, gsoSize: 0 }, udp4.frame],
    ['txGsoBadSegmentSize', { ...uso4, gsoSize: 0xffff }, udp4.frame], // GSO_BY_FRAGS
    ['txGsoTooManySegments', { ...uso4, gsoSize: 8 }, udp4.frame], // 625 datagrams of 8 bytes
    ['txGsoTooManySegments', { ...uso6, gsoSize: 1 }, udp6.frame],
  ];
  for (const [kind, fields, frame, offloads] of cases) {
    const { guest, queue, counters, wire, errors, tx } = setup(offloads ?? ALL_OFFLOADS);
    const bad = new Uint8Array([...netHeader(fields), ...frame]);
    queue.makeAvailable(queue.addChain([{ length: bad.length, data: bad }]));
    const good = new Uint8Array([...netHeader(tso4), ...good4.frame]);
    queue.makeAvailable(queue.addChain([{ length: good.length, data: good }]));
    assert.is(tx.processBurst(8), 2, kind);
    assert.equal(errors.map((e) => [e.kind, e.fatal]), [[kind, false]], `${kind}: ${errors[0]?.detail}`);
    assert.match(errors[0]!.detail, /^head 0: .*dropped$/);
    const c = describeCounters(counters);
    assert.is(c.errors[kind], 1, kind);
    assert.is(c.transmitq.frames, 1, `${kind}: only the good frame is taken`);
    assert.is(wire.length, 4, `${kind}: the good frame's segments go out`);
    assert.is(tx.broken, false);
    assert.is(queue.usedIdx(), 2, `${kind}: both chains are returned`);
    guest.close();
  }
});

test('without negotiated GSO features every gso_type is refused as before (txGsoNotNegotiated)', () => {
  const { guest, queue, counters, wire, errors, tx } = setup(NO_GSO_OFFLOADS);
  const flow: Flow = { ipv6: false, tcp: true, payload: 5000 };
  const built = buildFrame(flow);
  for (const gsoType of [1, 3, 4, 5, 0x81]) {
    const bytes = new Uint8Array([...netHeader({ ...gsoHeaderFor(flow, built, 1448, 1), gsoType }), ...built.frame]);
    queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  }
  assert.is(tx.processBurst(8), 5);
  assert.is(describeCounters(counters).errors.txGsoNotNegotiated, 5);
  assert.equal(describeCounters(counters).gso, { frames: { tcp4: 0, tcp6: 0, udpL4: 0 }, segments: 0, largestFrame: 0 });
  assert.is(wire.length, 0);
  assert.ok(errors.every((e) => e.kind === 'txGsoNotNegotiated' && !e.fatal));
  guest.close();
});

test('a frame above 64 KiB without GSO is still refused (the GSO limit is for GSO frames only)', () => {
  const { guest, queue, counters, tx } = setup();
  queue.makeAvailable(queue.addChain([{ length: HEADER + 65537 }]));
  tx.processBurst(8);
  assert.is(describeCounters(counters).errors.txFrameTooLarge, 1);
  guest.close();
});

test('the largest GSO frame of several workers (transmit and receive) is their maximum, not their sum', () => {
  const [a, b] = [createCounters(), createCounters()];
  a[Counter.gsoLargestFrame] = 65000;
  b[Counter.gsoLargestFrame] = 30000;
  a[Counter.gsoSegments] = 2;
  b[Counter.gsoSegments] = 3;
  assert.equal(describeCounters(sumCounters([a, b])).gso, { frames: { tcp4: 0, tcp6: 0, udpL4: 0 }, segments: 5, largestFrame: 65000 });
  // The receiveq's largest GSO frame likewise.
  a[Counter.rxGsoLargestFrame] = 20000;
  b[Counter.rxGsoLargestFrame] = 64000;
  assert.is(describeCounters(sumCounters([a, b])).rxGso.largestFrame, 64000);
});

test('UDP GSO: 128 datagrams in a frame are taken, 129 are not; the same gso_size on TCP is no error', () => {
  const { guest, queue, counters, wire, errors, tx } = setup();
  for (const payload of [128 * 100, 128 * 100 + 1]) {
    const flow: Flow = { ipv6: false, tcp: false, payload };
    const built = buildFrame(flow);
    const bytes = new Uint8Array([...netHeader(gsoHeaderFor(flow, built, 100, 5)), ...built.frame]);
    queue.makeAvailable(queue.addChain([{ length: bytes.length, data: bytes }]));
  }
  const tcp: Flow = { ipv6: false, tcp: true, payload: 129 * 100 };
  const builtTcp = buildFrame(tcp);
  const tcpBytes = new Uint8Array([...netHeader(gsoHeaderFor(tcp, builtTcp, 100, 1)), ...builtTcp.frame]);
  queue.makeAvailable(queue.addChain([{ length: tcpBytes.length, data: tcpBytes }]));
  assert.is(tx.processBurst(8), 3);
  assert.equal(errors.map((e) => e.kind), ['txGsoTooManySegments']);
  assert.match(errors[0]!.detail, /gso_size 100: 12801 payload bytes are more than 128 datagrams/);
  const c = describeCounters(counters);
  assert.equal(c.gso.frames, { tcp4: 1, tcp6: 0, udpL4: 1 });
  assert.is(c.errors.txGsoTooManySegments, 1);
  assert.is(wire.length, 128 + 129);
  guest.close();
});

test('--tso offers HOST_TSO4, HOST_TSO6, HOST_ECN and HOST_USO (bit 56); without it no GSO feature', async () => {
  for (const tso of [true, false]) {
    const device = await VirtioNet.create({ ...SINK_DEVICE_OPTIONS, tso, onQueueError: () => {}, onFailure: () => {} });
    const names = featureNames(device.features);
    assert.equal(names.filter((n) => n.startsWith('HOST_')), tso ? ['HOST_TSO4', 'HOST_TSO6', 'HOST_ECN', 'HOST_USO'] : []);
    assert.ok(names.includes('CSUM') && names.includes('VERSION_1'), 'the word stays exact');
    await device.close();
  }
});

test.run();
