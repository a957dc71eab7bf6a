/**
 * The device's control API: a unix socket (mode 0600) speaking newline-delimited JSON, one
 * request per line, one answer line each. It is how the harness, tests and benchmarks read
 * counters and reconfigure the device between tests without restarting it.
 *
 *   {"cmd":"stats"}                          -> the stats object (same shape as the exit line; DeviceStats,
 *                                            with the negotiated features and the queues started)
 *   {"cmd":"resetCounters"}                  -> {"ok":true}
 *   {"cmd":"setPort","port":"gen","gen":{"size":64,"count":1000,"pps":0}} -> {"ok":true}
 *   {"cmd":"setPort","port":"tap","tap":"zc0"} -> {"ok":true}
 *   {"cmd":"setPort","port":"wire"}         -> {"ok":true}  (only for a device started with --wire-fds)
 *   {"cmd":"setVerify","on":true}           -> {"ok":true}  (check test frames on the transmitq)
 *   {"cmd":"setRequireLinearHeader","on":true,"refusal":"stall"} -> {"ok":true}  (emulate a
 *                                            strict-layout NIC; refusal "stall" (default) or
 *                                            "complete-empty", see transmit-queue.ts; leaving
 *                                            stall mode ends a stall)
 *   {"cmd":"setZeroCopyMap","map":{"frameSize":4096,"headroom":0,"pages":[[0,4096],...]}},
 *   {"cmd":"setZeroCopyMap","map":{"stream":"tcp","pages":[[0,4096],...]}} or
 *   {"cmd":"setZeroCopyMap","map":null}     -> {"ok":true}  (the zero-copy proof's user buffer)
 *
 * A request that cannot be served gets {"error":"..."}; the connection stays open.
 */
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { DEFAULT_TAP, portNames, TAP_NAME, type GeneratorOptions, type PortName } from './ports/port.js';
import { DEFAULT_LINEAR_HEADER_REFUSAL, linearHeaderRefusals, type LinearHeaderRefusal } from './transmit-queue.js';
import type { VirtioNet } from './virtio-net.js';
import { checkZeroCopyMap } from './zero-copy-map.js';

const MAX_LINE = 64 * 1024;

export function parseGeneratorOptions(value: unknown, defaults: GeneratorOptions): GeneratorOptions | string {
  if (value === undefined) return defaults;
  if (typeof value !== 'object' || value === null) return 'gen must be an object {size,count,pps}';
  const record = value as Record<string, unknown>;
  const out = { ...defaults };
  for (const key of ['size', 'count', 'pps'] as const) {
    const v = record[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return `gen.${key} must be a non-negative integer`;
    out[key] = v;
  }
  if (out.size < 60 || out.size > 65535) return `gen.size ${out.size} is outside 60..65535`;
  return out;
}

export class ControlServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(server: Server, private readonly path: string) {
    this.server = server;
  }

  static listen(path: string, device: VirtioNet): Promise<ControlServer> {
    rmSync(path, { force: true });
    const server = createServer();
    const control = new ControlServer(server, path);
    server.on('connection', (socket) => control.serve(socket, device));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        chmodSync(path, 0o600);
        resolve(control);
      });
    });
  }

  private serve(socket: Socket, device: VirtioNet): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    let chain = Promise.resolve();
    socket.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      if (buffered.length > MAX_LINE && !buffered.includes('\n')) {
        socket.end(`${JSON.stringify({ error: `request longer than ${MAX_LINE} bytes` })}\n`);
        return;
      }
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() === '') continue;
        chain = chain.then(async () => {
          const answer = await this.answer(line, device);
          if (!socket.destroyed) socket.write(`${JSON.stringify(answer)}\n`);
        });
      }
    });
  }

  private async answer(line: string, device: VirtioNet): Promise<unknown> {
    let request: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null) return { error: 'a request is a JSON object' };
      request = parsed as Record<string, unknown>;
    } catch {
      return { error: 'not JSON' };
    }
    switch (request.cmd) {
      case 'stats':
        return device.stats();
      case 'resetCounters':
        await device.resetCounters();
        return { ok: true };
      case 'setVerify':
        if (typeof request.on !== 'boolean') return { error: 'setVerify takes "on": true or false' };
        await device.setVerify(request.on);
        return { ok: true };
      case 'setPort': {
        const base = device.portOptions;
        const port = request.port ?? base.port;
        if (typeof port !== 'string' || !portNames.includes(port as PortName)) return { error: `port must be one of ${portNames.join(', ')}` };
        if (port === 'wire' && base.wireFds === undefined) return { error: 'port wire needs the ends of the wire, given when the device starts (zcnic device --wire-fds)' };
        const gen = parseGeneratorOptions(request.gen, base.gen);
        if (typeof gen === 'string') return { error: gen };
        const tap = request.tap ?? base.tap ?? DEFAULT_TAP;
        if (typeof tap !== 'string' || !TAP_NAME.test(tap)) return { error: 'tap must be an interface name (1..15 of [A-Za-z0-9_.-])' };
        await device.setPort({ ...base, port: port as PortName, gen, tap });
        return { ok: true };
      }
      case 'setRequireLinearHeader': {
        if (typeof request.on !== 'boolean') return { error: 'setRequireLinearHeader takes "on": true or false' };
        const refusal = request.refusal ?? DEFAULT_LINEAR_HEADER_REFUSAL;
        if (!linearHeaderRefusals.includes(refusal as LinearHeaderRefusal)) return { error: `setRequireLinearHeader: refusal must be one of ${linearHeaderRefusals.join(', ')}` };
        await device.setTxPolicy({ ...device.transmitPolicy, requireLinearHeader: request.on, linearHeaderRefusal: refusal as LinearHeaderRefusal });
        return { ok: true };
      }
      case 'setZeroCopyMap': {
        const map = request.map === null ? null : checkZeroCopyMap(request.map);
        if (typeof map === 'string') return { error: `setZeroCopyMap: ${map}` };
        await device.setTxPolicy({ ...device.transmitPolicy, zeroCopyMap: map });
        return { ok: true };
      }
      default:
        return { error: `unknown cmd ${JSON.stringify(request.cmd)}; known: stats, resetCounters, setPort, setVerify, setRequireLinearHeader, setZeroCopyMap` };
    }
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => {
      rmSync(this.path, { force: true });
      resolve();
    }));
  }
}
