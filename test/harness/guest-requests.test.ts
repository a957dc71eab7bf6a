import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { answerGuestRequest, lookup } from '../../harness/guest-requests.js';
import type { SendRequest } from '../../harness/peer.js';

function fakeDevice(stats: () => unknown) {
  const calls: Array<Record<string, unknown>> = [];
  return {
    calls,
    request: async (body: Record<string, unknown>) => {
      calls.push(body);
      if (body.cmd === 'stats') return stats();
      if (body.cmd === 'setPort' && body.port === 'gen' && (body.gen as { size?: number }).size === 1) return { error: 'gen.size 1 is outside 60..65535' };
      return { ok: true };
    },
  };
}
const noBegin = async () => {};

test('stats answers shell assignments for dotted keys', async () => {
  const d = fakeDevice(() => ({ transmitq: { frames: 10, bytes: 640 }, chainShapes: { descriptorsPerChain: { '1': 10 } } }));
  assert.is(await answerGuestRequest('stats transmitq.frames transmitq.bytes', d, noBegin), 'transmitq_frames=10 transmitq_bytes=640');
  assert.is(await answerGuestRequest('stats chainShapes.descriptorsPerChain.1', d, noBegin), 'chainShapes_descriptorsPerChain_1=10');
  assert.match(await answerGuestRequest('stats nothing.here', d, noBegin), /^error no stats key nothing.here/);
});

test('port, verify, reset and begin reach the device or the hook', async () => {
  const d = fakeDevice(() => ({}));
  const begun: string[] = [];
  assert.is(await answerGuestRequest('port gen size=64 count=1000 pps=0', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setPort', port: 'gen', gen: { size: 64, count: 1000, pps: 0 } });
  assert.is(await answerGuestRequest('port reflect', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setPort', port: 'reflect' });
  assert.is(await answerGuestRequest('verify on', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setVerify', on: true });
  assert.is(await answerGuestRequest('reset', d, noBegin), 'ok');
  assert.is(await answerGuestRequest('begin xdpsock txonly-skb-64', d, async (s, t) => void begun.push(`${s}/${t}`)), 'ok');
  assert.equal(begun, ['xdpsock/txonly-skb-64']);
});

test('device errors and bad requests become one error line', async () => {
  const d = fakeDevice(() => ({}));
  assert.is(await answerGuestRequest('port gen size=1', d, noBegin), 'error gen.size 1 is outside 60..65535');
  assert.match(await answerGuestRequest('port gen size=x', d, noBegin), /^error expected key=number/);
  assert.match(await answerGuestRequest('frobnicate', d, noBegin), /^error unknown request "frobnicate"/);
  assert.match(await answerGuestRequest('', d, noBegin), /^error unknown request ""/);
  assert.match(await answerGuestRequest('verify maybe', d, noBegin), /^error usage/);
});

test('wait polls until the counter reaches the minimum, and fails at the deadline', async () => {
  let frames = 0;
  const d = fakeDevice(() => ({ receiveq: { frames: (frames += 40) } }));
  assert.is(await answerGuestRequest('wait receiveq.frames 100 5', d, noBegin), 'receiveq_frames=120');
  const stuck = fakeDevice(() => ({ receiveq: { frames: 7 } }));
  // The old answer at the deadline was the value, which the guest took as success.
  assert.is(await answerGuestRequest('wait receiveq.frames 100 0.1', stuck, noBegin), 'error receiveq.frames is 7 after 0.1 s, below 100');
});

test('lookup walks objects only', () => {
  assert.is(lookup({ a: { b: 2 } }, 'a.b'), 2);
  assert.is(lookup({ a: 1 }, 'a.b'), undefined);
  assert.is(lookup(null, 'a'), undefined);
});

test('port tap and peer stats', async () => {
  const d = fakeDevice(() => ({}));
  assert.is(await answerGuestRequest('port tap', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setPort', port: 'tap' });
  assert.is(await answerGuestRequest('port tap zc7', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setPort', port: 'tap', tap: 'zc7' });
  assert.match(await answerGuestRequest('port tap a b', d, noBegin), /^error usage: port tap/);
  assert.is(await answerGuestRequest('port wire', d, noBegin), 'ok');
  assert.equal(d.calls.at(-1), { cmd: 'setPort', port: 'wire' });
  assert.match(await answerGuestRequest('port wire 3', d, noBegin), /^error usage: port wire/);
  assert.match(await answerGuestRequest('peer stats tcp.bytes', d, noBegin), /^error this run has no peer/);
  const peer = {
    stats: async () => ({ tcp: { streams: 1, bytes: 4096 }, last: { sha256: 'ab12' } }),
    send: async () => ({ sent: 0, ms: 0 }),
  };
  assert.is(await answerGuestRequest('peer stats tcp.bytes last.sha256', d, noBegin, peer), 'tcp_bytes=4096 last_sha256=ab12');
  assert.match(await answerGuestRequest('peer stats nope', d, noBegin, peer), /^error no peer stats key nope/);
  assert.match(await answerGuestRequest('peer', d, noBegin, peer), /^error usage: peer stats/);
  // A peer the run needed but could not set up answers its reason, so the guest's test fails with it.
  assert.is(
    await answerGuestRequest('peer stats tcp.streams', d, noBegin, { unavailable: 'ip netns add: Operation not permitted' }),
    'error the peer could not be set up: ip netns add: Operation not permitted',
  );
});

test('peer send: the words become a checked send request, the answer shell assignments', async () => {
  const d = fakeDevice(() => ({}));
  const asked: SendRequest[] = [];
  const peer = {
    stats: async () => ({}),
    send: async (request: SendRequest) => {
      asked.push(request);
      return { sent: request.bytes, ms: 1234 };
    },
  };
  assert.is(await answerGuestRequest('peer send 198.18.0.2 7000 16777216 1515474520', d, noBegin, peer), 'sent=16777216 ms=1234');
  assert.equal(asked, [{ host: '198.18.0.2', port: 7000, bytes: 16777216, seed: 1515474520 }]);
  // Each bad word is refused before the peer is asked, saying which.
  assert.match(await answerGuestRequest('peer send guest 7000 100 1', d, noBegin, peer), /^error send: host must be an IPv4 address/);
  assert.match(await answerGuestRequest('peer send 198.18.0.2 70000 100 1', d, noBegin, peer), /^error send: port must be 1\.\.65535/);
  assert.match(await answerGuestRequest('peer send 198.18.0.2 7000 0 1', d, noBegin, peer), /^error send: bytes must be 1\.\./);
  assert.match(await answerGuestRequest('peer send 198.18.0.2 7000 1e3 1', d, noBegin, peer), /^error send: bytes must be/);
  assert.match(await answerGuestRequest('peer send 198.18.0.2 7000 100 4294967296', d, noBegin, peer), /^error send: seed must be/);
  assert.match(await answerGuestRequest('peer send 198.18.0.2 7000 100', d, noBegin, peer), /^error usage: peer stats KEY\.\.\. \| peer send/);
  assert.is(asked.length, 1);
  // The peer's own failure (the guest never accepted, ...) is the answer.
  const failing = { stats: async () => ({}), send: async () => Promise.reject(new Error('send to 198.18.0.2:7000: connect ECONNREFUSED')) };
  assert.is(await answerGuestRequest('peer send 198.18.0.2 7000 100 1', d, noBegin, failing), 'error send to 198.18.0.2:7000: connect ECONNREFUSED');
  assert.match(await answerGuestRequest('peer send 198.18.0.2 7000 100 1', d, noBegin), /^error this run has no peer \(suites that need one: msg-zerocopy, zcrx\)/);
});

test.run();
