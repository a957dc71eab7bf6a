/**
 * The peer of the `msg-zerocopy` and `zcrx` suites: a small TCP and UDP server that runs inside
 * the network namespace of harness/peer-netns.ts, behind the device's tap, so that the host
 * kernel's stack terminates the guest's flows. It checks every byte by digest: each stream (a TCP connection,
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
 * The other direction (zcrx: the guest receives): `{"cmd":"send","host":H,"port":P,"bytes":N,
 * "seed":S}` on the control socket makes the peer connect to H:P, send N bytes of
 * streamPattern(S), shut its side down and wait for the receiver to close; the answer is
 * `{"sent":N,"ms":T}` once the receiver closed, or `{"error":...}`.
 *
 * Usage: node peer.js [--port N] [--control PATH] (port 0: any free port, TCP and UDP the same).
 * It prints `listening <port>` when ready and
 * one JSON line per finished stream on stdout. With --control, a unix socket answers
 * `{"cmd":"stats"}` with the totals (streams, bytes, last results) as one JSON line, and
 * `{"cmd":"send",...}` as above.
 */
import { createHash, type Hash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { parseArgs } from 'node:util';

export const PEER_PORT = 5201;
export const UDP_END_MARKER = 'zcnic-peer-end';
/** How long a `send` may take: below the guest's 120 s wait for a harness answer (zcnic_ctl). */
export const SEND_TIMEOUT_MS = 100_000;

export interface StreamResult {
  readonly proto: 'tcp' | 'udp';
  readonly from: string;
  readonly datagrams?: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** A stream the peer sends to the guest (the control socket's `send`). */
export interface SendRequest {
  readonly host: string;
  readonly port: number;
  readonly bytes: number;
  readonly seed: number;
}

export interface SendResult {
  readonly sent: number;
  readonly ms: number;
}

/** Largest stream a `send` may ask for: the guest verifies every byte, under TCG. */
export const SEND_MAX_BYTES = 1 << 30;
const SEND_CHUNK_BYTES = 256 << 10;

/**
 * A send request's fields checked (an IPv4 address, a port, 1..SEND_MAX_BYTES bytes, a 32-bit
 * seed), or why not. Both the guest's words (harness/guest-requests.ts) and the control
 * socket's JSON come through here.
 */
export function parseSendRequest(fields: Readonly<Record<string, unknown>>): SendRequest | string {
  const { host, port, bytes, seed } = fields;
  const integer = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  if (typeof host !== 'string' || !/^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/.test(host)) return `send: host must be an IPv4 address, got ${JSON.stringify(host)}`;
  if (!integer(port, 1, 65535)) return `send: port must be 1..65535, got ${JSON.stringify(port)}`;
  if (!integer(bytes, 1, SEND_MAX_BYTES)) return `send: bytes must be 1..${SEND_MAX_BYTES}, got ${JSON.stringify(bytes)}`;
  if (!integer(seed, 0, 0xffffffff)) return `send: seed must be 0..4294967295, got ${JSON.stringify(seed)}`;
  return { host, port, bytes, seed };
}

/**
 * `length` bytes of the stream pattern of `seed` from stream offset `offset` (a multiple of 4):
 * the 4-byte word at offset 4w is fmix32(w ^ seed), MurmurHash3's finaliser, little-endian. The
 * guest's receiver (guest/zcrx-recv/zcrx-recv.c, pattern_word) checks each byte at its position.
 */
export function streamPattern(seed: number, offset: number, length: number): Buffer {
  if (offset % 4 !== 0) throw new Error(`streamPattern: offset ${offset} is not a multiple of 4`);
  const words = Math.ceil(length / 4);
  const out = Buffer.allocUnsafe(words * 4);
  const first = offset / 4;
  for (let i = 0; i < words; i++) {
    // The word index modulo 2^32, as the C side's (uint32_t) cast.
    let h = ((first + i) % 0x1_0000_0000 ^ seed) >>> 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    out.writeUInt32LE(h >>> 0, i * 4);
  }
  return out.subarray(0, length);
}

/** Connects to the receiver, sends the pattern, shuts down and resolves when the receiver closed. */
export function sendPattern(request: SendRequest, timeoutMs: number): Promise<SendResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let sent = 0;
    const socket = connect(request.port, request.host);
    const timer = setTimeout(() => socket.destroy(new Error(`send: ${sent} of ${request.bytes} bytes after ${timeoutMs} ms`)), timeoutMs);
    const pump = (): void => {
      while (sent < request.bytes) {
        const chunk = streamPattern(request.seed, sent, Math.min(SEND_CHUNK_BYTES, request.bytes - sent));
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    socket.on('connect', pump);
    // The receiver sends nothing; reading lets its close arrive as 'end' and then 'close'.
    socket.resume();
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve({ sent, ms: Date.now() - started });
    });
  });
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
          let request: Record<string, unknown> = {};
          try {
            request = JSON.parse(line) as Record<string, unknown>;
          } catch {
            // Answered as an unknown command below.
          }
          if (request.cmd === 'send') {
            const send = parseSendRequest(request);
            if (typeof send === 'string') {
              socket.write(`${JSON.stringify({ error: send })}\n`);
              continue;
            }
            sendPattern(send, SEND_TIMEOUT_MS).then(
              (result) => socket.write(`${JSON.stringify(result)}\n`),
              (err: Error) => socket.write(`${JSON.stringify({ error: `send to ${send.host}:${send.port}: ${err.message}` })}\n`),
            );
            continue;
          }
          socket.write(`${JSON.stringify(request.cmd === 'stats' ? stats : { error: 'known: {"cmd":"stats"}, {"cmd":"send",...}' })}\n`);
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
