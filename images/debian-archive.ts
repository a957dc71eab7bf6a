// A private view of Debian's archive: the suites that serve newer kernels (bookworm-backports,
// trixie-backports, sid) on the mirror this machine's own apt sources name, with apt lists and
// a cache of their own under .cache/apt/, and the source packages of SOURCE_SUITES (deb-src)
// for what the image builds from source (images/xdp-tools.ts, images/liburing.ts). The system's sources, lists and
// cache stay untouched, and no mirror's host name is written into the project: it is read from
// the sources at run time.
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';

/** Suites added beside the machine's own: where Debian serves kernels up to 7.x. */
export const KERNEL_SUITES: readonly string[] = ['bookworm', 'bookworm-backports', 'trixie-backports', 'sid'];
/**
 * Suites whose source packages (deb-src) the private view lists: guest user space that must
 * keep up with the newest kernels (xdp-tools, libbpf, liburing) is built from sid's sources.
 */
export const SOURCE_SUITES: readonly string[] = ['sid'];
const DEFAULT_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** Lists older than this are fetched again (kernels move on; a day keeps runs fast). */
const LISTS_MAX_AGE_MS = 24 * 3600_000;

export interface AptSource {
  uris: string[];
  suites: string[];
  components: string[];
  signedBy: string | null;
}

/** Entries of a deb822 `.sources` file (Types: deb only; Enabled: no is skipped). */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | null = null;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#') || line.trim() === '') continue;
      const field = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (field) {
        last = field[1]!.toLowerCase();
        fields.set(last, field[2]!.trim());
      } else if (last !== null && /^\s/.test(line)) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`.trim());
      }
    }
    const words = (name: string): string[] => (fields.get(name) ?? '').split(/\s+/).filter((w) => w !== '');
    if (!words('types').includes('deb') || fields.get('enabled')?.toLowerCase() === 'no') continue;
    out.push({ uris: words('uris'), suites: words('suites'), components: words('components'), signedBy: fields.get('signed-by') ?? null });
  }
  return out.filter((s) => s.uris.length > 0 && s.suites.length > 0);
}

/** Entries of a one-line `sources.list` (`deb [options] URI SUITE COMPONENT...`). */
export function parseOneLineSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)(.*)$/.exec(line);
    if (!m) continue;
    const signedBy = /(?:^|\s)signed-by=(\S+)/.exec(m[1] ?? '')?.[1] ?? null;
    out.push({ uris: [m[2]!], suites: [m[3]!], components: m[4]!.trim().split(/\s+/).filter((w) => w !== ''), signedBy });
  }
  return out;
}

/**
 * The private sources list: the machine's own entries, plus KERNEL_SUITES (component main) on
 * the URI of the entry that serves the machine's own release (`codename`, not -security), plus
 * a deb-src line (component main, same URI) for each of `sourceSuites`.
 */
export function privateSourcesList(system: readonly AptSource[], codename: string, sourceSuites: readonly string[] = []): string {
  const main = system.find((s) => s.suites.includes(codename));
  if (!main) throw new BuildError(`no apt source serves ${codename} on this machine, so there is no mirror to add the kernel suites to`);
  const lines = new Set<string>();
  const line = (uri: string, suite: string, components: readonly string[], signedBy: string | null): void =>
    void lines.add(`deb [signed-by=${signedBy ?? DEFAULT_KEYRING}] ${uri} ${suite} ${components.join(' ')}`);
  for (const s of system) for (const uri of s.uris) for (const suite of s.suites) line(uri, suite, s.components, s.signedBy);
  for (const suite of KERNEL_SUITES) if (!main.suites.includes(suite)) line(main.uris[0]!, suite, ['main'], main.signedBy);
  for (const suite of sourceSuites) lines.add(`deb-src [signed-by=${main.signedBy ?? DEFAULT_KEYRING}] ${main.uris[0]!} ${suite} main`);
  return `${[...lines].join('\n')}\n`;
}

async function systemSources(): Promise<AptSource[]> {
  const out: AptSource[] = [];
  out.push(...parseOneLineSources(await readFile('/etc/apt/sources.list', 'utf8').catch(() => '')));
  const parts = '/etc/apt/sources.list.d';
  for (const name of (await readdir(parts).catch(() => [] as string[])).sort()) {
    const text = await readFile(join(parts, name), 'utf8').catch(() => '');
    if (name.endsWith('.sources')) out.push(...parseDeb822Sources(text));
    else if (name.endsWith('.list')) out.push(...parseOneLineSources(text));
  }
  return out;
}

/** This machine's Debian release (bookworm on the project's machines). */
export async function osCodename(): Promise<string> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const codename = /^VERSION_CODENAME=(\S+)$/m.exec(text)?.[1];
  if (!codename) throw new BuildError('/etc/os-release names no VERSION_CODENAME: is this Debian?');
  return codename;
}

/** apt-get and apt-cache on the private view: `args` go before the command's own. */
export class PrivateApt {
  readonly args: readonly string[];

  private constructor(dir: string) {
    this.args = [
      '-o', `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
      '-o', `Dir::Etc::SourceParts=${join(dir, 'sources.list.d')}`,
      '-o', `Dir::State::Lists=${join(dir, 'lists')}`,
      '-o', `Dir::Cache=${join(dir, 'cache')}`,
    ];
  }

  /**
   * Views being opened or open, by folder: an image build fetches several source packages at
   * once, and two `apt-get update`s on one lists folder fail on its lock.
   */
  private static readonly opening = new Map<string, Promise<PrivateApt>>();

  /** The private view under `dir`, its lists fetched when missing, stale or for other sources. */
  static open(dir: string, ro: RunOptions): Promise<PrivateApt> {
    let view = PrivateApt.opening.get(dir);
    if (view === undefined) {
      view = PrivateApt.openOnce(dir, ro);
      PrivateApt.opening.set(dir, view);
      // A failed open is tried again by the next caller.
      view.catch(() => PrivateApt.opening.delete(dir));
    }
    return view;
  }

  private static async openOnce(dir: string, ro: RunOptions): Promise<PrivateApt> {
    const apt = new PrivateApt(dir);
    const sources = privateSourcesList(await systemSources(), await osCodename(), SOURCE_SUITES);
    await Promise.all(['sources.list.d', 'lists/partial', 'cache/archives/partial'].map((d) => mkdir(join(dir, d), { recursive: true })));
    const listPath = join(dir, 'sources.list');
    const stamp = join(dir, 'lists', '.updated');
    const previous = await readFile(listPath, 'utf8').catch(() => '');
    const updatedAt = await stat(stamp).then((s) => s.mtimeMs, () => 0);
    if (previous === sources && Date.now() - updatedAt < LISTS_MAX_AGE_MS) return apt;
    await writeFile(listPath, sources);
    ro.log?.(`apt: fetching the package lists of ${KERNEL_SUITES.join(', ')} and the source lists of ${SOURCE_SUITES.join(', ')} (private lists under .cache/apt)…`);
    const res = await run('apt-get', [...apt.args, 'update', '-q'], { ...ro, allowFailure: true });
    if (res.exitCode !== 0) throw new BuildError(`apt-get update on the private sources failed:\n${res.stderr.trim().split('\n').slice(-5).join('\n')}`);
    await writeFile(stamp, new Date().toISOString());
    return apt;
  }
}

/**
 * The .dsc of source package pkg=version in sourcesDir (.cache/sources/), fetched through the
 * private apt view (deb-src of SOURCE_SUITES) when absent. `pinnedIn` names where the version is
 * pinned, for the error when the archive no longer serves it.
 */
export async function ensureSourcePackage(sourcesDir: string, pkg: string, version: string, cacheDir: string, pinnedIn: string, ro: RunOptions): Promise<string> {
  const dsc = join(sourcesDir, `${pkg}_${version.replace(/^\d+:/, '')}.dsc`);
  if (await stat(dsc).then(() => true, () => false)) return dsc;
  const apt = await PrivateApt.open(join(cacheDir, 'apt'), ro);
  const shown = await run('apt-cache', [...apt.args, 'showsrc', pkg], { ...ro, allowFailure: true });
  const served = [...shown.stdout.matchAll(/^Version: (\S+)$/gm)].map((m) => m[1]!);
  if (!served.includes(version)) {
    throw new BuildError(`source package ${pkg}=${version} is not served on the private apt view (served: ${served.join(', ') || 'none'}); pin one that is in ${pinnedIn}`);
  }
  ro.log?.(`fetching source package ${pkg} ${version}…`);
  await mkdir(sourcesDir, { recursive: true });
  // A private folder, so that a concurrent build never sees half a file.
  const tmp = join(sourcesDir, `.download-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    await run('apt-get', [...apt.args, 'source', '--download-only', '-q', `${pkg}=${version}`], { ...ro, cwd: tmp });
    const got = await readdir(tmp);
    if (!got.includes(dsc.slice(sourcesDir.length + 1))) throw new BuildError(`apt-get source ${pkg}=${version} gave no ${dsc}: ${got.join(' ')}`);
    // The .dsc last: its presence says the rest is there.
    for (const name of got.sort((a, b) => Number(a.endsWith('.dsc')) - Number(b.endsWith('.dsc')))) await rename(join(tmp, name), join(sourcesDir, name));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dsc;
}

export interface DebianPackage {
  name: string;
  version: string;
}

/** A Debian kernel resolved from `debian:VERSION`: the packages that hold its image and modules. */
export interface DebianKernel {
  /** What was asked for: `6.12`, `7.3`, `latest`. */
  request: string;
  /** The kernel release (`uname -r`), e.g. 7.3.4+deb13-amd64. */
  release: string;
  /** The package version, e.g. 7.3.4-1~bpo13+1. */
  version: string;
  /** 6.x: the image package alone; 7.x: linux-binary-*, linux-modules-* and linux-base-*. */
  packages: DebianPackage[];
}

/** `apt-cache madison` lines: "name | version | where". */
export function parseMadison(text: string): DebianPackage[] {
  const out: DebianPackage[] = [];
  for (const line of text.split('\n')) {
    const [name, version] = line.split('|').map((f) => f.trim());
    if (name && version) out.push({ name, version });
  }
  return out;
}

/** A generic amd64 kernel image package (no rt, cloud or dbg flavour): its release, or null. */
export function imageRelease(name: string): string | null {
  const m = /^linux-image-(\d+\.\d+[.-]\S*-amd64)(?:-unsigned)?$/.exec(name);
  if (!m || /-(?:rt|cloud)-amd64$/.test(m[1]!)) return null;
  return m[1]!;
}

/** The upstream numbers of a package version: 7.3.4-1~bpo13+1 -> [7, 3, 4]. */
export function upstreamNumbers(version: string): number[] {
  const upstream = version.replace(/^\d+:/, '').split('-')[0] ?? '';
  return upstream.split(/[.+~]/).map(Number).filter((n) => Number.isInteger(n));
}

/** Orders package versions by their upstream numbers, then by the rest (for sort). */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [upstreamNumbers(a), upstreamNumbers(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return a.localeCompare(b, 'en', { numeric: true });
}

function newer(a: DebianPackage, b: DebianPackage): number {
  return compareVersions(a.version, b.version);
}

/**
 * The kernel image to use for a request: `latest` is the newest generic image on any suite,
 * `X.Y` the newest X.Y.N. An unknown version is an error that lists what is served.
 */
export function chooseKernelImage(request: string, served: readonly DebianPackage[]): DebianPackage {
  const images = served.filter((p) => imageRelease(p.name) !== null);
  let wanted = images;
  if (request !== 'latest') {
    const m = /^(\d+)\.(\d+)$/.exec(request);
    if (!m) throw new BuildError(`debian:${request}: give a kernel series such as debian:6.12 or debian:7.3, or debian:latest`);
    wanted = images.filter((p) => {
      const [major, minor] = upstreamNumbers(p.version);
      return major === Number(m[1]) && minor === Number(m[2]);
    });
  }
  const best = [...wanted].sort(newer).at(-1);
  if (!best) {
    const series = [...new Set(images.map((p) => upstreamNumbers(p.version).slice(0, 2).join('.')))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    throw new BuildError(`debian:${request}: no such kernel is served; series served: ${series.join(', ') || 'none (apt lists empty?)'}`);
  }
  return best;
}

/**
 * The packages that hold an image's kernel and modules. Up to 6.x the image package has both
 * (boot/vmlinuz-REL, lib/modules/REL); from 7.x linux-image-REL is empty and depends on
 * linux-binary-REL (usr/lib/modules/REL/vmlinuz), linux-modules-REL and linux-base-REL
 * (config, modules.builtin). Up to 6.x the unsigned image is preferred where both are served
 * (the signed one wraps the same kernel).
 */
export function kernelPackages(image: DebianPackage, served: readonly DebianPackage[]): DebianPackage[] {
  const release = imageRelease(image.name)!;
  const at = (name: string): DebianPackage | undefined => served.find((p) => p.name === name && p.version === image.version);
  const modules = at(`linux-modules-${release}`);
  if (modules) {
    // The package linux-image-REL itself depends on (the unsigned one names its file vmlinuz.unsigned).
    const binary = at(`linux-binary-${release}`) ?? at(`linux-binary-unsigned-${release}`);
    if (!binary) throw new BuildError(`${image.name}=${image.version}: linux-modules-${release} is served but no linux-binary package of that version`);
    const base = at(`linux-base-${release}`);
    return [binary, modules, ...(base ? [base] : [])];
  }
  return [at(`linux-image-${release}-unsigned`) ?? image];
}

/** Resolves `debian:REQUEST` on the private view of the archive. */
export async function resolveDebianKernel(request: string, apt: PrivateApt, ro: RunOptions): Promise<DebianKernel> {
  const search = await run('apt-cache', [...apt.args, 'search', '--names-only', '^linux-(image|binary|binary-unsigned|modules|base)-[0-9]'], ro);
  const names = search.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '' && !/-(?:rt|cloud)-amd64/.test(name) && /amd64(?:-unsigned)?$/.test(name));
  if (names.length === 0) throw new BuildError('apt serves no kernel packages on the private sources');
  const served = parseMadison((await run('apt-cache', [...apt.args, 'madison', ...names], ro)).stdout);
  const image = chooseKernelImage(request, served);
  return { request, release: imageRelease(image.name)!, version: image.version, packages: kernelPackages(image, served) };
}
