/**
 * The reference NICs' wire: a network namespace with a bridge and one tap per guest NIC, the
 * way netdev's CI joins its two virtio NICs (NIPA's virtio executor bridges their taps). QEMU
 * runs inside the namespace (`ip netns exec`), so its `-netdev tap,ifname=...` opens these taps
 * and nothing of it touches the host's own network. Needs root. stop() removes the taps, the
 * bridge and the namespace (also on exit and on SIGINT/SIGTERM); start() cleans up after itself
 * when it fails half-way.
 */
import { ip } from './ip-command.js';

/**
 * The taps' and the bridge's MTU: a tap's largest (tun's 65535 less the Ethernet header). The
 * guest's NICs have no F_MTU, so their maximum is 65535, like the wire port's, and the tests
 * raise them to 9000 (ping.py's and xdp.py's multi-buffer cases); at the default 1500 the bridge
 * dropped every frame longer than that, and the reference failed those cases (seen on 7.3:
 * ping's xdp_generic_mb and xdp_native_mb, while the same cases passed on zcnic).
 */
const TAP_MTU = 65521;

export class TapBridgeNetns {
  private stopped = false;
  private readonly onExit = (): void => this.stopSync();

  private constructor(
    readonly namespace: string,
    readonly taps: readonly string[],
  ) {}

  /** `count` taps (multiqueue when `queues` > 1) on one bridge, all up, in a new namespace. */
  static start(count: number, queues: number): TapBridgeNetns {
    const tag = process.pid % 1_000_000;
    const taps = Array.from({ length: count }, (_, i) => `zrt${tag}n${i}`);
    const made = new TapBridgeNetns(`zcnic-ref-${tag}`, taps);
    ip('netns', 'add', made.namespace);
    process.once('exit', made.onExit);
    process.once('SIGINT', made.onExit);
    process.once('SIGTERM', made.onExit);
    try {
      const n = made.namespace;
      ip('-n', n, 'link', 'set', 'lo', 'up');
      ip('-n', n, 'link', 'add', 'br0', 'mtu', String(TAP_MTU), 'type', 'bridge');
      for (const tap of taps) {
        ip('-n', n, 'tuntap', 'add', 'mode', 'tap', 'name', tap, 'vnet_hdr', ...(queues > 1 ? ['multi_queue'] : []));
        ip('-n', n, 'link', 'set', tap, 'mtu', String(TAP_MTU), 'master', 'br0');
        ip('-n', n, 'link', 'set', tap, 'up');
      }
      ip('-n', n, 'link', 'set', 'br0', 'up');
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
