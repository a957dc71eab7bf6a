// The host side of the guest's KTAP port, against a unix socket server standing in for QEMU's
// listening chardev (what the guest writes arrives through it; what we write goes to the guest).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { answerLine, connectGuestChannel, GuestChannelError } from '../../harness/guest-channel.js';
import { KtapReader, type KtapResult } from '../../harness/ktap.js';

const tmp = mkdtempSync(join(tmpdir(), 'zcnic-chan-test-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(tmp, `ktap${n++}.sock`);

/** A fake QEMU: listens on `path`, hands over the one connection, collects what the host writes. */
function fakeQemu(path: string): { server: Server; guest: Promise<Socket>; received: () => string; lines: (count: number) => Promise<string[]> } {
  let received = '';
  let resolveGuest: (s: Socket) => void = () => undefined;
  const guest = new Promise<Socket>((r) => (resolveGuest = r));
  const server = createServer((s) => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => (received += d));
    resolveGuest(s);
  });
  server.listen(path);
  return {
    server,
    guest,
    received: () => received,
    async lines(count) {
      for (let i = 0; i < 200; i++) {
        const l = received.split('\n').slice(0, -1);
        if (l.length >= count) return l;
        await sleep(10);
      }
      throw new Error(`expected ${count} answer lines, got: ${JSON.stringify(received)}`);
    },
  };
}

const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));

test('connects once QEMU creates the socket; lines split across chunks arrive whole and in order', async () => {
  const path = sockPath();
  const lines: string[] = [];
  const connecting = connectGuestChannel({ path, onLine: (l) => lines.push(l), connectTimeoutMs: 5000, retryIntervalMs: 20 });
  await sleep(150); // QEMU "starts" late: the socket does not exist yet
  const q = fakeQemu(path);
  const ch = await connecting;
  const g = await q.guest;
  g.write('KTAP vers');
  await sleep(20);
  g.write('ion 1\r\n1..1\n# caf');
  await sleep(20);
  g.write('\u00e9 \u2713\nok 1 a\n');
  g.end('# tail without newline');
  await ch.closed;
  assert.equal(lines, ['KTAP version 1', '1..1', '# caf\u00e9 \u2713', 'ok 1 a', '# tail without newline']);
  assert.is(ch.raw(), 'KTAP version 1\r\n1..1\n# caf\u00e9 \u2713\nok 1 a\n# tail without newline');
  assert.is(ch.ktapText(), 'KTAP version 1\n1..1\n# caf\u00e9 \u2713\nok 1 a\n# tail without newline\n');
  await closeServer(q.server);
});

test('control requests: answered one at a time, in order, one line each; failures answered ERR', async () => {
  const path = sockPath();
  const q = fakeQemu(path);
  const lines: string[] = [];
  const order: string[] = [];
  let inFlight = 0;
  const ch = await connectGuestChannel({
    path,
    onLine: (l) => lines.push(l),
    onControl: async (req) => {
      inFlight++;
      assert.is(inFlight, 1, 'one request at a time');
      order.push(`start ${req}`);
      // The first request is the slowest: answers must still come back in request order.
      await sleep(req === 'stats' ? 80 : 5);
      order.push(`end ${req}`);
      inFlight--;
      if (req === 'boom') throw new Error('device is gone');
      if (req === 'multi') return 'line one\nline two\r\nthree';
      return `answer to ${req}`;
    },
  });
  const g = await q.guest;
  g.write('KTAP version 1\n#zcnic-ctl stats\n#zcnic-ctl reset x=1\n# not a request\n#zcnic-ctl boom\n#zcnic-ctl multi\n#zcnic-ctlnospace\n');
  const answers = await q.lines(4);
  assert.equal(answers, ['answer to stats', 'answer to reset x=1', 'error device is gone', 'line one line two three']);
  assert.equal(order, ['start stats', 'end stats', 'start reset x=1', 'end reset x=1', 'start boom', 'end boom', 'start multi', 'end multi']);
  assert.equal(lines, ['KTAP version 1', '# not a request', '#zcnic-ctlnospace']);
  assert.is(ch.controlRequests, 4);
  assert.match(ch.raw(), /#zcnic-ctl stats\n/);
  assert.not.match(ch.ktapText(), /zcnic-ctl /);
  await ch.close();
  await closeServer(q.server);
});

test('no control handler: the guest still gets an answer', async () => {
  const path = sockPath();
  const q = fakeQemu(path);
  const ch = await connectGuestChannel({ path, onLine: () => undefined });
  (await q.guest).write('#zcnic-ctl stats\n');
  assert.equal(await q.lines(1), ['error no control handler']);
  await ch.close();
  await closeServer(q.server);
});

test('an onLine that throws does not stop reading', async () => {
  const path = sockPath();
  const q = fakeQemu(path);
  const seen: string[] = [];
  const ch = await connectGuestChannel({
    path,
    onLine: (l) => {
      seen.push(l);
      if (l === 'bad') throw new Error('consumer bug');
    },
  });
  (await q.guest).end('a\nbad\nc\n');
  await ch.closed;
  assert.equal(seen, ['a', 'bad', 'c']);
  assert.equal(ch.errors.map((e) => e.message), ['consumer bug']);
  await closeServer(q.server);
});

test('nobody listening: a clear error after the timeout; abort stops the retries', async () => {
  const path = sockPath();
  const t0 = Date.now();
  try {
    await connectGuestChannel({ path, onLine: () => undefined, connectTimeoutMs: 200, retryIntervalMs: 20 });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, GuestChannelError);
    assert.match((err as Error).message, /^no QEMU listening on .*ktap\d+\.sock after 200 ms \(last: ENOENT\)$/);
  }
  assert.ok(Date.now() - t0 < 1000);

  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  try {
    await connectGuestChannel({ path, onLine: () => undefined, connectTimeoutMs: 10_000, signal: ac.signal });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, GuestChannelError);
    assert.match((err as Error).message, /aborted/);
  }
  assert.ok(Date.now() - t0 < 2000);
});

test('answerLine keeps answers on one line', () => {
  assert.is(answerLine('a\nb\r\nc\rd'), 'a b c d');
});

test('end to end with the KTAP reader, replaying a real guest stream with its control requests', async () => {
  const path = sockPath();
  const q = fakeQemu(path);
  const results: KtapResult[] = [];
  const requests: string[] = [];
  const reader = new KtapReader({ onResult: (r) => results.push(r) });
  const ch = await connectGuestChannel({
    path,
    onLine: (l) => reader.line(l),
    onControl: async (req) => {
      requests.push(req);
      return 'ok';
    },
  });
  const g = await q.guest;
  const fixtures = new URL('../../../test/fixtures/ktap/', import.meta.url);
  const raw = readFileSync(new URL('smoke-real.raw', fixtures), 'utf8');
  const [head, tail] = raw.split(/(?<=ok 1 link-up\n)/);
  g.write(head!);
  // The guest waits for each answer before going on, as zcnic_ctl does.
  assert.equal(await q.lines(1), ['ok']);
  for (let i = 0; i < 100 && results.length < 1; i++) await sleep(5);
  assert.equal(results.map((r) => r.name), ['link-up'], 'link-up reported before the rest was sent');
  g.end(tail!);
  await ch.closed;
  assert.equal(requests, ['begin smoke link-up', 'begin smoke send-frames']);
  assert.equal(await q.lines(2), ['ok', 'ok']);
  const s = reader.end();
  assert.equal([s.passed, s.failed, s.missing, s.done], [2, 0, 0, true]);
  assert.is(ch.raw(), raw);
  assert.is(ch.ktapText(), readFileSync(new URL('smoke-real.ktap', fixtures), 'utf8'));
  await closeServer(q.server);
});

test.run();
