/**
 * The guest's NICs for one boot, and what the harness asks of them:
 * - `zcnic`: one zcnic NIC (the device under test), port sink until a test chooses;
 * - `zcnic-pair`: two zcnic NICs, a device process each, joined by the `wire` port queue pair
 *   for queue pair (what one transmits the other receives): the guest-to-guest link the
 *   kernel's selftests run over (NETIF here, the other NIC in a netns);
 * - `qemu-tap-pair`: the reference, QEMU's own virtio-net on two taps bridged in a namespace of
 *   their own (harness/reference-netns.ts), for the same guest and tests;
 * - `qemu-tap`: the reference for one NIC, QEMU's own virtio-net on a tap that holds the netns
 *   peer's address (as zcnic's tap port has it), for the suites that talk to the host's stack.
 * Each test's record holds the first NIC's counters, and the second's under `remoteNic`.
 */
import type { NicBackend } from './qemu.js';
import { createWire, ZcnicDevice } from './device-process.js';
import type { DeviceRequests } from './guest-requests.js';
import type { RecordedDevice } from './test-recorder.js';
import { ReferenceNetns } from './reference-netns.js';
import { PEER_ADDRESS, PEER_PREFIX } from './peer-netns.js';

export const NETWORKS = ['zcnic', 'zcnic-pair', 'qemu-tap-pair', 'qemu-tap'] as const;
export type Network = (typeof NETWORKS)[number];

/** The NICs' MACs, first and second; the guest tells them apart by these. */
export const NIC_MACS = ['52:54:00:12:34:56', '52:54:00:12:34:57'] as const;

export interface NicStartOptions {
  readonly network: Network;
  /** dist/cli/zcnic.js */
  readonly entry: string;
  /** Vhost-user socket path of NIC i. */
  readonly socket: (i: number) => string;
  readonly queues: number;
  readonly ringReset: boolean;
  readonly accessPlatform: boolean;
  readonly tso: boolean;
  /** The devices offer GUEST_TSO4/TSO6/ECN (zcnic device --guest-tso). */
  readonly guestTso?: boolean;
  readonly onOutput: (source: string) => (line: string) => void;
}

/**
 * The guest's requests to a NIC pair: to the first NIC, except `stats`, answered with both NICs'
 * counters, the second's under `remoteNic` as in each test's record, so that a guest test can
 * check (zcnic_ctl stats, wait) what crossed the wire into the second NIC.
 */
export function withRemoteStats(first: DeviceRequests, second: DeviceRequests): DeviceRequests {
  return {
    request: async (body) => {
      if (body['cmd'] !== 'stats') return first.request(body);
      const [local, remote] = await Promise.all([first.request(body), second.request(body)]);
      return typeof local === 'object' && local !== null ? { ...local, remoteNic: remote } : local;
    },
  };
}

export class GuestNics {
  private constructor(
    readonly network: Network,
    /** The zcnic devices, NIC order; none for the reference. */
    readonly devices: readonly ZcnicDevice[],
    /** What QEMU attaches its NICs to, in order. */
    readonly backends: readonly NicBackend[],
    /** The reference's namespace; QEMU runs inside it. */
    readonly netns: ReferenceNetns | null,
  ) {}

  static async start(o: NicStartOptions): Promise<GuestNics> {
    const common = { entry: o.entry, queues: o.queues, ringReset: o.ringReset, accessPlatform: o.accessPlatform, tso: o.tso, guestTso: o.guestTso === true };
    switch (o.network) {
      case 'zcnic': {
        const device = await ZcnicDevice.start({ ...common, socket: o.socket(0), port: 'sink', verify: true, onOutput: o.onOutput('device') });
        return new GuestNics(o.network, [device], [{ kind: 'vhost-user', socket: o.socket(0), mac: NIC_MACS[0] }], null);
      }
      case 'zcnic-pair': {
        const wire = createWire(o.queues);
        const devices: ZcnicDevice[] = [];
        try {
          for (const [i, fds] of [wire.a, wire.b].entries()) {
            devices.push(await ZcnicDevice.start({ ...common, socket: o.socket(i), port: 'wire', wireFds: fds, onOutput: o.onOutput(i === 0 ? 'device' : 'device-2') }));
          }
        } catch (err) {
          await Promise.all(devices.map((d) => d.stop().catch(() => undefined)));
          throw err;
        } finally {
          // Each device holds its own ends now (or failed): the harness's copies must go, or a
          // device's peer would never see the other end close.
          wire.close();
        }
        return new GuestNics(o.network, devices, NIC_MACS.map((mac, i) => ({ kind: 'vhost-user', socket: o.socket(i), mac })), null);
      }
      case 'qemu-tap-pair': {
        const netns = ReferenceNetns.bridged(NIC_MACS.length, o.queues);
        return new GuestNics(o.network, [], netns.taps.map((ifname, i) => ({ kind: 'tap', ifname, mac: NIC_MACS[i]! })), netns);
      }
      case 'qemu-tap': {
        const netns = ReferenceNetns.peer(o.queues, PEER_ADDRESS, PEER_PREFIX);
        return new GuestNics(o.network, [], [{ kind: 'tap', ifname: netns.taps[0]!, mac: NIC_MACS[0] }], netns);
      }
    }
  }

  /** The NIC under test's device (the peer's tap, the guest's zcnic_ctl requests), if zcnic's. */
  get primary(): ZcnicDevice | null {
    return this.devices[0] ?? null;
  }

  /** What the test recorder reads and the guest's requests go to. */
  get recorded(): RecordedDevice {
    const [first, second] = this.devices;
    const none = (): Promise<never> => Promise.reject(new Error(`no zcnic device: the NICs are ${this.netns !== null ? "QEMU's own (the reference run)" : 'absent'}`));
    if (!first) return { stats: none, request: none };
    const requests = (d: ZcnicDevice): DeviceRequests => ({ request: (body) => d.request(body as Parameters<ZcnicDevice['request']>[0]) });
    return {
      request: second ? withRemoteStats(requests(first), requests(second)).request : requests(first).request,
      stats: async () => (second ? { ...(await first.stats()), remoteNic: await second.stats() } : first.stats()),
    };
  }

  /**
   * Before each test: a zcnic NIC starts afresh (port sink, verification on, strict off, no
   * map, zero counters); a pair keeps its wire and only zeroes its counters.
   */
  async begin(): Promise<void> {
    if (this.network === 'zcnic-pair') {
      await Promise.all(this.devices.map((d) => d.request({ cmd: 'resetCounters' })));
      return;
    }
    const device = this.primary;
    if (!device) return;
    await device.request({ cmd: 'setPort', port: 'sink' });
    await device.request({ cmd: 'setVerify', on: true });
    await device.request({ cmd: 'setRequireLinearHeader', on: false });
    await device.request({ cmd: 'setZeroCopyMap', map: null });
    await device.request({ cmd: 'resetCounters' });
  }

  /** Resolves, with a description, when a device exits on its own (never for the reference). */
  exited(): Promise<string> {
    return Promise.race(this.devices.map((d, i) => d.exitPromiseForRun().then((e) => `the zcnic device${this.devices.length > 1 ? ` of NIC ${i + 1}` : ''} exited unexpectedly (${e})`)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.stop().catch(() => undefined)));
    this.netns?.stopSync();
  }
}
