// liburing built static from Debian's source package, for the guest programs that link it
// (guest/zcrx-recv: io_uring zcrx receive).
//
// Why not the host's: bookworm's liburing-dev is 2.3, which predates zcrx altogether (no
// io_uring_register_ifq, no struct io_uring_zcrx_*, no IORING_OP_RECV_ZC). sid's 2.15 has the
// zcrx helpers and the 7.x UAPI they need: ZCRX_REG_NODEV, ZCRX_CTRL_FLUSH_RQ and
// io_uring_register_zcrx_ctrl.
//
// What is built, pinned like xdp-tools (xdp-tools.ts) so that images are reproducible:
// src/liburing.a (configure, then `make -C src liburing.a`: the static library only) and the
// headers of src/include (configure writes compat.h and io_uring_version.h there), laid out as
//   .cache/liburing/<key>/{include/,lib/liburing.a,build.json}
// Guest build hooks get the folder as LIBURING_DIR (guest-binaries.ts). Build tools: gcc, make
// and dpkg-source, which the other guest programs need anyway.
import { cp, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ensureSourcePackage } from './debian-archive.js';
import { BuildError, run, type RunOptions } from './run.js';

/** The source package version (sid's when this was written). */
export const LIBURING_VERSION = '2.15-1';
/** Bump when the build recipe changes for the same source. */
export const LIBURING_BUILD_VERSION = 1;

export interface LiburingBuild {
  /** .cache/liburing/<key>/: include/ and lib/liburing.a */
  dir: string;
  key: string;
}

/** The cache folder name for a source version. */
export function liburingKey(version: string, buildVersion: number): string {
  return `liburing_${version.replace(/:/g, '_')}+b${buildVersion}`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Builds (or finds) the static liburing. */
export async function ensureLiburing(cacheDir: string, ro: RunOptions): Promise<LiburingBuild> {
  const key = liburingKey(LIBURING_VERSION, LIBURING_BUILD_VERSION);
  const dir = join(cacheDir, 'liburing', key);
  if (await exists(join(dir, 'build.json'))) return { dir, key };

  const started = Date.now();
  const dsc = await ensureSourcePackage(join(cacheDir, 'sources'), 'liburing', LIBURING_VERSION, cacheDir, 'images/liburing.ts (LIBURING_VERSION)', ro);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    ro.log?.(`building liburing ${LIBURING_VERSION} (static) from source…`);
    const src = join(tmp, 'src');
    await run('dpkg-source', ['--no-copy', '-x', dsc, src], ro);
    // liburing's own configure: it writes the headers that depend on the version and the libc.
    await run('sh', ['configure', '--prefix=/usr'], { ...ro, cwd: src, env: { CFLAGS: '-O2 -g' } });
    await run('make', ['-C', 'src', `-j${Math.max(1, availableParallelism())}`, 'liburing.a'], { ...ro, cwd: src });
    const out = join(tmp, 'out');
    await mkdir(join(out, 'lib'), { recursive: true });
    await cp(join(src, 'src', 'liburing.a'), join(out, 'lib', 'liburing.a'));
    await cp(join(src, 'src', 'include'), join(out, 'include'), { recursive: true });
    if (!(await exists(join(out, 'include', 'liburing', 'io_uring_version.h')))) throw new BuildError(`liburing ${LIBURING_VERSION}: configure wrote no io_uring_version.h`);
    const info = { source: { liburing: LIBURING_VERSION }, buildVersion: LIBURING_BUILD_VERSION, builtAt: new Date().toISOString() };
    await writeFile(join(out, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
    if (!(await exists(join(dir, 'build.json')))) {
      await rm(dir, { recursive: true, force: true });
      await rename(out, dir);
    }
    ro.log?.(`built liburing ${LIBURING_VERSION} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { dir, key };
}
