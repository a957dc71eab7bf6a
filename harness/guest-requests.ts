/**
 * What a guest test may ask the device while it runs (`zcnic_ctl` in guest/suites/lib/common.sh),
 * answered by the harness through the device's control API. The guest speaks shell, so requests
 * are words and answers are one line: `ok`, `key=value ...` (dots in keys become underscores, so
 * the test can `eval` them), or `error <why>`.
 */
import { parseSendRequest, type SendRequest, type SendResult } from './peer.js';

/** The device's control API, as the harness reaches it. */
export interface DeviceRequests {
  request(body: Record<string, unknown>): Promise<unknown>;
}

/** The netns peer (harness/peer-netns.ts), when the run has one. */
export interface PeerRequests {
  stats(): Promise<unknown>;
  send(request: SendRequest): Promise<SendResult>;
}

/** A peer the run needed but could not set up: the guest's test fails with this reason. */
export interface PeerUnavailable {
  readonly unavailable: string;
}

/** A test is starting: what the harness does before answering `begin`. */
export type BeginHook = (suite: string, test: string) => Promise<void>;

const WAIT_POLL_MS = 50;

/** The value at a dotted path of a JSON object, or undefined. */
export function lookup(value: unknown, path: string): unknown {
  let at: unknown = value;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null || !(part in at)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function assignment(key: string, value: unknown): string {
  return `${key.replace(/[^A-Za-z0-9_]/g, '_')}=${typeof value === 'object' ? JSON.stringify(value) : String(value)}`;
}

function error(why: string): string {
  return `error ${why.replace(/\s+/g, ' ')}`;
}

function parseKeyValues(words: readonly string[]): Record<string, number> | string {
  const out: Record<string, number> = {};
  for (const word of words) {
    const m = /^([a-z]+)=(\d+)$/.exec(word);
    if (!m) return `expected key=number, got ${JSON.stringify(word)}`;
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export async function answerGuestRequest(line: string, device: DeviceRequests, begin: BeginHook, peer?: PeerRequests | PeerUnavailable): Promise<string> {
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  const [verb, ...args] = words;
  const call = async (body: Record<string, unknown>): Promise<unknown> => {
    const answer = await device.request(body);
    if (typeof answer === 'object' && answer !== null && 'error' in answer) throw new Error(String((answer as { error: unknown }).error));
    return answer;
  };
  try {
    switch (verb) {
      case 'begin':
        if (args.length !== 2) return error('usage: begin SUITE TEST');
        await begin(args[0]!, args[1]!);
        return 'ok';
      case 'reset':
        await call({ cmd: 'resetCounters' });
        return 'ok';
      case 'verify':
        if (args[0] !== 'on' && args[0] !== 'off') return error('usage: verify on|off');
        await call({ cmd: 'setVerify', on: args[0] === 'on' });
        return 'ok';
      case 'port': {
        const [name, ...options] = args;
        if (name !== 'sink' && name !== 'reflect' && name !== 'gen' && name !== 'tap' && name !== 'wire') return error('usage: port sink|reflect|gen [size=N count=N pps=N]|tap [NAME]|wire');
        if (name === 'wire') {
          // The device refuses it unless it was started with --wire-fds.
          if (options.length > 0) return error('usage: port wire');
          await call({ cmd: 'setPort', port: 'wire' });
          return 'ok';
        }
        if (name === 'tap') {
          if (options.length > 1) return error('usage: port tap [NAME]');
          await call({ cmd: 'setPort', port: 'tap', ...(options[0] ? { tap: options[0] } : {}) });
          return 'ok';
        }
        const gen = parseKeyValues(options);
        if (typeof gen === 'string') return error(gen);
        await call({ cmd: 'setPort', port: name, ...(name === 'gen' ? { gen } : {}) });
        return 'ok';
      }
      case 'strict': {
        // strict on [stall|complete-empty] | strict off (device/transmit-queue.ts says what each emulates)
        const [onOff, refusal, ...extra] = args;
        const usage = 'usage: strict on [stall|complete-empty] | strict off';
        // The device checks the refusal's name.
        if (extra.length > 0 || (onOff !== 'on' && onOff !== 'off') || (onOff === 'off' && refusal !== undefined)) return error(usage);
        await call({ cmd: 'setRequireLinearHeader', on: onOff === 'on', ...(refusal !== undefined ? { refusal } : {}) });
        return 'ok';
      }
      case 'zc-map': {
        // zc-map off | zc-map FRAME_SIZE HEADROOM OFFSET:GPA... (hex, as xdpsock --umem-map writes them)
        // | zc-map stream tcp|udp OFFSET:GPA... (a MSG_ZEROCOPY sender's ring buffer, zerocopy --buf-map)
        if (args[0] === 'off' && args.length === 1) {
          await call({ cmd: 'setZeroCopyMap', map: null });
          return 'ok';
        }
        // FRAME_SIZE HEADROOM, or `stream` and the protocol (the device checks it).
        const [first, second, ...pageWords] = args;
        const pages: Array<[number, number]> = [];
        for (const word of pageWords) {
          const m = /^(?:0x)?([0-9a-f]+):(?:0x)?([0-9a-f]+)$/i.exec(word);
          if (!m) return error(`zc-map: expected OFFSET:GPA in hex, got ${JSON.stringify(word)}`);
          pages.push([parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
        }
        await call({ cmd: 'setZeroCopyMap', map: first === 'stream' ? { stream: second, pages } : { frameSize: Number(first), headroom: Number(second), pages } });
        return `ok pages=${pages.length}`;
      }
      case 'stats': {
        if (args.length === 0) return error('usage: stats KEY...');
        const stats = await call({ cmd: 'stats' });
        const parts: string[] = [];
        for (const key of args) {
          const value = lookup(stats, key);
          if (value === undefined) return error(`no stats key ${key}`);
          parts.push(assignment(key, value));
        }
        return parts.join(' ');
      }
      case 'peer': {
        // peer stats KEY...: the netns peer's totals (tcp.bytes, udp.datagrams, last.sha256, ...)
        // peer send ADDRESS PORT BYTES SEED: the peer sends BYTES of the stream pattern of SEED to
        // ADDRESS:PORT (a guest listener) and answers once the guest closed the connection.
        const usage = 'usage: peer stats KEY... | peer send ADDRESS PORT BYTES SEED';
        if (!((args[0] === 'stats' && args.length >= 2) || (args[0] === 'send' && args.length === 5))) return error(usage);
        if (!peer) return error('this run has no peer (suites that need one: msg-zerocopy, zcrx)');
        if ('unavailable' in peer) return error(`the peer could not be set up: ${peer.unavailable}`);
        if (args[0] === 'send') {
          const [host, port, bytes, seed] = args.slice(1);
          const number = (word: string | undefined): number => (word !== undefined && /^\d+$/.test(word) ? Number(word) : NaN);
          const request = parseSendRequest({ host, port: number(port), bytes: number(bytes), seed: number(seed) });
          if (typeof request === 'string') return error(request);
          const sent = await peer.send(request);
          return `${assignment('sent', sent.sent)} ${assignment('ms', sent.ms)}`;
        }
        const stats = await peer.stats();
        const parts: string[] = [];
        for (const key of args.slice(1)) {
          const value = lookup(stats, key);
          if (value === undefined) return error(`no peer stats key ${key}`);
          parts.push(assignment(key, value));
        }
        return parts.join(' ');
      }
      case 'wait': {
        const [key, minText, secondsText] = args;
        const min = Number(minText);
        const seconds = Number(secondsText);
        if (!key || !Number.isFinite(min) || !Number.isFinite(seconds)) return error('usage: wait KEY MIN SECONDS');
        const deadline = Date.now() + seconds * 1000;
        for (;;) {
          const value = lookup(await call({ cmd: 'stats' }), key);
          if (typeof value !== 'number') return error(`stats key ${key} is not a number`);
          if (value >= min) return assignment(key, value);
          // A counter still short at the deadline is the test's failure, not an answer to go on with.
          if (Date.now() >= deadline) return error(`${key} is ${value} after ${seconds} s, below ${min}`);
          await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
        }
      }
      default:
        return error(`unknown request ${JSON.stringify(verb ?? '')}; known: begin reset verify port strict zc-map stats wait peer`);
    }
  } catch (e) {
    return error((e as Error).message);
  }
}
