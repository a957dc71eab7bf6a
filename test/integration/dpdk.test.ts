/**
 * zcnic against a frontend nobody here wrote: DPDK 22.11's net_virtio_user (testpmd), over split
 * rings and packed ones (packed_vq=1), each with VIRTIO_F_IN_ORDER negotiated and without it.
 * Counts must agree exactly in both directions. Processes are started and stopped by PID; nothing is
 * left running.
 */
import { join } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { scratchFolderPerTest, txonlyIntoSink, until } from '../support/integration.js';
import type { DeviceStats } from '../../harness/device-control.js';
import { ZcnicDevice, type ZcnicDeviceOptions } from '../../harness/device-process.js';
import { pidAlive, Testpmd, type TestpmdOptions } from '../../harness/dpdk/testpmd.js';

const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;
const dpdk = suite('dpdk');
const scratch = scratchFolderPerTest(dpdk, 'zcnic-it-');

/**
 * The rings testpmd's virtio-user can drive: split by default, packed with packed_vq=1, and
 * either with IN_ORDER (in_order=1, its default) or without. zcnic offers all of it; IN_ORDER
 * is left out once by the device (--no-in-order, the frontend asking) and once by the frontend
 * (in_order=0, the device offering). With it, DPDK takes other paths on both rings (in-order
 * transmit cleanup, which reads one used element per batch) and the device batches its transmitq.
 */
const VARIANTS = [
  { name: 'split', layout: 'split', inOrder: false, deviceArgs: ['--no-in-order'], vdevArgs: 'in_order=1' },
  { name: 'split in-order', layout: 'split', inOrder: true, deviceArgs: [], vdevArgs: 'in_order=1' },
  { name: 'packed', layout: 'packed', inOrder: false, deviceArgs: [], vdevArgs: 'packed_vq=1,in_order=0' },
  { name: 'packed in-order', layout: 'packed', inOrder: true, deviceArgs: [], vdevArgs: 'packed_vq=1,in_order=1' },
] as const;

async function pair(device: Partial<ZcnicDeviceOptions>, testpmd: Partial<TestpmdOptions>) {
  const socket = join(scratch(), 'vhost.sock');
  const zc = await ZcnicDevice.start({ entry, socket, port: 'sink', ...device });
  const tp = await Testpmd.start({ role: 'frontend', socket, forwardMode: 'rxonly', ...testpmd });
  return { zc, tp };
}

/** The stats name the layout that ran and whether IN_ORDER was negotiated (a frontend that fell back would fail here). */
function assertNegotiated(stats: DeviceStats, layout: string, inOrder: boolean): void {
  assert.is(stats.features.includes('RING_PACKED'), layout === 'packed', stats.features.join(' '));
  assert.is(stats.features.includes('IN_ORDER'), inOrder, stats.features.join(' '));
  assert.equal(stats.queues.map((q) => [q.index, q.layout]), [[0, layout], [1, layout]]);
}

// Exact counts both ways and a reflect loop, over each ring layout, with and without IN_ORDER.
for (const { name, layout, inOrder, deviceArgs, vdevArgs } of VARIANTS) {
  const device = { extraArgs: [...deviceArgs] };
  dpdk(`${name}: sink counts exactly the frames testpmd txonly sent`, async () => {
    const { zc, tp } = await pair(device, { forwardMode: 'txonly', txPktLen: 64, vdevArgs });
    const { sent, stats } = await txonlyIntoSink(zc, tp);
    assertNegotiated(stats, layout, inOrder);
    const pids = [zc.pid, tp.pid];
    await tp.close();
    const exit = await zc.stop();
    assert.is(exit.exitCode, 0);
    assert.is(exit.final?.transmitq.frames, sent, 'the exit line agrees');
    assert.equal(exit.final?.queues.map((q) => q.layout), [layout, layout]);
    for (const pid of pids) assert.not.ok(pidAlive(pid), `pid ${pid} is gone`);
  });

  dpdk(`${name}: gen sends N frames and testpmd rxonly receives exactly N`, async () => {
    const { zc, tp } = await pair(device, { forwardMode: 'rxonly', vdevArgs });
    await tp.startForwarding();
    const n = 100_000;
    assert.equal(await zc.request({ cmd: 'setPort', port: 'gen', gen: { size: 64, count: n, pps: 0 } }), { ok: true });
    const port = await until(() => tp.portStats(), (s) => s.rxPackets >= n, `${n} frames at testpmd`);
    await new Promise((r) => setTimeout(r, 300));
    assert.is((await tp.portStats()).rxPackets, n, 'no more than N');
    assert.is(port.rxBytes, n * 64);
    const stats = await zc.stats();
    assert.is(stats.receiveq.frames, n);
    assert.is(stats.receiveq.noBuffers, 0);
    assertNegotiated(stats, layout, inOrder);
  });

  dpdk(`${name}: reflect: every frame testpmd sends comes back or is counted as dropped`, async () => {
    const { zc, tp } = await pair({ ...device, port: 'reflect', verify: false }, { forwardMode: 'macswap', vdevArgs });
    await tp.startForwarding({ txFirst: true });
    await new Promise((r) => setTimeout(r, 1500));
    await tp.stopForwarding();
    const tpStats = await tp.portStats();
    // Counters are read while the worker may be mid-burst: wait until both sides have settled.
    const stats = await until(
      () => zc.stats(),
      (s) => s.transmitq.frames >= tpStats.txPackets && s.receiveq.frames + s.receiveq.noBuffers >= s.transmitq.frames,
      'the device to take and reflect every frame',
    );
    const { frames: reflected, noBuffers } = stats.receiveq;
    assert.ok(tpStats.txPackets > 1000, `testpmd sent ${tpStats.txPackets}`);
    assert.is(stats.transmitq.frames, tpStats.txPackets);
    assert.is(reflected + noBuffers, stats.transmitq.frames, 'reflected + dropped = transmitted');
    // The last frames were reflected after testpmd stopped reading: let it drain without sending.
    await tp.command('set fwd rxonly');
    await tp.startForwarding();
    const received = await until(() => tp.portStats(), (p) => p.rxPackets >= reflected, 'testpmd to drain its receive ring');
    await tp.stopForwarding();
    assert.is(received.rxPackets, reflected, 'testpmd received what the device reflected');
    assertNegotiated(stats, layout, inOrder);
  });
}

dpdk('two queue pairs on two datapath workers', async () => {
  const socket = join(scratch(), 'vhost.sock');
  const zc = await ZcnicDevice.start({ entry, socket, port: 'sink', queues: 2, extraArgs: ['--workers', '2'] });
  const tp = await Testpmd.start({ role: 'frontend', socket, forwardMode: 'txonly', queues: 2, txPktLen: 64 });
  await tp.startForwarding();
  await new Promise((r) => setTimeout(r, 1000));
  await tp.stopForwarding();
  const sent = (await tp.portStats()).txPackets;
  const stats = await until(() => zc.stats(), (s) => s.transmitq.frames >= sent, 'all frames');
  assert.is(stats.transmitq.frames, sent);
});

dpdk('pcap of generated frames reads back in tshark: count, lengths, checksums, payload', async () => {
  const pcap = join(scratch(), 'gen.pcap');
  const { zc, tp } = await pair({ pcap }, { forwardMode: 'rxonly' });
  await tp.startForwarding();
  const n = 500;
  await zc.request({ cmd: 'setPort', port: 'gen', gen: { size: 200, count: n, pps: 0 } });
  await until(() => tp.portStats(), (s) => s.rxPackets >= n, 'the frames');
  await tp.close();
  await zc.stop();
  // -d: decode UDP 9000 as plain data, or heuristic dissectors claim some payloads.
  const { stdout } = await execa('tshark', ['-r', pcap, '-d', 'udp.port==9000,data', '-o', 'ip.check_checksum:TRUE', '-Y', 'ip.checksum.status == "Good" && udp.dstport == 9000', '-T', 'fields', '-e', 'frame.len', '-e', 'data.data']);
  const rows = stdout.trim().split('\n').map((l) => l.split('\t'));
  assert.is(rows.length, n, 'every frame, with a good IPv4 checksum');
  rows.forEach(([len, data], seq) => {
    assert.is(len, '200');
    const bytes = Buffer.from(data!, 'hex');
    assert.is(bytes.subarray(0, 4).toString(), 'ZCNC');
    assert.is(bytes.readUInt32LE(8), seq, 'sequence in order');
    // Pattern byte at frame offset i is (seq + i) & 0xff; data starts at frame offset 42.
    for (let i = 16; i < bytes.length; i++) assert.is(bytes[i], (seq + 42 + i) & 0xff);
  });
});

dpdk.run();
