/**
 * A real peer for the guest's flows: a network namespace with the device's tap in it
 * (198.18.0.1/24, the guest being 198.18.0.2) and harness/peer.ts listening there, so that the
 * host kernel's TCP/UDP stack terminates what the guest sends through the device's port `tap`.
 *
 *   device (port tap) <-> tap in namespace zcnic-peer-<pid> <-> host stack <-> peer.js
 *
 * Needs root (ip netns, a tap). Everything is removed on stop(): the peer process (by pid) and
 * the namespace. The tap itself belongs to the device process and goes away with it; until then
 * deleting the namespace only takes it out of the namespace. start() cleans up after itself when
 * it fails half-way.
 */
import { execa, type ResultPromise } from 'execa';
import { untilReady } from './child-ready.js';
import { ip } from './ip-command.js';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { SEND_TIMEOUT_MS, type PeerStats, type SendRequest, type SendResult } from './peer.js';

export const PEER_ADDRESS = '198.18.0.1';
export const PEER_PREFIX = 24;

export interface PeerNetnsOptions {
  /** The device's tap, already created (the device opened it) in this namespace. */
  readonly tap: string;
  /** Unix socket path for the peer's stats. */
  readonly control: string;
  /** Lines the peer prints (results per stream). */
  readonly onOutput?: (line: string) => void;
  readonly readyTimeoutMs?: number;
}


export class PeerNetns {
  private constructor(
    readonly namespace: string,
    private readonly control: string,
    private peer: ResultPromise | null,
  ) {}

  static async start(o: PeerNetnsOptions): Promise<PeerNetns> {
    const namespace = `zcnic-peer-${process.pid}`;
    const peerEntry = new URL('./peer.js', import.meta.url).pathname;
    if (!existsSync(`/sys/class/net/${o.tap}`)) throw new Error(`peer: no tap ${o.tap} (the device opens it with port tap)`);
    ip('netns', 'add', namespace);
    const started = new PeerNetns(namespace, o.control, null);
    // However the harness ends, the peer and the namespace go with it: on Ctrl-C or SIGTERM
    // execa's child cleanup re-raises the signal once the other listeners ran, and the process
    // dies before any async cleanup, so this one is synchronous. stop() unregisters it.
    process.once('exit', started.onExit);
    process.once('SIGINT', started.onExit);
    process.once('SIGTERM', started.onExit);
    try {
      ip('link', 'set', o.tap, 'netns', namespace);
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
      ip('-n', namespace, 'addr', 'add', `${PEER_ADDRESS}/${PEER_PREFIX}`, 'dev', o.tap);
      ip('-n', namespace, 'link', 'set', o.tap, 'up');
      const peer = execa('ip', ['netns', 'exec', namespace, process.execPath, peerEntry, '--control', o.control], {
        stdin: 'ignore',
        buffer: false,
        reject: false,
        cleanup: true,
        all: true,
      });
      started.peer = peer;
      await untilReady(peer, { what: 'peer', isReady: (line) => line.startsWith('listening '), timeoutMs: o.readyTimeoutMs ?? 10_000, onLine: (line) => o.onOutput?.(line) });
      return started;
    } catch (err) {
      await started.stop();
      throw err;
    }
  }

  /** The peer's totals and last finished stream. */
  stats(): Promise<PeerStats> {
    return this.ask({ cmd: 'stats' }, 5000) as Promise<PeerStats>;
  }

  /** The peer sends a pattern stream to the guest (harness/peer.ts, `send`); resolves when the guest closed. */
  async send(request: SendRequest): Promise<SendResult> {
    // The peer gives up at SEND_TIMEOUT_MS and answers why; a little longer here for that answer.
    const answer = (await this.ask({ cmd: 'send', ...request }, SEND_TIMEOUT_MS + 5000)) as SendResult | { error: string };
    if ('error' in answer) throw new Error(answer.error);
    return answer;
  }

  /** One request on the peer's control socket and its one-line JSON answer. */
  private ask(request: Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(this.control);
      let data = '';
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
      socket.on('data', (chunk: string) => {
        data += chunk;
        if (data.includes('\n')) {
          clearTimeout(timer);
          socket.end();
          try {
            resolve(JSON.parse(data.slice(0, data.indexOf('\n'))));
          } catch (e) {
            reject(e as Error);
          }
        }
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`peer: no answer to ${String(request.cmd)} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
    });
  }

  private readonly onExit = (): void => {
    if (this.peer?.pid !== undefined && this.peer.exitCode === null && this.peer.signalCode === null) this.peer.kill('SIGKILL');
    try {
      ip('netns', 'del', this.namespace);
    } catch {
      // Already gone.
    }
  };

  /** Stops the peer (by pid) and deletes the namespace; never throws. */
  async stop(): Promise<void> {
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onExit);
    process.off('SIGTERM', this.onExit);
    const peer = this.peer;
    this.peer = null;
    if (peer?.pid !== undefined && peer.exitCode === null && peer.signalCode === null) {
      peer.kill('SIGTERM');
      const killer = setTimeout(() => peer.kill('SIGKILL'), 3000);
      await peer.catch(() => undefined);
      clearTimeout(killer);
    }
    try {
      ip('netns', 'del', this.namespace);
    } catch {
      // Already gone.
    }
  }
}
