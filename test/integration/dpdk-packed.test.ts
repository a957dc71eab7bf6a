/**
 * zcnic's packed ring against DPDK 22.11's net_virtio_user with `packed_vq=1`: the same exact
 * counts both ways as over the split ring (dpdk.test.ts), and the stats name the layout that ran.
 */
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { scratchFolderPerTest, until } from '../support/integration.js';
import { ZcnicDevice, type ZcnicDeviceOptions } from '../../harness/device-process.js';
import { Testpmd, type TestpmdOptions } from '../../harness/dpdk/testpmd.js';

const entry = new URL('../../cli/zcnic.js', import.meta.url).pathname;
const packed = suite('dpdk packed_vq=1');
const scratch = scratchFolderPerTest(packed, 'zcnic-it-');

async function pair(device: Partial<ZcnicDeviceOptions>, testpmd: Partial<TestpmdOptions>) {
  const socket = join(scratch(), 'vhost.sock');
  const zc = await ZcnicDevice.start({ entry, socket, port: 'sink', ...device });
  const tp = await Testpmd.start({ role: 'frontend', socket, forwardMode: 'rxonly', vdevArgs: 'packed_vq=1', ...testpmd });
  return { zc, tp };
}

packed('txonly: the sink counts exactly the frames testpmd sent, over packed rings', async () => {
  const { zc, tp } = await pair({}, { forwardMode: 'txonly', txPktLen: 64 });
  await tp.startForwarding();
  await new Promise((r) => setTimeout(r, 1500));
  await tp.stopForwarding();
  const sent = (await tp.portStats()).txPackets;
  assert.ok(sent > 10_000, `testpmd sent ${sent}`);
  const stats = await until(() => zc.stats(), (s) => s.transmitq.frames >= sent, `${sent} frames at the device`);
  assert.is(stats.transmitq.frames, sent);
  assert.is(stats.transmitq.bytes, sent * 64);
  assert.ok(Object.values(stats.errors).every((v) => v === 0), JSON.stringify(stats.errors));
  assert.ok(stats.features.includes('RING_PACKED'), stats.features.join(' '));
  assert.equal(stats.queues.map((q) => [q.index, q.layout]), [[0, 'packed'], [1, 'packed']]);
  await tp.close();
  const exit = await zc.stop();
  assert.is(exit.exitCode, 0);
  assert.is(exit.final?.transmitq.frames, sent, 'the exit line agrees');
  assert.equal(exit.final?.queues.map((q) => q.layout), ['packed', 'packed']);
});

packed('gen: N frames placed in packed receive rings, testpmd rxonly receives exactly N', async () => {
  const { zc, tp } = await pair({}, { forwardMode: 'rxonly' });
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
  assert.equal(stats.queues.map((q) => q.layout), ['packed', 'packed']);
  await tp.close();
  await zc.stop();
});

packed('reflect: every frame testpmd sends comes back or is counted as dropped', async () => {
  const { zc, tp } = await pair({ port: 'reflect', verify: false }, { forwardMode: 'macswap' });
  await tp.startForwarding({ txFirst: true });
  await new Promise((r) => setTimeout(r, 1500));
  await tp.stopForwarding();
  const tpStats = await tp.portStats();
  const stats = await until(
    () => zc.stats(),
    (s) => s.transmitq.frames >= tpStats.txPackets && s.receiveq.frames + s.receiveq.noBuffers >= s.transmitq.frames,
    'the device to take and reflect every frame',
  );
  const { frames: reflected, noBuffers } = stats.receiveq;
  assert.ok(tpStats.txPackets > 1000, `testpmd sent ${tpStats.txPackets}`);
  assert.is(stats.transmitq.frames, tpStats.txPackets);
  assert.is(reflected + noBuffers, stats.transmitq.frames, 'reflected + dropped = transmitted');
  await tp.command('set fwd rxonly');
  await tp.startForwarding();
  const received = await until(() => tp.portStats(), (p) => p.rxPackets >= reflected, 'testpmd to drain its receive ring');
  await tp.stopForwarding();
  assert.is(received.rxPackets, reflected, 'testpmd received what the device reflected');
  await tp.close();
  await zc.stop();
});

packed.run();
