/**
 * iperf3's server inside a peer's network namespace (zcnic's tap peer, harness/peer-netns.ts, or
 * the reference's tap, harness/reference-netns.ts), for the guest's `iperf3` suite: the host
 * kernel's TCP stack at the far end of the guest's flows, the same program on both NICs. It
 * serves one client after another until stop(); execa's cleanup kills it if the harness dies.
 */
import { execa, type ResultPromise } from 'execa';
import { untilReady } from './child-ready.js';

/** guest/suites/iperf3.sh: guest TCP throughput to the netns peer, run from the host's root. */
export const IPERF3_SUITE = 'iperf3';
/** Beside the netns peer's own port (harness/peer.ts PEER_PORT, iperf3's default); the guest learns it as zcnic.iperf_port. */
export const IPERF3_PORT = 5202;
const READY_TIMEOUT_MS = 10_000;

export class Iperf3Server {
  private constructor(private readonly server: ResultPromise) {}

  /** Starts `iperf3 -s` bound to `address`, run under `prefix` (ip netns exec NS); resolves once it listens. */
  static async start(prefix: readonly string[], address: string, onOutput: (line: string) => void): Promise<Iperf3Server> {
    const command = [...prefix, 'iperf3', '--server', '--bind', address, '--port', String(IPERF3_PORT), '--forceflush'];
    const server = execa(command[0]!, command.slice(1), { stdin: 'ignore', buffer: false, reject: false, cleanup: true, all: true });
    const started = new Iperf3Server(server);
    try {
      await untilReady(server, {
        what: 'iperf3 server',
        isReady: (line) => line.startsWith('Server listening'),
        timeoutMs: READY_TIMEOUT_MS,
        // iperf3 rules off each report with a line of dashes.
        onLine: (line) => {
          if (!/^[- ]+$/.test(line)) onOutput(line);
        },
      });
      return started;
    } catch (err) {
      await started.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.server.exitCode === null && this.server.signalCode === null) this.server.kill('SIGTERM');
    await this.server.catch(() => undefined);
  }
}
