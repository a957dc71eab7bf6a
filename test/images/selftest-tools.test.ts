import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseInstallable, compareDebianVersions, parseStanzas, unmetDependencies } from '../../images/selftest-tools.js';

// Pairs where the ordering rules differ: tilde, epochs, revisions, letters against other
// characters, digit runs of different lengths.
const PAIRS: ReadonlyArray<[string, string]> = [
  ['1:6.1-1', '1:7.2-1'],
  ['7.2-1', '1:6.1-1'],
  ['6.15.0-1~bpo12+1', '6.15.0-1'],
  ['6.15.0-1~bpo12+1', '6.1.0-3'],
  ['1.0~rc1', '1.0'],
  ['1.0a', '1.0+'],
  ['1.0', '1.0-0'],
  ['2.36-9+deb12u13', '2.36-9+deb12u4'],
  ['1.2.3', '1.2.3'],
  ['0.9', '0.10'],
  ['1.0-1', '1.0-1.1'],
  ['1.0~~', '1.0~'],
];

/** What `dpkg --compare-versions A OP B` answers. */
function dpkgSays(a: string, op: string, b: string): boolean {
  try {
    execFileSync('dpkg', ['--compare-versions', a, op, b]);
    return true;
  } catch {
    return false;
  }
}

test('Debian versions order as dpkg orders them (checked against dpkg itself)', () => {
  for (const [a, b] of PAIRS) {
    const dpkgSaysLess = dpkgSays(a, 'lt', b);
    const dpkgSaysEqual = dpkgSays(a, 'eq', b);
    const ours = compareDebianVersions(a, b);
    assert.is(ours < 0, dpkgSaysLess, `${a} < ${b}`);
    assert.is(ours === 0, dpkgSaysEqual, `${a} = ${b}`);
    assert.is(Math.sign(compareDebianVersions(b, a)), -Math.sign(ours), `${b} against ${a}`);
  }
});

const SHOW = `Package: ethtool
Version: 1:7.2-1
Depends: libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)

Package: ethtool
Version: 1:6.1-1
Depends: libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)
`;

test('apt-cache show gives one stanza per version, with Pre-Depends and Depends', () => {
  const stanzas = parseStanzas(SHOW);
  assert.equal(
    stanzas.map((s) => s.version),
    ['1:7.2-1', '1:6.1-1'],
  );
  assert.is(stanzas[0]!.depends, 'libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)');
  assert.is(parseStanzas('Package: x\nVersion: 1\nPre-Depends: a\nDepends: b (>= 2)\n')[0]!.depends, 'a, b (>= 2)');
});

const BOOKWORM = new Map([
  ['libc6', '2.36-9+deb12u13'],
  ['libmnl0', '1.0.4-3'],
  ['libdb5.3', '5.3.28+dfsg2-1'],
  ['debconf', '1.5.82'],
  ['debconf-2.0', ''],
]);

test("a dependency is met by an installed version that satisfies it, by an alternative, or by what a package provides", () => {
  assert.equal(unmetDependencies('libc6 (>= 2.34), libmnl0 (>= 1.0.3-4~)', BOOKWORM), []);
  assert.equal(unmetDependencies('libc6 (>= 2.38), libmnl0', BOOKWORM), ['libc6 (>= 2.38)']);
  assert.equal(unmetDependencies('libdb5.3t64, debconf (>= 0.5) | debconf-2.0', BOOKWORM), ['libdb5.3t64']);
  assert.equal(unmetDependencies('cdebconf | debconf-2.0', BOOKWORM), []);
  // A provided name has no version: a versioned dependency on it is not met.
  assert.equal(unmetDependencies('debconf-2.0 (>= 1)', BOOKWORM), ['debconf-2.0 (>= 1)']);
  assert.equal(unmetDependencies('libc6:any (>= 2.34)', BOOKWORM), []);
  assert.equal(unmetDependencies('libc6 (<< 2.36)', BOOKWORM), ['libc6 (<< 2.36)']);
});

test('the newest installable version wins; when none is, the reason names what the newest needs', () => {
  const served = parseStanzas(`${SHOW}
Package: ethtool
Version: 1:7.9-1
Depends: libc6 (>= 2.40)
`);
  const best = chooseInstallable(served, BOOKWORM);
  assert.is(typeof best === 'string' ? best : best.version, '1:7.2-1');
  const none = chooseInstallable(served, new Map([['libc6', '2.31-13']]));
  assert.type(none, 'string');
  assert.match(none as string, /1:7\.9-1, needs libc6 \(>= 2\.40\)/);
  assert.is(chooseInstallable([], BOOKWORM), 'no version is served');
});

test.run();
