import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseForRelease, msixUnderTcg, parseMadisonSuites, qemuMajor } from '../../harness/qemu-binary.js';

// Made-up mirror: the project never names a real one.
const MADISON = [
  'qemu-system-x86 | 1:11.1.3+ds-2~bpo13+1 | http://mirror.invalid/debian trixie-backports/main amd64 Packages',
  'qemu-system-x86 | 1:10.0.2+ds-2+deb13u1~bpo12+1 | http://mirror.invalid/debian bookworm-backports/main amd64 Packages',
  'qemu-system-x86 | 1:7.2+dfsg-7+deb12u18+b3 | http://mirror.invalid/debian bookworm/main amd64 Packages',
  'qemu-system-x86 | 1:7.2+dfsg-7+deb12u15 | http://mirror.invalid/debian-security bookworm-security/main amd64 Packages',
].join('\n');

test('madison rows keep their suite', () => {
  const rows = parseMadisonSuites(MADISON);
  assert.equal(rows.map((r) => r.suite), ['trixie-backports', 'bookworm-backports', 'bookworm', 'bookworm-security']);
  assert.is(rows[1]!.version, '1:10.0.2+ds-2+deb13u1~bpo12+1');
});

test("a major version for this release: bookworm-backports' 10, never trixie's 11", () => {
  const rows = parseMadisonSuites(MADISON);
  assert.is(chooseForRelease(rows, 10, 'bookworm'), '1:10.0.2+ds-2+deb13u1~bpo12+1');
  assert.is(chooseForRelease(rows, 11, 'bookworm'), null);
  assert.is(chooseForRelease(rows, 7, 'bookworm'), '1:7.2+dfsg-7+deb12u18+b3');
  assert.is(chooseForRelease(rows, null, 'bookworm'), '1:10.0.2+ds-2+deb13u1~bpo12+1');
});

test('the major version decides MSI-X under TCG: 7.2 segfaults with it, 10.0 does not', () => {
  assert.is(qemuMajor('QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)'), 7);
  assert.is(qemuMajor('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)'), 10);
  assert.is(qemuMajor('unavailable (spawn ENOENT)'), null);
  const q = (major: number | null) => ({ path: 'q', firmwareDirs: [], description: 'q', major });
  assert.equal([msixUnderTcg(q(7)), msixUnderTcg(q(10)), msixUnderTcg(q(11)), msixUnderTcg(q(null))], [false, true, true, false]);
});

test.run();
