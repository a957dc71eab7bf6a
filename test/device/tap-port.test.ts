// Port `tap` end to end in one process: a FrontendSession transmits an IPv4/UDP frame that the
// device writes to a host tap, where the host's own UDP stack receives it; and a datagram the
// host sends out of the tap lands in the receiveq. Needs root (CAP_NET_ADMIN): skipped otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureBit, featureMask, hasFeature, sys, VhostUserServer, type ByteSpace } from 'vfio-user-ts';
import { DEFAULT_SESSION_FEATURES, FrontendSession } from 'vfio-user-ts/vhost-user-frontend';
import { createCounters } from '../../device/counters.js';
import { closeTaps, TapPort } from '../../device/ports/tap.js';
import { VirtioNet } from '../../device/virtio-net.js';
import { SplitRingDriver } from '../support/vhost/split-ring-driver.js';

const HEADER_LENGTH = 12;
const RECEIVEQ = 0;
const TRANSMITQ = 1;
const DEVICE_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const HOST_IP = [198, 18, 99, 1];
const GUEST_IP = [198, 18, 99, 2];
const root = process.getuid?.() === 0 && existsSync('/dev/net/tun');

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * An Ethernet/IPv4 frame from the guest's address to the host's with `l4Length` bytes after the
 * IP header (left for the caller), the IP header and its checksum done.
 */
function ipv4Frame(dstMac: number[], protocol: number, id: number, l4Length: number): { f: Uint8Array; v: DataView } {
  const ipLength = 20 + l4Length;
  const f = new Uint8Array(14 + ipLength);
  const v = new DataView(f.buffer);
  f.set(dstMac, 0);
  f.set(DEVICE_MAC, 6);
  v.setUint16(12, 0x0800);
  f.set([0x45, 0, ipLength >> 8, ipLength & 0xff, 0, id, 0x40, 0, 64, protocol, 0, 0], 14);
  f.set(GUEST_IP, 26);
  f.set(HOST_IP, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  v.setUint16(24, ~sum & 0xffff);
  return { f, v };
}

/** An Ethernet/IPv4/UDP frame from the guest's address to the host's (UDP checksum 0: none). */
function udpFrame(dstMac: number[], dstPort: number, payload: Uint8Array): Uint8Array {
  const { f, v } = ipv4Frame(dstMac, 17, 1, 8 + payload.length);
  v.setUint16(34, 40000);
  v.setUint16(36, dstPort);
  v.setUint16(38, 8 + payload.length);
  f.set(payload, 42);
  return f;
}

(root ? test : test.skip)('port tap carries frames both ways between the transmitq/receiveq and a host tap', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-tap-'));
  const socketPath = join(dir, 'vhost.sock');
  const tap = `zct${process.pid % 100000}`;
  let device: VirtioNet | null = null;
  let server: VhostUserServer | null = null;
  let session: FrontendSession | null = null;
  const udp = createSocket('udp4');
  try {
    device = await VirtioNet.create({
      queuePairs: 1,
      workers: 1,
      mode: 'kick',
      port: { port: 'tap', tap, gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56' },
      // With a pcap the tap gets wire frames behind an empty header (the next test: without).
      pcapPath: join(dir, 'tap.pcap'),
      verify: false,
      onQueueError: (queue, kind, detail) => assert.unreachable(`queue ${queue}: ${kind}: ${detail}`),
      onFailure: (reason) => assert.unreachable(reason),
    });
    server = new VhostUserServer({ socketPath, device, log: () => {} });
    session = await FrontendSession.open({ socketPath, memoryBytes: 1 << 20, queues: 2 });
    await until('the tap to exist', () => existsSync(`/sys/class/net/${tap}`));
    execFileSync('ip', ['addr', 'add', `${HOST_IP.join('.')}/30`, 'dev', tap]);
    execFileSync('ip', ['link', 'set', tap, 'up']);
    execFileSync('ip', ['neigh', 'replace', GUEST_IP.join('.'), 'lladdr', '52:54:00:12:34:56', 'dev', tap, 'nud', 'permanent']);
    const tapMac = readFileSync(`/sys/class/net/${tap}/address`, 'utf8').trim().split(':').map((h) => parseInt(h, 16));

    // Transmit: the host's UDP socket receives the payload.
    await new Promise<void>((resolve) => udp.bind(0, HOST_IP.join('.'), resolve));
    const got: Buffer[] = [];
    udp.on('message', (msg) => got.push(msg));
    const payload = new TextEncoder().encode('through the tap');
    const tx = new SplitRingDriver(session, TRANSMITQ);
    const packet = new Uint8Array(HEADER_LENGTH + 42 + payload.length);
    packet.set(udpFrame(tapMac, udp.address().port, payload), HEADER_LENGTH);
    tx.addChain([{ gpa: tx.place(packet), length: packet.length }]);
    tx.publish();
    session.kick(TRANSMITQ);
    await until('the host to receive the datagram', () => got.length > 0);
    assert.is(Buffer.from(got[0]!).toString(), 'through the tap');
    assert.is(device.stats().portTxDropped, 0);

    // Receive: a datagram from the host to the guest's address comes out of the tap, complete
    // (the driver did not negotiate GUEST_CSUM: no flags).
    const received = await receiveFromHost(session, udp, 'from the host');
    assert.equal([...received.subarray(0, HEADER_LENGTH)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0], 'no flags, num_buffers 1');
    assert.ok(device.stats().receiveq.frames >= 1);
  } finally {
    udp.close();
    session?.close();
    await server?.close();
    await device?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await until('the tap to go away with the device', () => !existsSync(`/sys/class/net/${tap}`));
});

/**
 * Posts one receive buffer at a time and has the host send `text` to the guest until a frame
 * holding it lands (others may come first: IPv6 neighbour discovery of a tap just up). Returns
 * the header and frame as placed.
 */
async function receiveFromHost(session: FrontendSession, udp: Socket, text: string): Promise<Uint8Array> {
  const rx = new SplitRingDriver(session, RECEIVEQ);
  const bufferGpa = rx.place(new Uint8Array(2048));
  const at = session.memory.gpaToOffset(bufferGpa, 2048);
  for (let i = 0; i < 50; i++) {
    const before = rx.usedIdx();
    rx.addChain([{ gpa: bufferGpa, length: 2048, writable: true }]);
    rx.publish();
    session.kick(RECEIVEQ);
    udp.send(text, 9999, GUEST_IP.join('.'));
    await until('a frame on the receiveq', () => rx.usedIdx() > before);
    const placed = session.memory.bytes.slice(at, at + rx.usedElement(rx.usedIdx() - 1).len);
    if (Buffer.from(placed).toString('latin1').includes(text)) return placed;
  }
  throw new Error(`"${text}" never reached the receiveq`);
}

/** The 16-bit ones'-complement sum of the IPv4 pseudo-header of an L4 segment of `l4Length` bytes. */
function pseudoHeaderSum(frame: Uint8Array, protocol: number, l4Length: number): number {
  const v = new DataView(frame.buffer, frame.byteOffset);
  let sum = protocol + l4Length;
  for (let i = 26; i < 34; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** An Ethernet/IPv4/TCP frame (ACK|PSH, window 1000) with `payload` bytes, no checksums done. */
function tcpFrame(dstMac: number[], dstPort: number, payload: number): Uint8Array {
  const { f, v } = ipv4Frame(dstMac, 6, 2, 20 + payload);
  v.setUint16(34, 40001);
  v.setUint16(36, dstPort);
  v.setUint32(38, 1);
  v.setUint32(42, 1);
  v.setUint8(46, 5 << 4);
  v.setUint8(47, 0x18);
  v.setUint16(48, 1000);
  v.setUint16(50, pseudoHeaderSum(f, 6, 20 + payload));
  return f;
}

/** A virtio-net header (12 bytes) asking for a partial checksum and, if gsoSize, TCPv4 GSO. */
function offloadHeader(csumStart: number, csumOffset: number, hdrLen: number, gsoSize: number): Uint8Array {
  const h = new Uint8Array(HEADER_LENGTH);
  const v = new DataView(h.buffer);
  v.setUint8(0, 1); // NEEDS_CSUM
  v.setUint8(1, gsoSize > 0 ? 1 : 0); // TCPV4
  v.setUint16(2, hdrLen, true);
  v.setUint16(4, gsoSize, true);
  v.setUint16(6, csumStart, true);
  v.setUint16(8, csumOffset, true);
  return h;
}

/** A device on port tap `tap`, no pcap, failing the test on any queue error. */
function tapDevice(tap: string, offers: { tso?: boolean; guestTso?: boolean }): Promise<VirtioNet> {
  return VirtioNet.create({
    queuePairs: 1,
    workers: 1,
    mode: 'kick',
    ...offers,
    port: { port: 'tap', tap, gen: { size: 64, count: 0, pps: 0 }, mac: '52:54:00:12:34:56' },
    pcapPath: null,
    verify: false,
    onQueueError: (queue, kind, detail) => assert.unreachable(`queue ${queue}: ${kind}: ${detail}`),
    onFailure: (reason) => assert.unreachable(reason),
  });
}

function tapStatistic(tap: string, name: string): number {
  return Number(readFileSync(`/sys/class/net/${tap}/statistics/${name}`, 'utf8'));
}

(root ? test : test.skip)('port tap hands a partial checksum and a TSO frame to the host kernel', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-tap-'));
  const socketPath = join(dir, 'vhost.sock');
  const tap = `zco${process.pid % 100000}`;
  let device: VirtioNet | null = null;
  let server: VhostUserServer | null = null;
  let session: FrontendSession | null = null;
  const udp = createSocket('udp4');
  try {
    device = await tapDevice(tap, { tso: true });
    server = new VhostUserServer({ socketPath, device, log: () => {} });
    const features = DEFAULT_SESSION_FEATURES + featureMask(FeatureBit.netCsum, FeatureBit.netHostTso4, FeatureBit.netGuestCsum);
    session = await FrontendSession.open({ socketPath, memoryBytes: 1 << 20, queues: 2, features });
    await until('the tap to exist', () => existsSync(`/sys/class/net/${tap}`));
    execFileSync('ip', ['addr', 'add', `${HOST_IP.join('.')}/30`, 'dev', tap]);
    execFileSync('ip', ['link', 'set', tap, 'up']);
    execFileSync('ip', ['neigh', 'replace', GUEST_IP.join('.'), 'lladdr', '52:54:00:12:34:56', 'dev', tap, 'nud', 'permanent']);
    const tapMac = readFileSync(`/sys/class/net/${tap}/address`, 'utf8').trim().split(':').map((h) => parseInt(h, 16));
    const tx = new SplitRingDriver(session, TRANSMITQ);

    // A UDP datagram whose checksum field holds only the pseudo-header sum: the host's UDP
    // stack takes it only if the header said NEEDS_CSUM (else the checksum is wrong).
    await new Promise<void>((resolve) => udp.bind(0, HOST_IP.join('.'), resolve));
    const got: Buffer[] = [];
    udp.on('message', (msg) => got.push(msg));
    const payload = new TextEncoder().encode('partial checksum');
    const frame = udpFrame(tapMac, udp.address().port, payload);
    new DataView(frame.buffer).setUint16(40, pseudoHeaderSum(frame, 17, 8 + payload.length));
    const header = offloadHeader(34, 6, 0, 0);
    // Header and frame in separate buffers, the frame in two, as drivers lay them out.
    tx.addChain([
      { gpa: tx.place(header), length: header.length },
      { gpa: tx.place(frame.subarray(0, 42)), length: 42 },
      { gpa: tx.place(frame.subarray(42)), length: frame.length - 42 },
    ]);
    tx.publish();
    session.kick(TRANSMITQ);
    await until('the host to receive the datagram', () => got.length > 0);
    assert.is(Buffer.from(got[0]!).toString(), 'partial checksum');

    // A TSO frame of three segments reaches the tap as one frame (the tap counts one packet of
    // its whole length): the host kernel, not the device, would segment it.
    const packetsBefore = tapStatistic(tap, 'rx_packets');
    const bytesBefore = tapStatistic(tap, 'rx_bytes');
    const tcp = tcpFrame(tapMac, 9, 3000);
    const tsoHeader = offloadHeader(34, 16, 54, 1000);
    const packet = new Uint8Array(HEADER_LENGTH + tcp.length);
    packet.set(tsoHeader, 0);
    packet.set(tcp, HEADER_LENGTH);
    tx.addChain([{ gpa: tx.place(packet), length: packet.length }]);
    tx.publish();
    session.kick(TRANSMITQ);
    await until('the tap to count the frame', () => tapStatistic(tap, 'rx_packets') > packetsBefore);
    assert.is(tapStatistic(tap, 'rx_packets') - packetsBefore, 1, 'one frame');
    assert.is(tapStatistic(tap, 'rx_bytes') - bytesBefore, tcp.length, 'all of it');
    assert.is(device.stats().portTxDropped, 0);

    // Receive with GUEST_CSUM: the host leaves the UDP checksum partial (TUN_F_CSUM), or says
    // it checked it; either way the flags reach the driver's header.
    const received = await receiveFromHost(session, udp, 'partial from the host');
    const placed = new DataView(received.buffer, received.byteOffset);
    const flags = placed.getUint8(0);
    assert.ok(flags === 1 || flags === 2, `NEEDS_CSUM or DATA_VALID, not ${flags}`);
    if (flags === 1) {
      assert.is(placed.getUint16(6, true), 34, 'csum_start: the UDP header');
      assert.is(placed.getUint16(8, true), 6, 'csum_offset: the UDP checksum');
    }
  } finally {
    udp.close();
    session?.close();
    await server?.close();
    await device?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await until('the tap to go away with the device', () => !existsSync(`/sys/class/net/${tap}`));
});

/**
 * Receive GSO: with GUEST_CSUM and GUEST_TSO4 negotiated the device's tap takes TSO
 * (TUNSETOFFLOAD), so a TCP GSO frame that the host forwards to it arrives whole, and the
 * receiveq hands it to the driver with its GSO header over mergeable buffers. The frame enters
 * the host through a second tap (written with its own virtio-net header, as a guest on it would
 * send it) on a bridge with the device's tap: the bridge forwards it as one GSO skb.
 */
(root ? test : test.skip)('port tap hands the host kernel’s TSO frames to the driver whole (GUEST_TSO4)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-tap-'));
  const socketPath = join(dir, 'vhost.sock');
  const id = process.pid % 100000;
  const tap = `zcg${id}`;
  const feeder = `zcf${id}`;
  const bridge = `zcb${id}`;
  let device: VirtioNet | null = null;
  let server: VhostUserServer | null = null;
  let session: FrontendSession | null = null;
  let feederFd = -1;
  try {
    device = await tapDevice(tap, { guestTso: true });
    server = new VhostUserServer({ socketPath, device, log: () => {} });
    const features = DEFAULT_SESSION_FEATURES | featureMask(FeatureBit.netGuestCsum, FeatureBit.netGuestTso4);
    session = await FrontendSession.open({ socketPath, memoryBytes: 4 << 20, queues: 2, features });
    assert.ok(hasFeature(session.features, FeatureBit.netGuestTso4), 'GUEST_TSO4 negotiated');
    await until('the tap to exist', () => existsSync(`/sys/class/net/${tap}`));
    feederFd = sys.tunOpen(feeder, true);
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    for (const dev of [tap, feeder]) execFileSync('ip', ['link', 'set', dev, 'master', bridge]);
    for (const dev of [bridge, tap, feeder]) execFileSync('ip', ['link', 'set', dev, 'up']);

    const rx = new SplitRingDriver(session, RECEIVEQ);
    const buffers = new Map<number, number>();
    const postBuffers = (count: number): void => {
      for (let i = 0; i < count; i++) {
        const gpa = rx.place(new Uint8Array(2048));
        buffers.set(rx.addChain([{ gpa, length: 2048, writable: true }]), gpa);
      }
      rx.publish();
      session!.kick(RECEIVEQ);
    };
    postBuffers(120);
    // A TSO frame of three 1000-byte segments from the feeder, its header as a driver writes it.
    const tcp = tcpFrame(DEVICE_MAC, 5201, 3000);
    tcp.set([0x02, 0, 0, 0, 0, 0x01], 6);
    const header = new Uint8Array(10);
    header.set(offloadHeader(34, 16, 54, 1000).subarray(0, 10));
    const packet = new Uint8Array([...header, ...tcp]);
    let seen = 0;
    let found: { header: DataView; frame: Uint8Array; buffers: number } | null = null;
    for (let attempt = 0; attempt < 20 && found === null; attempt++) {
      assert.is(sys.writeFd(feederFd, packet, 0, packet.length), packet.length, 'the feeder takes the frame');
      const deadline = Date.now() + 500;
      while (found === null && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        while (seen < rx.usedIdx()) {
          // One frame: its first chain's header says how many chains it took.
          const first = rx.usedElement(seen);
          const head = session.memory.slice(buffers.get(first.id)!, first.len);
          const h = new DataView(head.buffer, head.byteOffset, HEADER_LENGTH);
          const count = h.getUint16(10, true);
          const bytes = [...head];
          for (let k = 1; k < count; k++) {
            const e = rx.usedElement(seen + k);
            bytes.push(...session.memory.slice(buffers.get(e.id)!, e.len));
          }
          seen += count;
          if (h.getUint8(1) !== 0) found = { header: new DataView(Uint8Array.from(bytes.slice(0, HEADER_LENGTH)).buffer), frame: Uint8Array.from(bytes.slice(HEADER_LENGTH)), buffers: count };
        }
      }
    }
    assert.ok(found, 'a GSO frame reached the receiveq');
    assert.is(found.header.getUint8(1), 1, 'gso_type TCPV4');
    assert.is(found.header.getUint16(4, true), 1000, 'gso_size');
    assert.is(found.header.getUint8(0) & 1, 1, 'NEEDS_CSUM');
    assert.is(found.header.getUint16(6, true), 34, 'csum_start');
    assert.is(found.header.getUint16(8, true), 16, 'csum_offset');
    assert.is(found.frame.length, tcp.length, 'the whole frame, not a segment');
    assert.equal([...found.frame.subarray(54)], [...tcp.subarray(54)], 'the payload, byte for byte');
    assert.is(found.buffers, Math.ceil((HEADER_LENGTH + tcp.length) / 2048), 'spread over mergeable buffers');
    const stats = device.stats();
    assert.ok(stats.rxGso.frames.tcp4 >= 1);
    assert.is(stats.rxGso.notNegotiated, 0);
    assert.ok(stats.features.includes('GUEST_TSO4'));
  } finally {
    if (feederFd >= 0) sys.close(feederFd);
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      // never made
    }
    session?.close();
    await server?.close();
    await device?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await until('the tap to go away with the device', () => !existsSync(`/sys/class/net/${tap}`));
});

(root ? test : test.skip)('a tap port keeps one watch across wakeups, and closeTaps stops it', async () => {
  const tap = `zcw${process.pid % 100000}`;
  const received: string[] = [];
  const receiver = {
    receive(src: ByteSpace, srcOffset: number, length: number): boolean {
      received.push(Buffer.from(src.bytes.subarray(srcOffset, srcOffset + length)).toString('latin1'));
      return true;
    },
  };
  let wakes = 0;
  let watchesAtWake = 0;
  const udp = createSocket('udp4');
  const watchesBefore = sys.watcherCount();
  try {
    const port: TapPort = new TapPort(receiver, createCounters(), tap, () => {
      wakes++;
      watchesAtWake = Math.max(watchesAtWake, sys.watcherCount() - watchesBefore);
      setImmediate(() => port.service(0));
    });
    assert.is(port.error, null);
    assert.is(sys.watcherCount() - watchesBefore, 1, 'one watch per tap');
    execFileSync('ip', ['addr', 'add', `${HOST_IP.join('.')}/30`, 'dev', tap]);
    execFileSync('ip', ['link', 'set', tap, 'up']);
    execFileSync('ip', ['neigh', 'replace', GUEST_IP.join('.'), 'lladdr', '52:54:00:12:34:56', 'dev', tap, 'nud', 'permanent']);
    await new Promise<void>((resolve) => udp.bind(0, HOST_IP.join('.'), resolve));
    for (let i = 0; i < 20; i++) {
      const before = wakes;
      udp.send(`wakeup ${i}`, 9999, GUEST_IP.join('.'));
      await until(`wakeup ${i}`, () => wakes > before && received.some((frame) => frame.includes(`wakeup ${i}`)));
    }
    assert.is(watchesAtWake, 1, 'the watch keeps running while the port is woken and reads');
    assert.is(sys.watcherCount() - watchesBefore, 1, 'still the one watch');
  } finally {
    udp.close();
    closeTaps();
  }
  assert.is(sys.watcherCount(), watchesBefore, 'closeTaps stopped the watch');
  await until('the tap to go away', () => !existsSync(`/sys/class/net/${tap}`));
});

test.run();
