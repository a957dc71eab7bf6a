/**
 * Which QEMU runs the guest: the one on PATH (Debian 12's 7.2), a binary you name, or
 * `debian:MAJOR`: Debian's QEMU of that major version for this release (10 is in
 * bookworm-backports), fetched through the private apt view (images/debian-archive.ts) and
 * unpacked under .cache/qemu/VERSION/, beside the system's QEMU rather than over it. An unpacked
 * QEMU still looks for its firmware under /usr/share (Debian's build is not relocatable), so it
 * carries its own firmware folders, passed as -L.
 */
import { access, constants as fsConstants, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { compareVersions, osCodename, PrivateApt, upstreamNumbers } from '../images/debian-archive.js';
import { ensureDeb, extractDeb } from '../images/debian.js';
import { BuildError, run, type RunOptions } from '../images/run.js';
import { qemuVersion } from './accel.js';

export interface QemuBinary {
  readonly path: string;
  /** -L folders, first match wins (empty: QEMU's own). */
  readonly firmwareDirs: readonly string[];
  /** For progress lines and reports. */
  readonly description: string;
  /** Its major version, from `--version` (null when it did not say). */
  readonly major: number | null;
}

const SYSTEM_QEMU_PATH = 'qemu-system-x86_64';
/** From this major on, vhost-user with MSI-X works under TCG (measured: 7.2 segfaults, 10.0.2 passes). */
const MSIX_UNDER_TCG_SINCE = 10;

/** The major version in `qemu --version`'s first line ("QEMU emulator version 10.0.2 (...)"). */
export function qemuMajor(versionLine: string): number | null {
  const m = /version (\d+)\./.exec(versionLine);
  return m ? Number(m[1]) : null;
}

export function msixUnderTcg(qemu: QemuBinary): boolean {
  return qemu.major !== null && qemu.major >= MSIX_UNDER_TCG_SINCE;
}

async function binaryAt(path: string, firmwareDirs: readonly string[], description: string): Promise<QemuBinary> {
  return { path, firmwareDirs, description, major: qemuMajor(await qemuVersion(path)) };
}

const DEBIAN_PREFIX = 'debian:';
/** The packages of a working x86 system emulator: the binary, its helpers, firmware and ROMs. */
const QEMU_PACKAGES = ['qemu-system-x86', 'qemu-system-common', 'qemu-system-data'] as const;
const BIOS_PACKAGE = 'seabios';

/** `apt-cache madison` rows with the suite each version comes from. */
export function parseMadisonSuites(text: string): Array<{ name: string; version: string; suite: string }> {
  const out: Array<{ name: string; version: string; suite: string }> = [];
  for (const line of text.split('\n')) {
    const [name, version, where] = line.split('|').map((f) => f.trim());
    // "URI SUITE/COMPONENT ARCH Packages"
    const suite = (where ?? '').split(/\s+/)[1]?.split('/')[0];
    if (name && version && suite) out.push({ name, version, suite });
  }
  return out;
}

/** The newest version of a major that this Debian release (its codename and backports) serves. */
export function chooseForRelease(rows: ReadonlyArray<{ version: string; suite: string }>, major: number | null, codename: string): string | null {
  const fits = rows.filter((r) => (r.suite === codename || r.suite.startsWith(`${codename}-`)) && (major === null || upstreamNumbers(r.version)[0] === major));
  return fits.map((r) => r.version).sort(compareVersions).at(-1) ?? null;
}

async function executable(path: string): Promise<boolean> {
  return access(path, fsConstants.X_OK).then(
    () => true,
    () => false,
  );
}

/** The QEMU for a `--qemu` value (undefined: the one on PATH). */
export async function resolveQemu(spec: string | undefined, cacheDir: string, ro: RunOptions): Promise<QemuBinary> {
  if (spec === undefined) return binaryAt(SYSTEM_QEMU_PATH, [], `${SYSTEM_QEMU_PATH} on PATH`);
  if (!spec.startsWith(DEBIAN_PREFIX)) {
    if (!(await executable(spec))) throw new BuildError(`--qemu ${spec}: not an executable file`);
    return binaryAt(spec, [], spec);
  }
  const wanted = spec.slice(DEBIAN_PREFIX.length);
  if (!/^\d+$/.test(wanted)) throw new BuildError(`--qemu ${spec}: give a major version, e.g. debian:10`);
  const apt = await PrivateApt.open(join(cacheDir, 'apt'), ro);
  const release = await osCodename();
  const madison = parseMadisonSuites((await run('apt-cache', [...apt.args, 'madison', QEMU_PACKAGES[0]], ro)).stdout);
  const version = chooseForRelease(madison, Number(wanted), release);
  if (!version) {
    const served = madison.filter((r) => r.suite.startsWith(release)).map((r) => `${r.version} (${r.suite})`);
    throw new BuildError(`--qemu ${spec}: no QEMU ${wanted} is served for ${release}; served: ${served.join(', ') || 'none'}`);
  }
  const root = join(cacheDir, 'qemu', version.replace(/[^A-Za-z0-9.+~-]/g, '_'));
  const path = join(root, 'usr', 'bin', SYSTEM_QEMU_PATH);
  const firmwareDirs = [join(root, 'usr', 'share', 'qemu'), join(root, 'usr', 'share', 'seabios')];
  const description = `QEMU ${version} (Debian, ${spec})`;
  if (await executable(path)) return binaryAt(path, firmwareDirs, description);
  ro.log?.(`unpacking QEMU ${version} into .cache/qemu…`);
  const biosRows = parseMadisonSuites((await run('apt-cache', [...apt.args, 'madison', BIOS_PACKAGE], ro)).stdout);
  const biosVersion = chooseForRelease(biosRows, null, release);
  if (!biosVersion) throw new BuildError(`no ${BIOS_PACKAGE} is served for ${release}`);
  const debsDir = join(cacheDir, 'debs');
  const tmp = `${root}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    for (const name of QEMU_PACKAGES) await extractDeb(await ensureDeb(debsDir, name, version, ro, apt.args), tmp, ro);
    await extractDeb(await ensureDeb(debsDir, BIOS_PACKAGE, biosVersion, ro, apt.args), tmp, ro);
    // It must run here: its libraries come from the system.
    const check = await run(join(tmp, 'usr', 'bin', SYSTEM_QEMU_PATH), ['--version'], { ...ro, allowFailure: true });
    if (check.exitCode !== 0) throw new BuildError(`QEMU ${version} does not run on this machine: ${check.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    await rm(root, { recursive: true, force: true });
    await rename(tmp, root);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  if ((await readdir(firmwareDirs[0]!)).length === 0) throw new BuildError(`QEMU ${version} unpacked without firmware`);
  return binaryAt(path, firmwareDirs, description);
}
