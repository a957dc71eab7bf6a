// Dynamically linked programs of the build host (Debian packages), copied into the guest
// together with every shared library they load and the ELF interpreter, at the paths the host
// has them, so that the guest's dynamic loader finds them by its default search path
// (/lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu; there is no ld.so.cache in the guest).
//
// Which libraries: what `ldd` reports for the binary. Where the BPF objects come from: each
// entry names the objects the program loads at run time from libxdp's object directory
// (initramfs.ts BPF_OBJECT_DIR, package libxdp1); they are added to the initramfs with the
// program. A program that is not installed on the host is left out (with a warning), and the
// suites that need it fail saying so.
//
// The image key covers every file copied (its SHA-256) and the Debian package and version
// that owns it, so a package upgrade on the host makes a new image.
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { run, type RunOptions } from './run.js';

export interface HostBinary {
  /** Absolute path on the host; the guest gets it at the same path. */
  readonly path: string;
  /** Debian package that ships it (for "install it" messages). */
  readonly package: string;
  /** BPF object files it loads at run time from libxdp's object directory. */
  readonly bpfObjects: readonly string[];
}

/**
 * None at the moment. xdp-bench and xdp-loader used to come from here (bookworm's xdp-tools
 * 1.3.1), but that xdp-bench cannot load its statistics programs on 7.x kernels; they are now
 * built static from Debian's newer source package (xdp-tools.ts) for every kernel.
 */
export const HOST_BINARIES: readonly HostBinary[] = [];

export interface HostFile {
  /** Path in the guest, without the leading slash. */
  readonly guestPath: string;
  readonly hostPath: string;
  readonly data: Uint8Array;
}

export interface HostBinarySet {
  /** Programs, libraries and interpreters, each once. */
  readonly files: HostFile[];
  /** Programs (guest paths) that made it in. */
  readonly programs: string[];
  /** BPF objects the programs that made it in need. */
  readonly bpfObjects: string[];
  /** "path (package): why" of each program left out. */
  readonly missing: string[];
  /** For the image key and the manifest: "guestPath package=version sha256" per file, sorted. */
  readonly fingerprint: string[];
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The absolute paths in `ldd` output: resolved libraries and the interpreter. */
export function parseLdd(text: string): { paths: string[]; notFound: string[] } {
  const paths: string[] = [];
  const notFound: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('linux-vdso') || line.startsWith('linux-gate')) continue;
    const arrow = /^(\S+)\s+=>\s+(\S+)/.exec(line);
    if (arrow) {
      if (arrow[2] === 'not') notFound.push(arrow[1]!);
      else if (arrow[2]!.startsWith('/')) paths.push(arrow[2]!);
      continue;
    }
    const bare = /^(\/\S+)\s+\(0x[0-9a-f]+\)$/.exec(line);
    if (bare) paths.push(bare[1]!);
  }
  return { paths, notFound };
}

/** /lib/x and /usr/lib/x name the same file on a merged-/usr system; dpkg knows only one. */
function aliases(path: string): string[] {
  const out = [path];
  const m = /^\/usr(\/(?:lib|lib64|bin|sbin)\/.*)$/.exec(path);
  if (m) out.push(m[1]!);
  else if (/^\/(?:lib|lib64|bin|sbin)\//.test(path)) out.push(`/usr${path}`);
  return out;
}

/** Package=version owning each path (by any of its names), or "unpackaged". */
async function owners(paths: readonly string[], ro: RunOptions): Promise<Map<string, string>> {
  if (paths.length === 0) return new Map();
  const candidates = new Map<string, string[]>();
  for (const p of paths) {
    const names = new Set<string>();
    for (const n of aliases(p)) names.add(n);
    const real = await realpath(p).catch(() => p);
    for (const n of aliases(real)) names.add(n);
    candidates.set(p, [...names]);
  }
  const all = [...new Set([...candidates.values()].flat())];
  const res = await run('dpkg-query', ['-S', ...all], { ...ro, verbose: false, allowFailure: true });
  const pkgOf = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?: (\/\S+)$/.exec(line.trim());
    if (m) pkgOf.set(m[2]!, m[1]!);
  }
  const pkgs = [...new Set(pkgOf.values())];
  const versions = new Map<string, string>();
  if (pkgs.length > 0) {
    const v = await run('dpkg-query', ['-W', '-f', '${Package}=${Version}\\n', ...pkgs], { ...ro, verbose: false, allowFailure: true });
    for (const line of v.stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) versions.set(line.slice(0, eq), line);
    }
  }
  const out = new Map<string, string>();
  for (const [p, names] of candidates) {
    const pkg = names.map((n) => pkgOf.get(n)).find((x) => x !== undefined);
    out.set(p, pkg === undefined ? 'unpackaged' : (versions.get(pkg) ?? `${pkg}=?`));
  }
  return out;
}

/** Reads each installed host binary and what it links; fast enough to run on every build. */
export async function collectHostBinaries(list: readonly HostBinary[], ro: RunOptions): Promise<HostBinarySet> {
  const files = new Map<string, HostFile>();
  const programs: string[] = [];
  const bpfObjects = new Set<string>();
  const missing: string[] = [];
  const add = async (path: string) => {
    const guestPath = path.replace(/^\/+/, '');
    if (!files.has(guestPath)) files.set(guestPath, { guestPath, hostPath: path, data: await readFile(path) });
  };
  for (const bin of list) {
    if (!(await isFile(bin.path))) {
      missing.push(`${bin.path} (apt-get install -y ${bin.package})`);
      continue;
    }
    const ldd = await run('ldd', [bin.path], { ...ro, allowFailure: true });
    const { paths, notFound } = parseLdd(ldd.stdout);
    if (ldd.exitCode !== 0 || notFound.length > 0) {
      missing.push(`${bin.path}: ldd ${notFound.length ? `cannot find ${notFound.join(', ')}` : `failed: ${ldd.stderr.trim()}`}`);
      continue;
    }
    await add(bin.path);
    for (const p of paths) await add(p);
    programs.push(bin.path.replace(/^\/+/, ''));
    for (const o of bin.bpfObjects) bpfObjects.add(o);
  }
  const owner = await owners([...files.values()].map((f) => f.hostPath), ro);
  const fingerprint = [...files.values()]
    .map((f) => `${f.guestPath} ${owner.get(f.hostPath)} ${createHash('sha256').update(f.data).digest('hex').slice(0, 16)}`)
    .sort();
  for (const m of missing) fingerprint.push(`missing ${m}`);
  return { files: [...files.values()], programs, bpfObjects: [...bpfObjects].sort(), missing, fingerprint };
}
