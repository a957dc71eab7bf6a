import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chooseKernelImage,
  imageRelease,
  kernelPackages,
  parseDeb822Sources,
  parseMadison,
  parseOneLineSources,
  privateSourcesList,
  upstreamNumbers,
} from '../../images/debian-archive.js';

// A made-up mirror: the project never names a real one.
const MIRROR = 'http://mirror.invalid/debian';

const DEB822 = `Types: deb
# a comment
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR}-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: ${MIRROR}
Suites: bookworm
Components: main

Types: deb
Enabled: no
URIs: http://off.invalid/
Suites: x
Components: main
`;

test('deb822 and one-line sources: deb entries only, disabled ones skipped', () => {
  const s = parseDeb822Sources(DEB822);
  assert.equal(s.map((e) => [e.uris, e.suites]), [[[MIRROR], ['bookworm', 'bookworm-updates']], [[`${MIRROR}-security`], ['bookworm-security']]]);
  assert.equal(parseOneLineSources(`# x\ndeb [arch=amd64 signed-by=/k.gpg] ${MIRROR} bookworm main contrib\ndeb-src ${MIRROR} bookworm main\n`), [
    { uris: [MIRROR], suites: ['bookworm'], components: ['main', 'contrib'], signedBy: '/k.gpg' },
  ]);
});

test('the private list keeps the machine entries and adds the kernel suites on the main mirror', () => {
  const list = privateSourcesList(parseDeb822Sources(DEB822), 'bookworm').trim().split('\n');
  assert.ok(list.includes(`deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR}-security bookworm-security main`));
  for (const suite of ['bookworm-backports', 'trixie-backports', 'sid']) {
    assert.ok(list.includes(`deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR} ${suite} main`), suite);
  }
  // bookworm is the machine's own: listed once.
  assert.is(list.filter((l) => l.endsWith(' bookworm main')).length, 1);
  assert.throws(() => privateSourcesList(parseDeb822Sources(DEB822), 'trixie'), /no apt source serves trixie/);
});

test('deb-src lines for the source suites, on the main mirror, only when asked for', () => {
  const list = privateSourcesList(parseDeb822Sources(DEB822), 'bookworm', ['sid']).trim().split('\n');
  assert.equal(
    list.filter((l) => l.startsWith('deb-src')),
    [`deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR} sid main`],
  );
  // The binary entries are the same as without sources.
  assert.equal(
    list.filter((l) => !l.startsWith('deb-src')),
    privateSourcesList(parseDeb822Sources(DEB822), 'bookworm').trim().split('\n'),
  );
  assert.not.ok(privateSourcesList(parseDeb822Sources(DEB822), 'bookworm').includes('deb-src'));
});

const MADISON = [
  'linux-image-6.1.0-50-amd64-unsigned | 6.1.176-1 | x bookworm/main amd64 Packages',
  'linux-image-6.1.0-50-amd64 | 6.1.176-1 | x bookworm/main amd64 Packages',
  'linux-image-6.1.0-47-amd64 | 6.1.170-3 | x bookworm/main amd64 Packages',
  'linux-image-6.12.117+deb12-amd64-unsigned | 6.12.117-1~deb12u1 | x bookworm-security/main amd64 Packages',
  'linux-image-6.12.95+deb12-amd64 | 6.12.95-1~bpo12+1 | x bookworm-backports/main amd64 Packages',
  'linux-image-7.3.4+deb13-rt-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-image-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-binary-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-binary-unsigned-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-modules-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-base-7.3.4+deb13-amd64 | 7.3.4-1~bpo13+1 | x trixie-backports/main amd64 Packages',
  'linux-image-7.2.13+deb14-amd64 | 7.2.13-1 | x sid/main amd64 Packages',
].join('\n');
const served = parseMadison(MADISON);

test('releases and version numbers', () => {
  assert.is(imageRelease('linux-image-6.1.0-50-amd64-unsigned'), '6.1.0-50-amd64');
  assert.is(imageRelease('linux-image-7.3.4+deb13-rt-amd64'), null);
  assert.is(imageRelease('linux-image-amd64'), null);
  assert.equal(upstreamNumbers('7.3.4-1~bpo13+1'), [7, 3, 4]);
  assert.equal(upstreamNumbers('1:6.1.176-1'), [6, 1, 176]);
});

test('debian:X.Y picks the newest of that series; 6.1 is not 6.12; latest is the newest of all', () => {
  assert.equal(imageRelease(chooseKernelImage('6.1', served).name), '6.1.0-50-amd64');
  assert.is(chooseKernelImage('6.1', served).version, '6.1.176-1');
  assert.is(chooseKernelImage('6.12', served).version, '6.12.117-1~deb12u1');
  assert.is(chooseKernelImage('7.2', served).name, 'linux-image-7.2.13+deb14-amd64');
  assert.is(chooseKernelImage('latest', served).name, 'linux-image-7.3.4+deb13-amd64');
  assert.throws(() => chooseKernelImage('5.10', served), /no such kernel is served; series served: 6\.1, 6\.12, 7\.2, 7\.3/);
  assert.throws(() => chooseKernelImage('seven', served), /give a kernel series/);
});

test('packages: the image alone up to 6.x, binary + modules + base from 7.x', () => {
  assert.equal(kernelPackages(chooseKernelImage('6.12', served), served), [{ name: 'linux-image-6.12.117+deb12-amd64-unsigned', version: '6.12.117-1~deb12u1' }]);
  assert.equal(kernelPackages({ name: 'linux-image-6.1.0-50-amd64', version: '6.1.176-1' }, served).map((p) => p.name), ['linux-image-6.1.0-50-amd64-unsigned']);
  assert.equal(
    kernelPackages(chooseKernelImage('7.3', served), served).map((p) => p.name),
    ['linux-binary-7.3.4+deb13-amd64', 'linux-modules-7.3.4+deb13-amd64', 'linux-base-7.3.4+deb13-amd64'],
  );
  const noBinary = served.filter((p) => !p.name.startsWith('linux-binary'));
  assert.throws(() => kernelPackages(chooseKernelImage('7.3', noBinary), noBinary), /no linux-binary package/);
});

test.run();
