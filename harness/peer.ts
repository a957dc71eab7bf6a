/**
 * The peer of the `msg-zerocopy` suite: a small TCP and UDP server that runs inside the network
 * namespace of harness/peer-netns.ts, behind the device's tap, so that the host kernel's stack
 * terminates the guest's flows. It checks every byte by digest: each stream (a TCP connection,
 * or the UDP datagrams of one source address and port) is counted and hashed (SHA-256), and the
 * sender asks for the result in band:
 *
 * - TCP: after the client shuts down its sending side, the peer answers on the same connection
 *   with one line `<bytes> <sha256 hex>\n` and closes.
 * - UDP: a datagram of exactly `zcnic-peer-end` ends the source's stream; the peer answers it
 *   with a datagram `<datagrams> <bytes> <sha256 hex>` (the end marker is not counted) and
 *   forgets the stream. A sender that lost the answer may ask again: a repeated end marker for
 *   a forgotten stream is answered with the last result of that source.
 *
 * Usage: node peer.js [--port N] [--control PATH] (port 0: any free port, TCP and UDP the same).
 * It prints `listening <port>` when ready and
 * one JSON line per finished stream on stdout. With --control, a unix socket answers
 * `{"cmd":"stats"}` with the totals (streams, bytes, last results) as one JSON line.
 */
import { createHash, type Hash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

export const PEER_PORT = 5201;
export const UDP_END_MARKER = 'zcnic-peer-end';

export interface StreamResult {
  readonly proto: 'tcp' | 'udp';
  readonly from: string;
  readonly datagrams?: number;
  readonly bytes: number;
  readonly sha256: string;
}

export interface PeerStats {
  tcp: { streams: number; bytes: number };
  udp: { streams: number; datagrams: number; bytes: number };
  last: StreamResult | null;
}

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string', default: String(PEER_PORT) }, control: { type: 'string' } } });
  const port = Number(values.port);
  const stats: PeerStats = { tcp: { streams: 0, bytes: 0 }, udp: { streams: 0, datagrams: 0, bytes: 0 }, last: null };
  const finished = (result: StreamResult): void => {
    stats.last = result;
    process.stdout.write(`${JSON.stringify(result)}\n`);
  };

  const tcp = createServer((socket) => {
    const from = `${socket.remoteAddress}:${socket.remotePort}`;
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      stats.tcp.bytes += chunk.length;
    });
    socket.on('end', () => {
      const sha256 = hash.digest('hex');
      stats.tcp.streams++;
      finished({ proto: 'tcp', from, bytes, sha256 });
      socket.end(`${bytes} ${sha256}\n`);
    });
    socket.on('error', () => socket.destroy());
  });

  const streams = new Map<string, { hash: Hash; datagrams: number; bytes: number }>();
  const answered = new Map<string, string>();
  const udp = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  udp.on('message', (msg, rinfo) => {
    const from = `${rinfo.address}:${rinfo.port}`;
    if (msg.length === UDP_END_MARKER.length && msg.toString('latin1') === UDP_END_MARKER) {
      const s = streams.get(from);
      let answer = answered.get(from) ?? '0 0 ' + createHash('sha256').digest('hex');
      if (s) {
        const sha256 = s.hash.digest('hex');
        streams.delete(from);
        stats.udp.streams++;
        finished({ proto: 'udp', from, datagrams: s.datagrams, bytes: s.bytes, sha256 });
        answer = `${s.datagrams} ${s.bytes} ${sha256}`;
        answered.set(from, answer);
      }
      udp.send(answer, rinfo.port, rinfo.address);
      return;
    }
    let s = streams.get(from);
    if (!s) streams.set(from, (s = { hash: createHash('sha256'), datagrams: 0, bytes: 0 }));
    s.hash.update(msg);
    s.datagrams++;
    s.bytes += msg.length;
    stats.udp.datagrams++;
    stats.udp.bytes += msg.length;
  });

  if (values.control) {
    const path = values.control;
    rmSync(path, { force: true });
    createServer((socket) => {
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        buffered += chunk;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          let cmd: unknown;
          try {
            cmd = (JSON.parse(line) as { cmd?: unknown }).cmd;
          } catch {
            cmd = undefined;
          }
          socket.write(`${JSON.stringify(cmd === 'stats' ? stats : { error: 'known: {"cmd":"stats"}' })}\n`);
        }
      });
      socket.on('error', () => socket.destroy());
    }).listen(path);
  }

  // TCP first: with --port 0 the UDP socket takes the port TCP was given.
  tcp.listen(port, '0.0.0.0', () => {
    const bound = (tcp.address() as { port: number }).port;
    udp.bind(bound, '0.0.0.0', () => process.stdout.write(`listening ${bound}\n`));
  });
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) main();
