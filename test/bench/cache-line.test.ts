import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpus } from 'node:os';
import { CacheLineProbe, describeRoundTrip, parseRoundTrip } from '../../bench/cache-line.js';
import { cacheLineSentence } from '../../bench/report.js';

test('parseRoundTrip takes the probe line and nothing else', () => {
  assert.is(parseRoundTrip('round trip ns 460.8\n'), 460.8);
  assert.is(parseRoundTrip('round trip ns 0\n'), null);
  assert.is(parseRoundTrip('cannot run on CPUs 0 and 5'), null);
  assert.is(parseRoundTrip(''), null);
});

test('the probe measures a round trip between two CPUs this machine has, and says why for one it has not', async () => {
  const probe = await CacheLineProbe.build();
  try {
    const last = cpus().length - 1;
    const measured = await probe.measure(0, last);
    assert.ok('ns' in measured && measured.ns > 0 && measured.ns < 1e6, JSON.stringify(measured));
    // The control: a CPU that does not exist is refused, with the probe's reason, not a figure.
    const refused = await probe.measure(0, last + 64);
    assert.ok('error' in refused, JSON.stringify(refused));
    assert.match(describeRoundTrip(refused), /^not measured \(the probe said: cannot run on CPUs/);
  } finally {
    probe.close();
  }
});

test('the report sentence names both CPUs, both figures, and a missing one as not measured', () => {
  const both = cacheLineSentence({ cpus: [0, 1], before: { ns: 460.4 }, after: { ns: 451.6 } });
  assert.match(both, /CPU 0 \(frontend\) and CPU 1 \(backend\): 460 ns before the cases, 452 ns after/);
  const none = cacheLineSentence({ cpus: [0, 1], before: { error: 'clang failed: x' }, after: null });
  assert.match(none, /not measured \(clang failed: x\) before the cases\./);
});

test.run();
