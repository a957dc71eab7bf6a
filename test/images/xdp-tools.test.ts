import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { upstreamVersion, XDP_TOOLS_LIBBPF_VERSION, XDP_TOOLS_PROGRAMS, XDP_TOOLS_VERSION, xdpToolsFiles, xdpToolsKey } from '../../images/xdp-tools.js';

test('the cache key names both source versions and the recipe, without characters a path dislikes', () => {
  assert.is(xdpToolsKey('1.6.3-1', '1:1.7.0-1', 2), 'xdp-tools_1.6.3-1+libbpf_1_1.7.0-1+b2');
  assert.not.ok(xdpToolsKey(XDP_TOOLS_VERSION, XDP_TOOLS_LIBBPF_VERSION, 1).includes(':'));
});

test('upstream versions, as the programs print them', () => {
  assert.is(upstreamVersion('1.6.3-1'), '1.6.3');
  assert.is(upstreamVersion('1:1.7.0-1'), '1.7.0');
  assert.is(upstreamVersion('7.8.0+7.3.4-1~bpo13+1'), '7.8.0+7.3.4');
});

test('without a build the programs are missing, each named, and the image key says so', async () => {
  const set = await xdpToolsFiles(null);
  assert.equal(set.files, []);
  assert.equal(set.programs, []);
  assert.is(set.missing.length, XDP_TOOLS_PROGRAMS.length);
  assert.ok(set.missing[0]!.startsWith('/usr/sbin/xdp-bench'));
  assert.ok(set.fingerprint.every((l) => l.startsWith('missing ')));
});

test.run();
