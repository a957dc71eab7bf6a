// xdp-tools (xdp-bench, xdp-loader) built static from Debian's source packages, so that the
// guest's XDP user space matches the kernels it runs on.
//
// Why not the host's: bookworm's xdp-tools 1.3.1 attaches its statistics programs to the
// xdp:xdp_redirect_map_err tracepoint and friends, which 7.x kernels no longer have, so
// `xdp-bench redirect` and `redirect-cpu` fail to load there (`libbpf: prog
// 'tp_xdp_redirect_map_err': failed to load: -3`). Newer xdp-tools read their statistics
// another way and still run on 6.x, so every kernel gets the same build.
//
// What is built, pinned like the kernel (debian.ts) so that images are reproducible:
//   libbpf  XDP_TOOLS_LIBBPF_VERSION   src/ as a static library (BUILD_STATIC_ONLY), with
//                                      its headers and uapi headers, in the build folder
//   xdp-tools XDP_TOOLS_VERSION        configured against that libbpf (LIBBPF_DIR: neither
//                                      the host's libbpf-dev nor a submodule), libxdp static
//                                      (its dispatcher and XSK programs embedded, so it opens
//                                      no BPF object files), xdp-bench and xdp-loader linked
//                                      -static and stripped
// The sources come from the private apt view (debian-archive.ts, deb-src of SOURCE_SUITES)
// with `apt-get source --download-only` into .cache/sources/, and are unpacked with
// dpkg-source. Build tools are Debian packages of the host: clang, llvm, bpftool, m4, make,
// gcc, libelf-dev, zlib1g-dev (scripts/setup.sh installs them). When one is missing the
// programs are left out with a warning and the suites that need them fail saying so.
//
//   .cache/sources/<pkg>_<version>.dsc, .orig.tar.*, .debian.tar.*
//   .cache/xdp-tools/<key>/{xdp-bench,xdp-loader,build.json}
// <key> names both source versions and XDP_TOOLS_BUILD_VERSION; a warm build only checks
// that the folder exists.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ensureSourcePackage } from './debian-archive.js';
import type { HostBinarySet, HostFile } from './host-binaries.js';
import { BuildError, run, type RunOptions } from './run.js';

/** Source package versions (sid's when this was written; `apt-cache showsrc` lists what is served, without the binaries' epoch). */
export const XDP_TOOLS_VERSION = '1.6.3-1';
export const XDP_TOOLS_LIBBPF_VERSION = '1.7.0-1';
/** Bump when the build recipe changes for the same sources. */
export const XDP_TOOLS_BUILD_VERSION = 1;

/** Programs built and where the guest gets them (the paths Debian's xdp-tools installs to). */
export const XDP_TOOLS_PROGRAMS: readonly { name: string; guestPath: string; command: string }[] = [
  // `redirect` (seed 002) and `redirect-cpu` (seed 004), `pass` on eth0 for tap-xdp.
  { name: 'xdp-bench', guestPath: 'usr/sbin/xdp-bench', command: 'redirect' },
  // `status` and `unload -a`: the suites' safety net.
  { name: 'xdp-loader', guestPath: 'usr/sbin/xdp-loader', command: 'status' },
];

/** Host commands the build runs, with the package that has each. */
const BUILD_TOOLS: readonly [string, string][] = [
  ['clang', 'clang'],
  ['llc', 'llvm'],
  ['bpftool', 'bpftool'],
  ['m4', 'm4'],
  ['make', 'make'],
  ['gcc', 'gcc'],
  ['dpkg-source', 'dpkg-dev'],
  ['pkg-config', 'pkg-config'],
];
/** Static libraries the link needs, with their packages. */
const BUILD_LIBRARIES: readonly [string, string][] = [
  ['/usr/lib/x86_64-linux-gnu/libelf.a', 'libelf-dev'],
  ['/usr/lib/x86_64-linux-gnu/libz.a', 'zlib1g-dev'],
];

export interface XdpToolsBuild {
  /** .cache/xdp-tools/<key>/ */
  dir: string;
  key: string;
  /** "xdp-tools=V libbpf=V" */
  sources: string;
}

/** The cache folder name for a pair of source versions. */
export function xdpToolsKey(xdpTools: string, libbpf: string, buildVersion: number): string {
  const safe = (v: string) => v.replace(/:/g, '_');
  return `xdp-tools_${safe(xdpTools)}+libbpf_${safe(libbpf)}+b${buildVersion}`;
}

/** The upstream part of a Debian version: 1:1.7.0-1 -> 1.7.0. */
export function upstreamVersion(version: string): string {
  return version.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function onPath(cmd: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir !== '' && (await exists(join(dir, cmd)))) return true;
  }
  return false;
}

/** "apt-get install -y ..." for what the build lacks, or null. */
export async function missingBuildDependencies(): Promise<string | null> {
  const missing = new Set<string>();
  for (const [cmd, pkg] of BUILD_TOOLS) if (!(await onPath(cmd))) missing.add(pkg);
  for (const [file, pkg] of BUILD_LIBRARIES) if (!(await exists(file))) missing.add(pkg);
  return missing.size === 0 ? null : `apt-get install -y ${[...missing].join(' ')}`;
}

async function sha256(data: Uint8Array): Promise<string> {
  return createHash('sha256').update(data).digest('hex');
}

/** Builds (or finds) the static xdp-tools; null with a warning when build tools are missing. */
export async function ensureXdpTools(cacheDir: string, ro: RunOptions): Promise<XdpToolsBuild | null> {
  const key = xdpToolsKey(XDP_TOOLS_VERSION, XDP_TOOLS_LIBBPF_VERSION, XDP_TOOLS_BUILD_VERSION);
  const dir = join(cacheDir, 'xdp-tools', key);
  const sources = `xdp-tools=${XDP_TOOLS_VERSION} libbpf=${XDP_TOOLS_LIBBPF_VERSION}`;
  if (await exists(join(dir, 'build.json'))) return { dir, key, sources };

  const missing = await missingBuildDependencies();
  if (missing !== null) {
    ro.log?.(`warning: cannot build xdp-tools ${XDP_TOOLS_VERSION} from source (${missing}): the guest gets no xdp-bench or xdp-loader`);
    return null;
  }
  const started = Date.now();
  const sourcesDir = join(cacheDir, 'sources');
  const pinnedIn = 'images/xdp-tools.ts (XDP_TOOLS_VERSION, XDP_TOOLS_LIBBPF_VERSION)';
  const libbpfDsc = await ensureSourcePackage(sourcesDir, 'libbpf', XDP_TOOLS_LIBBPF_VERSION, cacheDir, pinnedIn, ro);
  const xdpDsc = await ensureSourcePackage(sourcesDir, 'xdp-tools', XDP_TOOLS_VERSION, cacheDir, pinnedIn, ro);

  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const jobs = String(Math.max(1, availableParallelism()));
  try {
    ro.log?.(`building libbpf ${XDP_TOOLS_LIBBPF_VERSION} (static) from source…`);
    const libbpfSrc = join(tmp, 'libbpf');
    const libbpfRoot = join(tmp, 'libbpf-root');
    await run('dpkg-source', ['--no-copy', '-x', libbpfDsc, libbpfSrc], ro);
    await run(
      'make',
      ['-C', join(libbpfSrc, 'src'), `-j${jobs}`, 'BUILD_STATIC_ONLY=1', `OBJDIR=${join(tmp, 'libbpf-obj')}`, `DESTDIR=${libbpfRoot}`, 'PREFIX=/usr', 'LIBDIR=/usr/lib', 'install', 'install_uapi_headers'],
      ro,
    );

    ro.log?.(`building xdp-tools ${XDP_TOOLS_VERSION} (xdp-bench, xdp-loader; static) from source…`);
    const xdpSrc = join(tmp, 'xdp-tools');
    await run('dpkg-source', ['--no-copy', '-x', xdpDsc, xdpSrc], ro);
    const env: Record<string, string> = {
      // Our libbpf, not the host's libbpf-dev (configure prefers pkg-config's unless LIBBPF_DIR is set).
      LIBBPF_DIR: libbpfSrc,
      LIBBPF_INCLUDE_DIR: join(libbpfRoot, 'usr/include'),
      LIBBPF_LIB_DIR: join(libbpfRoot, 'usr/lib'),
      PREFIX: '/usr',
      PRODUCTION: '1',
      BUILD_STATIC_ONLY: '1',
      // xdp-tools' own defaults, set so that ambient flags cannot leak into either compiler.
      CFLAGS: '-O2 -g',
      BPF_CFLAGS: '-Wall -Wno-unused-value -Wno-pointer-sign -Wno-compare-distinct-pointer-types -Wno-visibility -Werror -fno-stack-protector',
    };
    // configure links its libbpf feature probes against libbpf.a, which needs libelf and zlib
    // after it; the probes must pass or xdp-tools falls back to its compat shims.
    const conf = await run('sh', ['configure'], { ...ro, cwd: xdpSrc, env: { ...env, LDFLAGS: '-lelf -lz' } });
    const probes = conf.stdout.split('\n').filter((l) => / support: no$/.test(l) && !/cap-ng|emacs/.test(l));
    if (!/libbpf support: custom v/.test(conf.stdout)) throw new BuildError(`xdp-tools configure did not take our libbpf:\n${conf.stdout.trim()}`);
    if (probes.some((l) => /^\s/.test(l))) throw new BuildError(`xdp-tools configure found libbpf functions missing:\n${probes.join('\n')}`);
    await run('make', ['-C', 'lib', `-j${jobs}`, 'libxdp', 'util'], { ...ro, cwd: xdpSrc, env });
    for (const p of XDP_TOOLS_PROGRAMS) {
      // LDFLAGS from the environment: the Makefiles add their -L options to it.
      await run('make', ['-C', p.name, `-j${jobs}`], { ...ro, cwd: xdpSrc, env: { ...env, LDFLAGS: '-static' } });
    }

    const out = join(tmp, 'out');
    await mkdir(out);
    const programs: Record<string, string> = {};
    for (const p of XDP_TOOLS_PROGRAMS) {
      const built = join(xdpSrc, p.name, p.name);
      const dest = join(out, p.name);
      await copyFile(built, dest);
      await run('strip', [dest], ro);
      // Static means no program interpreter: it must run in a guest without a libc.
      const headers = await run('readelf', ['-l', '-W', dest], ro);
      if (/Requesting program interpreter/.test(headers.stdout)) throw new BuildError(`${p.name} was linked dynamically`);
      // It runs on the host too: its version line must name both sources' versions.
      // (it exits 1 after printing it).
      const res = await run(dest, [p.command, '--version'], { ...ro, allowFailure: true });
      const version = `${res.stdout}${res.stderr}`.trim();
      const expected = `${p.name} version ${upstreamVersion(XDP_TOOLS_VERSION)} using libbpf version ${upstreamVersion(XDP_TOOLS_LIBBPF_VERSION)}`;
      if (version !== expected) throw new BuildError(`${p.name} ${p.command} --version says "${version}", expected "${expected}"`);
      programs[p.name] = `${version}; sha256 ${await sha256(await readFile(dest))}`;
    }
    const tools = await run('dpkg-query', ['-W', '-f', '${Package}=${Version}\\n', 'clang', 'llvm', 'bpftool', 'gcc', 'libelf-dev', 'zlib1g-dev'], {
      ...ro,
      allowFailure: true,
    });
    const info = {
      sources: { 'xdp-tools': XDP_TOOLS_VERSION, libbpf: XDP_TOOLS_LIBBPF_VERSION },
      buildVersion: XDP_TOOLS_BUILD_VERSION,
      toolchain: tools.stdout.trim().split('\n').sort(),
      programs,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
    if (!(await exists(join(dir, 'build.json')))) {
      await rm(dir, { recursive: true, force: true });
      await rename(out, dir);
    }
    ro.log?.(`built xdp-tools ${XDP_TOOLS_VERSION} with libbpf ${XDP_TOOLS_LIBBPF_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir, key, sources };
}

/**
 * The built programs as guest files, in the shape of the host programs' set (host-binaries.ts)
 * so the image builder handles both alike; `missing` says why they are absent.
 */
export async function xdpToolsFiles(build: XdpToolsBuild | null): Promise<HostBinarySet> {
  if (build === null) {
    const missing = XDP_TOOLS_PROGRAMS.map((p) => `/${p.guestPath} (built from source: install the build tools, see scripts/setup.sh)`);
    return { files: [], programs: [], bpfObjects: [], missing, fingerprint: missing.map((m) => `missing ${m}`) };
  }
  const files: HostFile[] = [];
  for (const p of XDP_TOOLS_PROGRAMS) {
    const hostPath = join(build.dir, p.name);
    files.push({ guestPath: p.guestPath, hostPath, data: await readFile(hostPath) });
  }
  const fingerprint: string[] = [];
  for (const f of files) fingerprint.push(`${f.guestPath} ${build.sources.replace(' ', '+')} ${(await sha256(f.data)).slice(0, 16)}`);
  return { files, programs: files.map((f) => f.guestPath), bpfObjects: [], missing: [], fingerprint: fingerprint.sort() };
}
