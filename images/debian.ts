// Debian packages the image is made of: fetched with `apt-get download` (no install,
// no root needed) into .cache/debs/, unpacked with `dpkg-deb -x`.
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';

/**
 * The guest kernel, pinned so that images are reproducible; part of the kernel cache key.
 * To move to another patch level pick one from `apt-cache madison` (skip -rt- and -cloud-).
 * 6.12 is the newest kernel Debian 12 packages (XSK generic zerocopy xmit, tun build_skb,
 * cpumap, MSG_ZEROCOPY; no io_uring zcrx, which needs 6.15).
 */
export const KERNEL_PACKAGE = 'linux-image-6.12.117+deb12-amd64-unsigned';
export const KERNEL_VERSION = '6.12.117-1~deb12u1';

export const BUSYBOX_PACKAGE = 'busybox-static';
/** Ships xsk_def_xdp_prog.o and xdp-dispatcher.o, which libxdp loads at run time. */
export const LIBXDP_PACKAGE = 'libxdp1';

/** Host packages whose bits end up statically linked into guest binaries. */
const TOOLCHAIN_PACKAGES = ['gcc', 'libc6-dev', 'libxdp-dev', 'libbpf-dev', 'libelf-dev', 'zlib1g-dev'];

const ARCH = 'amd64';

/** apt's own file name for a downloaded package (an epoch colon becomes %3a). */
export function debFileName(pkg: string, version: string): string {
  return `${pkg}_${version.replace(/:/g, '%3a')}_${ARCH}.deb`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Parse `apt-cache policy A B ...` into package -> candidate version (absent: none). */
export function parsePolicy(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = head[1]?.replace(/:amd64$/, '');
      continue;
    }
    const cand = /^\s+Candidate:\s+(\S+)/.exec(line);
    if (cand && current !== undefined && cand[1] !== '(none)') out.set(current, cand[1] ?? '');
  }
  return out;
}

/**
 * The version of `pkg` to use: apt's candidate, or, when apt knows nothing (no
 * `apt-get update` yet), the newest copy already in the cache.
 */
export async function chooseVersion(pkg: string, debsDir: string, policy: Map<string, string>): Promise<string> {
  const cand = policy.get(pkg);
  if (cand !== undefined) return cand;
  const prefix = `${pkg}_`;
  const cached = (await readdir(debsDir).catch(() => [] as string[]))
    .filter((n) => n.startsWith(prefix) && n.endsWith(`_${ARCH}.deb`))
    .sort();
  const last = cached.at(-1);
  if (last !== undefined) return last.slice(prefix.length, -`_${ARCH}.deb`.length).replace(/%3a/g, ':');
  throw new BuildError(`apt has no candidate version of ${pkg}: run apt-get update (and check the sources list)`);
}

export async function aptPolicy(pkgs: readonly string[], ro: RunOptions): Promise<Map<string, string>> {
  const res = await run('apt-cache', ['policy', ...pkgs], { ...ro, allowFailure: true });
  return parsePolicy(res.stdout);
}

/** The 6.12 generic kernels apt serves now, as "package=version" lines, for error messages. */
async function servedKernels(ro: RunOptions): Promise<string[]> {
  const search = await run(
    'apt-cache',
    ['search', '--names-only', '^linux-image-6\\.12\\.[0-9]+\\+deb12-amd64-unsigned$'],
    { ...ro, allowFailure: true },
  );
  const names = search.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n !== '');
  if (names.length === 0) return [];
  const madison = await run('apt-cache', ['madison', ...names], { ...ro, allowFailure: true });
  return madison.stdout
    .split('\n')
    .map((l) => l.split('|').map((f) => f.trim()))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map((f) => `${f[0]}=${f[1]}`)
    .sort();
}

async function servedVersions(pkg: string, aptArgs: readonly string[], ro: RunOptions): Promise<string[]> {
  const res = await run('apt-cache', [...aptArgs, 'madison', pkg], { ...ro, allowFailure: true });
  return res.stdout
    .split('\n')
    .map((l) => l.split('|')[1]?.trim() ?? '')
    .filter((v) => v !== '');
}

async function downloadSize(pkg: string, version: string, aptArgs: readonly string[], ro: RunOptions): Promise<string> {
  const res = await run('apt-cache', [...aptArgs, 'show', `${pkg}=${version}`], { ...ro, allowFailure: true });
  const m = /^Size:\s*(\d+)/m.exec(res.stdout);
  if (!m?.[1]) return 'size unknown';
  const bytes = Number(m[1]);
  return bytes >= 1e6 ? `${Math.round(bytes / 1e6)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

/**
 * Path of pkg=version in the deb cache, downloading it first if needed. `aptArgs` select an apt
 * view other than the system's (images/debian-archive.ts).
 */
export async function ensureDeb(debsDir: string, pkg: string, version: string, ro: RunOptions, aptArgs: readonly string[] = []): Promise<string> {
  const final = join(debsDir, debFileName(pkg, version));
  if (await exists(final)) return final;

  const served = await servedVersions(pkg, aptArgs, ro);
  if (!served.includes(version)) {
    let msg = `${pkg}=${version} is not served by apt (served: ${served.join(', ') || 'none'}).`;
    if (pkg === KERNEL_PACKAGE) {
      const kernels = await servedKernels(ro);
      msg +=
        kernels.length > 0
          ? `\nKernels apt serves now:\n  ${kernels.join('\n  ')}\nPin one of them in images/debian.ts (KERNEL_PACKAGE, KERNEL_VERSION).`
          : '\napt serves no 6.12 kernel at all: run apt-get update.';
    } else {
      msg += ' Run apt-get update.';
    }
    throw new BuildError(msg);
  }

  ro.log?.(`fetching ${pkg} ${version}… (${await downloadSize(pkg, version, aptArgs, ro)})`);
  await mkdir(debsDir, { recursive: true });
  // Download into a private folder so that a concurrent build never sees half a file.
  const tmp = join(debsDir, `.download-${process.pid}-${Date.now()}`);
  await mkdir(tmp);
  try {
    await run('apt-get', [...aptArgs, 'download', '-q', `${pkg}=${version}`], { ...ro, cwd: tmp });
    const got = (await readdir(tmp)).filter((n) => n.endsWith('.deb'));
    if (got.length !== 1 || got[0] === undefined) {
      throw new BuildError(`apt-get download ${pkg}=${version} left ${got.length} .deb files`);
    }
    await rename(join(tmp, got[0]), final);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return final;
}

export async function extractDeb(deb: string, dest: string, ro: RunOptions): Promise<void> {
  await mkdir(dest, { recursive: true });
  await run('dpkg-deb', ['-x', deb, dest], ro);
}

/** "pkg=version" of each installed toolchain package, for the image key. */
export async function toolchainFingerprint(ro: RunOptions): Promise<string> {
  const res = await run('dpkg-query', ['-W', '-f', '${Package}=${Version}\\n', ...TOOLCHAIN_PACKAGES], {
    ...ro,
    allowFailure: true,
  });
  return res.stdout
    .split('\n')
    .filter((l) => l !== '')
    .sort()
    .join(' ');
}
