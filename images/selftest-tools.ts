// Newer network tools for the kernel's selftests than this host's Debian 12 ships. The tests
// run on the host's root file system (zcnic.rootfs=host) and call `ethtool --json -l/-c/-g`,
// which bookworm's ethtool 6.1 refuses ("bad command line argument(s)"), and iproute2 options
// newer than 6.1. netdev's CI runs them with current tools.
//
// Which version: the newest the private apt view serves whose every dependency this host has
// installed at a version that satisfies it, so that the program runs on the host's libraries
// as they are (today: ethtool from sid, iproute2 from bookworm-backports; sid's iproute2 needs
// glibc 2.38). The packages are unpacked under .cache/selftests/tools/ and their program folders
// go first on the tests' PATH in the guest (zcnic.tools_path); the host itself is not touched.
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDeb, extractDeb } from './debian.js';
import { PrivateApt } from './debian-archive.js';
import { BuildError, run, type RunOptions } from './run.js';

/** The packages whose newer programs the selftests need. */
export const SELFTEST_TOOL_PACKAGES: readonly string[] = ['ethtool', 'iproute2'];
/**
 * Where the programs end up, in PATH order. Packages built for a merged /usr put some in /bin
 * and /sbin and link to them from /usr (iproute2: usr/sbin/ip -> ../bin/ip), so the unpacked
 * tree is merged the same way (mergeUsr).
 */
const PROGRAM_DIRS: readonly string[] = ['usr/sbin', 'usr/bin'];

export interface ToolPackage {
  readonly name: string;
  readonly version: string;
}

export interface SelftestTools {
  readonly packages: readonly ToolPackage[];
  /** Folders (host paths, the same in the guest) to put first on the tests' PATH. */
  readonly path: readonly string[];
}

/** One version of a package as `apt-cache show` gives it. */
export interface PackageStanza {
  readonly version: string;
  readonly depends: string;
}

/** The stanzas of `apt-cache show PKG` (every served version). */
export function parseStanzas(text: string): PackageStanza[] {
  return text
    .split(/\n\s*\n/)
    .map((block) => ({
      version: /^Version: (\S+)$/m.exec(block)?.[1] ?? '',
      depends: [/^Pre-Depends: (.*)$/m.exec(block)?.[1], /^Depends: (.*)$/m.exec(block)?.[1]].filter((d) => d !== undefined).join(', '),
    }))
    .filter((s) => s.version !== '');
}

/** dpkg's ordering of one part (upstream or revision): '~' before everything, letters before other characters. */
function order(c: string): number {
  if (c === '~') return -1;
  if (c === '') return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // The non-digit run, character by character.
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const x = i < a.length && !/\d/.test(a[i]!) ? a[i]! : '';
      const y = j < b.length && !/\d/.test(b[j]!) ? b[j]! : '';
      if (order(x) !== order(y)) return order(x) - order(y);
      if (x !== '') i++;
      if (y !== '') j++;
    }
    // Then the digit run, as a number.
    let m = i;
    while (m < a.length && /\d/.test(a[m]!)) m++;
    let n = j;
    while (n < b.length && /\d/.test(b[n]!)) n++;
    const diff = Number(a.slice(i, m) || '0') - Number(b.slice(j, n) || '0');
    if (diff !== 0) return diff;
    i = m;
    j = n;
  }
  return 0;
}

/** Debian's version comparison (epoch, upstream, revision), as `dpkg --compare-versions`. */
export function compareDebianVersions(a: string, b: string): number {
  const split = (v: string): [number, string, string] => {
    const colon = v.indexOf(':');
    const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
    const rest = colon >= 0 ? v.slice(colon + 1) : v;
    const dash = rest.lastIndexOf('-');
    return dash >= 0 ? [epoch, rest.slice(0, dash), rest.slice(dash + 1)] : [epoch, rest, ''];
  };
  const [ea, ua, ra] = split(a);
  const [eb, ub, rb] = split(b);
  return ea !== eb ? ea - eb : comparePart(ua, ub) || comparePart(ra, rb);
}

function satisfies(installed: string, op: string, wanted: string): boolean {
  const c = compareDebianVersions(installed, wanted);
  switch (op) {
    case '>=':
      return c >= 0;
    case '<=':
      return c <= 0;
    case '>>':
      return c > 0;
    case '<<':
      return c < 0;
    default:
      return c === 0;
  }
}

/**
 * The dependencies (a Depends field) that none of `installed` satisfies; `installed` maps a
 * package name, and each name a package provides, to its installed version ('' for provides).
 */
export function unmetDependencies(depends: string, installed: ReadonlyMap<string, string>): string[] {
  const unmet: string[] = [];
  for (const group of depends.split(',').map((g) => g.trim()).filter((g) => g !== '')) {
    const met = group.split('|').some((alternative) => {
      const m = /^([a-z0-9.+-]+)(?::\S+)?\s*(?:\((<<|<=|=|>=|>>)\s*([^)\s]+)\))?/.exec(alternative.trim());
      if (!m) return false;
      const have = installed.get(m[1]!);
      if (have === undefined) return false;
      return m[2] === undefined || (have !== '' && satisfies(have, m[2], m[3]!));
    });
    if (!met) unmet.push(group);
  }
  return unmet;
}

/** The newest stanza whose dependencies this host meets, or why none does. */
export function chooseInstallable(stanzas: readonly PackageStanza[], installed: ReadonlyMap<string, string>): PackageStanza | string {
  const newestFirst = [...stanzas].sort((a, b) => compareDebianVersions(b.version, a.version));
  const best = newestFirst.find((s) => unmetDependencies(s.depends, installed).length === 0);
  if (best) return best;
  const newest = newestFirst[0];
  return newest ? `the newest, ${newest.version}, needs ${unmetDependencies(newest.depends, installed).join(', ')}` : 'no version is served';
}

/** Installed packages and what they provide (dpkg's view of this host). */
async function installedPackages(ro: RunOptions): Promise<Map<string, string>> {
  const res = await run('dpkg-query', ['-W', '-f', '${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Provides}\\n'], { ...ro, verbose: false });
  const installed = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const [status, name, version, provides] = line.split('\t');
    if (!status?.startsWith('ii') || !name || !version) continue;
    installed.set(name, version);
    for (const p of (provides ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      const m = /^(\S+)(?:\s*\(=\s*([^)\s]+)\))?/.exec(p);
      if (m && !installed.has(m[1]!)) installed.set(m[1]!, m[2] ?? '');
    }
  }
  return installed;
}

/** Moves bin/ and sbin/ of an unpacked tree into usr/, as a merged-/usr system has them. */
async function mergeUsr(tree: string): Promise<void> {
  for (const d of ['bin', 'sbin']) {
    const from = join(tree, d);
    if (!(await isDir(from))) continue;
    await mkdir(join(tree, 'usr', d), { recursive: true });
    for (const name of await readdir(from)) await rename(join(from, name), join(tree, 'usr', d, name));
    await rm(from, { recursive: true });
  }
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Resolves, downloads and unpacks (or finds in the cache) the selftests' tools. */
export async function ensureSelftestTools(cacheDir: string, ro: RunOptions): Promise<SelftestTools> {
  const apt = await PrivateApt.open(join(cacheDir, 'apt'), ro);
  const installed = await installedPackages(ro);
  const packages: ToolPackage[] = [];
  for (const name of SELFTEST_TOOL_PACKAGES) {
    const shown = await run('apt-cache', [...apt.args, 'show', name], { ...ro, verbose: false, allowFailure: true });
    const choice = chooseInstallable(parseStanzas(shown.stdout), installed);
    if (typeof choice === 'string') throw new BuildError(`no ${name} on the private apt view runs on this host: ${choice}`);
    packages.push({ name, version: choice.version });
  }
  const root = join(cacheDir, 'selftests', 'tools');
  const dir = join(root, packages.map((p) => `${p.name}_${p.version.replace(/^\d+:/, '')}`).join('+'));
  if (!(await isDir(dir))) {
    const tmp = join(root, `.unpack-${process.pid}-${Date.now()}`);
    try {
      for (const p of packages) {
        ro.log?.(`selftests: ${p.name} ${p.version} for the guest's PATH`);
        await extractDeb(await ensureDeb(join(cacheDir, 'debs'), p.name, p.version, ro, apt.args), tmp, ro);
      }
      await mergeUsr(tmp);
      await rename(tmp, dir);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const path: string[] = [];
  for (const d of PROGRAM_DIRS) {
    const full = join(dir, d);
    if (await isDir(full)) path.push(full);
  }
  if (path.length === 0) throw new BuildError(`the tools unpacked in ${dir} have no program folder`);
  return { packages, path };
}
