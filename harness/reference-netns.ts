/**
 * The reference NICs' host side, for QEMU's own virtio-net (`-netdev tap`) in the same run as
 * zcnic's: a network namespace of its own with one tap per guest NIC. QEMU runs inside the
 * namespace (`ip netns exec`), so its `-netdev tap,ifname=...` opens these taps and nothing of it
 * touches the host's own network. Two shapes:
 * - bridged: the taps on one bridge, the way netdev's CI joins its two virtio NICs (NIPA's
 *   virtio executor bridges their taps): the selftests' NIC pair;
 * - peer: one tap carrying the netns peer's address, as zcnic's tap port has it
 *   (harness/peer-netns.ts): the host kernel's stack terminates the guest's flows on both.
 * Needs root. stop() removes the taps, the bridge and the namespace (also on exit and on
 * SIGINT/SIGTERM); a start cleans up after itself when it fails half-way.
 */
import { ip } from './ip-command.js';

/**
 * The bridged taps' and the bridge's MTU: a tap's largest (tun's 65535 less the Ethernet
 * header). The selftests' NICs have no F_MTU, so their maximum is 65535, like the wire port's,
 * and the tests raise them to 9000 (ping.py's and xdp.py's multi-buffer cases); at the default
 * 1500 the bridge dropped every frame longer than that, and the reference failed those cases
 * (seen on 7.3: ping's xdp_generic_mb and xdp_native_mb, while the same cases passed on zcnic).
 */
const TAP_MTU = 65521;

export class ReferenceNetns {
  private stopped = false;
  private readonly onExit = (): void => this.stopSync();

  private constructor(
    readonly namespace: string,
    readonly taps: readonly string[],
  ) {}

  /** `count` taps (multiqueue when `queues` > 1) on one bridge, all up, in a new namespace. */
  static bridged(count: number, queues: number): ReferenceNetns {
    return ReferenceNetns.make(count, queues, (n, taps) => {
      ip('-n', n, 'link', 'add', 'br0', 'mtu', String(TAP_MTU), 'type', 'bridge');
      for (const tap of taps) {
        ip('-n', n, 'link', 'set', tap, 'mtu', String(TAP_MTU), 'master', 'br0');
        ip('-n', n, 'link', 'set', tap, 'up');
      }
      ip('-n', n, 'link', 'set', 'br0', 'up');
    });
  }

  /** One tap (multiqueue when `queues` > 1) holding `address/prefix`, up, in a new namespace. */
  static peer(queues: number, address: string, prefix: number): ReferenceNetns {
    return ReferenceNetns.make(1, queues, (n, [tap]) => {
      ip('-n', n, 'addr', 'add', `${address}/${prefix}`, 'dev', tap!);
      ip('-n', n, 'link', 'set', tap!, 'up');
    });
  }

  private static make(count: number, queues: number, wire: (namespace: string, taps: readonly string[]) => void): ReferenceNetns {
    const tag = process.pid % 1_000_000;
    const taps = Array.from({ length: count }, (_, i) => `zrt${tag}n${i}`);
    const made = new ReferenceNetns(`zcnic-ref-${tag}`, taps);
    ip('netns', 'add', made.namespace);
    process.once('exit', made.onExit);
    process.once('SIGINT', made.onExit);
    process.once('SIGTERM', made.onExit);
    try {
      const n = made.namespace;
      ip('-n', n, 'link', 'set', 'lo', 'up');
      for (const tap of taps) ip('-n', n, 'tuntap', 'add', 'mode', 'tap', 'name', tap, 'vnet_hdr', ...(queues > 1 ? ['multi_queue'] : []));
      wire(n, taps);
      return made;
    } catch (err) {
      made.stopSync();
      throw err;
    }
  }

  /** The command prefix that runs a program inside the namespace. */
  get exec(): string[] {
    return ['ip', 'netns', 'exec', this.namespace];
  }

  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onExit);
    process.off('SIGTERM', this.onExit);
    // Persistent taps would otherwise outlive the namespace's deletion while QEMU holds them.
    for (const tap of this.taps) {
      try {
        ip('-n', this.namespace, 'tuntap', 'del', 'mode', 'tap', 'name', tap);
      } catch {
        // already gone with its namespace
      }
    }
    try {
      ip('netns', 'del', this.namespace);
    } catch {
      // already gone
    }
  }
}
