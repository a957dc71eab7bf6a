import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withRemoteStats } from '../../harness/guest-nics.js';
import type { DeviceRequests } from '../../harness/guest-requests.js';

/** A device that answers `stats` with its counters and records every other request. */
function device(counters: object, seen: unknown[] = []): DeviceRequests {
  return {
    request: (body) => {
      seen.push(body);
      return Promise.resolve(body['cmd'] === 'stats' ? counters : { ok: true });
    },
  };
}

test('a pair answers stats with the second NIC\'s counters under remoteNic', async () => {
  const pair = withRemoteStats(device({ transmitq: { frames: 7 } }), device({ receiveq: { frames: 5 } }));
  assert.equal(await pair.request({ cmd: 'stats' }), { transmitq: { frames: 7 }, remoteNic: { receiveq: { frames: 5 } } });
});

test('every other request goes to the first NIC only', async () => {
  const first: unknown[] = [];
  const second: unknown[] = [];
  const pair = withRemoteStats(device({}, first), device({}, second));
  assert.equal(await pair.request({ cmd: 'resetCounters' }), { ok: true });
  assert.equal(first, [{ cmd: 'resetCounters' }]);
  assert.equal(second, []);
});

test('the first NIC\'s error answer stays an error answer', async () => {
  const pair = withRemoteStats(device({ error: 'not connected' }), device({}));
  assert.equal(await pair.request({ cmd: 'stats' }), { error: 'not connected', remoteNic: {} });
});

test.run();
