import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  isProgramTarget,
  kernelSeries,
  makeWarnings,
  parseManifest,
  pickCached,
  planBuild,
  requestedUpstream,
  SELFTESTS_BUILD_VERSION,
  sourceMembers,
  sourcePackageName,
  testsOf,
  versionDirName,
  versionMatches,
  withAddedTargets,
  type SelftestsManifest,
  type TargetResult,
} from '../../images/selftests.js';
import { MSG_ZEROCOPY_TARGET } from '../../images/msg-zerocopy.js';
import { XSKXCEIVER_TARGET } from '../../images/xskxceiver.js';

test('the kernel series comes from a series, a release, a package version or debian:X.Y', () => {
  assert.is(kernelSeries('7.3'), '7.3');
  assert.is(kernelSeries('7.3.4+deb13-amd64'), '7.3');
  assert.is(kernelSeries('6.12.117+deb12-amd64'), '6.12');
  assert.is(kernelSeries('6.1.0-57-amd64'), '6.1');
  assert.is(kernelSeries('7.3.4-1~bpo13+1'), '7.3');
  assert.is(kernelSeries('debian:6.12'), '6.12');
  assert.is(sourcePackageName(kernelSeries('7.3.4+deb13-amd64')), 'linux-source-7.3');
  assert.throws(() => kernelSeries('latest'), /kernel series/);
  // 6.12 is not 6.1.
  assert.not.ok(kernelSeries('6.12').startsWith('6.1.'));
});

test('a release pins its upstream version, a series takes any of its versions', () => {
  assert.equal(requestedUpstream('7.3'), [7, 3]);
  assert.equal(requestedUpstream('7.3.4+deb13-amd64'), [7, 3, 4]);
  assert.ok(versionMatches('7.3.4-1~bpo13+1', [7, 3]));
  assert.ok(versionMatches('7.3.4-1~bpo13+1', [7, 3, 4]));
  assert.not.ok(versionMatches('7.3.5-1', [7, 3, 4]));
  assert.not.ok(versionMatches('6.12.117-1~deb12u1', [6, 1]));
});

test('tar members: tools, the netlink specs and schemas, what make headers needs, nothing else of the tree', () => {
  const members = sourceMembers('7.3', ['drivers/net', XSKXCEIVER_TARGET]);
  assert.ok(members.every((m) => m.startsWith('linux-source-7.3/')));
  for (const needed of ['tools/*', 'Documentation/netlink/*', 'MAINTAINERS', 'Makefile', 'scripts/*', 'include/uapi/*', 'arch/x86/include/uapi/*']) {
    assert.ok(members.includes(`linux-source-7.3/${needed}`), needed);
  }
  assert.not.ok(members.some((m) => /\/(drivers|net|fs|kernel)\//.test(m)));
});

test('tar members: xskxceiver alone reads tools/ (libbpf, bpftool, the bpf selftests) and libbpf\'s header generator', () => {
  assert.equal(sourceMembers('7.3', [XSKXCEIVER_TARGET]), ['linux-source-7.3/tools/*', 'linux-source-7.3/scripts/bpf_doc.py']);
});

test('tar members: msg_zerocopy alone reads its one source file; with xskxceiver, what both read', () => {
  const source = 'linux-source-6.12/tools/testing/selftests/net/msg_zerocopy.c';
  assert.equal(sourceMembers('6.12', [MSG_ZEROCOPY_TARGET]), [source]);
  assert.equal(sourceMembers('6.12', [XSKXCEIVER_TARGET, MSG_ZEROCOPY_TARGET]), ['linux-source-6.12/tools/*', 'linux-source-6.12/scripts/bpf_doc.py', source]);
});

test('bpf/xskxceiver and net/msg_zerocopy are program targets; kselftest targets, bpf and net themselves included, are not', () => {
  assert.ok(isProgramTarget(XSKXCEIVER_TARGET));
  assert.ok(isProgramTarget(MSG_ZEROCOPY_TARGET));
  for (const t of ['bpf', 'net', 'drivers/net', 'net/lib', 'bpf/test_progs', 'toString']) assert.not.ok(isProgramTarget(t), t);
});

test('build plan: a program target is added to the cached tree, which is not rebuilt for it', () => {
  assert.equal(planBuild(['drivers/net'], [XSKXCEIVER_TARGET]), { kselftestTargets: [], programTargets: [XSKXCEIVER_TARGET], replace: false });
  assert.equal(planBuild(['drivers/net'], ['drivers/net', XSKXCEIVER_TARGET]), { kselftestTargets: [], programTargets: [XSKXCEIVER_TARGET], replace: false });
});

test('build plan: a missing kselftest target rebuilds the tree with every target it had', () => {
  assert.equal(planBuild(['drivers/net', XSKXCEIVER_TARGET], ['drivers/net/hw']), {
    kselftestTargets: ['drivers/net', 'drivers/net/hw'],
    programTargets: [XSKXCEIVER_TARGET],
    replace: true,
  });
  assert.equal(planBuild(['drivers/net'], ['drivers/net/hw', XSKXCEIVER_TARGET]), {
    kselftestTargets: ['drivers/net', 'drivers/net/hw'],
    programTargets: [XSKXCEIVER_TARGET],
    replace: true,
  });
});

test('build plan: without a cached tree, exactly the wanted targets; a program target alone builds no kselftest target', () => {
  assert.equal(planBuild(undefined, [XSKXCEIVER_TARGET]), { kselftestTargets: [], programTargets: [XSKXCEIVER_TARGET], replace: true });
  assert.equal(planBuild(undefined, ['drivers/net']), { kselftestTargets: ['drivers/net'], programTargets: [], replace: true });
});

function manifest(sourceVersion: string, targets: string[], buildVersion = SELFTESTS_BUILD_VERSION): SelftestsManifest {
  return { sourcePackage: 'linux-source-7.3', sourceVersion, series: '7.3', buildVersion, targets, results: [], makeWarnings: [], builtAt: '', buildSeconds: 1 };
}

test('manifests parse back, and anything else is no manifest', () => {
  const m = manifest('7.3.4-1~bpo13+1', ['drivers/net']);
  assert.equal(parseManifest(JSON.stringify(m)), m);
  assert.is(parseManifest('{"sourceVersion": "7.3.4-1"}'), undefined);
  assert.is(parseManifest('not json'), undefined);
  assert.is(parseManifest(''), undefined);
});

test('a cached build serves a request of its series with every wanted target, the newest first', () => {
  const all = ['drivers/net', 'drivers/net/hw'];
  const old = manifest('7.3.2-1', all);
  const cur = manifest('7.3.4-1~bpo13+1', all);
  const other = manifest('6.12.117-1~deb12u1', all);
  assert.is(pickCached([cur, old, other], '7.3', all), cur);
  assert.is(pickCached([cur, old, other], '7.3.2+deb13-amd64', all), old);
  assert.is(pickCached([cur, old, other], '6.12', ['drivers/net']), other);
  assert.is(pickCached([cur], '7.3', ['drivers/net', 'net']), undefined, 'a target it lacks');
  assert.is(pickCached([manifest('7.3.4-1', all, SELFTESTS_BUILD_VERSION - 1)], '7.3', all), undefined, 'an older recipe');
  assert.is(pickCached([cur], '6.1', all), undefined);
});

test('an added target joins the manifest with when it was added; the first build\'s entries stay as they were', () => {
  const tree = { ...manifest('7.3.4-1~bpo13+1', ['drivers/net']), builtAt: '2026-12-03T07:19:21.251Z', buildSeconds: 90 };
  tree.results = [{ target: 'drivers/net', tests: ['ping.py'], built: [], failed: [] }];
  const xsk: TargetResult = { target: XSKXCEIVER_TARGET, tests: ['test_xsk.sh'], built: ['xskxceiver'], failed: [] };
  const added = { at: '2026-12-04T00:00:00.000Z', buildSeconds: 40 };
  const next = withAddedTargets(tree, [xsk], added);
  assert.equal(next.targets, ['drivers/net', XSKXCEIVER_TARGET]);
  assert.equal(next.results, [tree.results[0], { ...xsk, added }]);
  assert.is(next.builtAt, tree.builtAt);
  assert.is(next.buildSeconds, 90);
  assert.is(pickCached([next], '7.3', [XSKXCEIVER_TARGET]), next);
  assert.equal(tree.targets, ['drivers/net'], 'the old manifest is not changed');
  const rebuilt = withAddedTargets(next, [xsk], { at: '2026-12-05T00:00:00.000Z', buildSeconds: 38 });
  assert.equal(rebuilt.targets, next.targets, 'a rebuilt target (--force) is listed once');
  assert.equal(rebuilt.results.map((r) => r.added?.buildSeconds ?? null), [null, 38]);
});

test('cache folder names and the tests of a target in kselftest-list.txt', () => {
  assert.is(versionDirName('7.3.4-1~bpo13+1'), '7.3.4-1~bpo13+1');
  assert.is(versionDirName('1:6.1-2'), '1_6.1-2');
  const list = 'drivers/net:ping.py\ndrivers/net:xdp.py\ndrivers/net/hw:csum.py\n';
  assert.equal(testsOf(list, 'drivers/net'), ['ping.py', 'xdp.py']);
  assert.equal(testsOf(list, 'drivers/net/hw'), ['csum.py']);
});

test('the Makefiles\' warnings are kept, their errors are not', () => {
  const log = 'Makefile:13: excluding iouring tests, liburing not installed or too old\n  CC x\nmake[1]: *** [Makefile:48: y] Error 1\nMakefile:13: excluding iouring tests, liburing not installed or too old\n';
  assert.equal(makeWarnings(log), ['Makefile:13: excluding iouring tests, liburing not installed or too old']);
});

test.run();
