// buildImage(): the kernel + initramfs a zcnic run boots, cached by input hash.
//
//   .cache/debs/<pkg>_<ver>_amd64.deb          apt-get download
//   .cache/kernels/<kernelKey>/                vmlinuz, vmlinux (PVH), modules/*.ko, kernel.json
//   .cache/images/<imageKey>/                  vmlinux or vmlinuz, initramfs.img, manifest.json
//
// A warm call only hashes guest/ and asks apt-cache for two candidate versions.
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILDER_VERSION, hashTree, imageKey, kernelKey, sha256File, type KernelSource } from './cache-key.js';
import {
  aptPolicy,
  BUSYBOX_PACKAGE,
  chooseVersion,
  ensureDeb,
  extractDeb,
  KERNEL_PACKAGE,
  KERNEL_VERSION,
  LIBXDP_PACKAGE,
  toolchainFingerprint,
} from './debian.js';
import { buildGuestBinaries, guestBinaryTargets } from './guest-binaries.js';
import { collectHostBinaries, HOST_BINARIES, type HostBinarySet } from './host-binaries.js';
import { assembleInitramfs, compress } from './initramfs.js';
import { PrivateApt, resolveDebianKernel } from './debian-archive.js';
import { buildKernelStage, GUEST_MODULES, isFile, loadKernelStage, type KernelInput, type KernelStage } from './kernel.js';
import { BuildError, type RunOptions } from './run.js';
import { ensureLiburing } from './liburing.js';
import { ensureXdpTools, xdpToolsFiles } from './xdp-tools.js';

export { BuildError } from './run.js';

export interface BuildImageOptions {
  /** Project root (holds guest/ and .cache/). Default: the checkout this module belongs to. */
  root?: string;
  /** Bring your own kernel: a bzImage, together with `modules`. */
  kernel?: string;
  /** Bring your own kernel: a modules tree like lib/modules/<release>. */
  modules?: string;
  /** Rebuild the kernel stage and the image even if cached (downloaded .debs are kept). */
  force?: boolean;
  /** Print every command and its stderr. */
  verbose?: boolean;
  /** Progress lines; default: stderr. */
  log?: (line: string) => void;
}

export interface BuiltImage {
  /** What QEMU's -kernel boots: the kernel ELF through PVH when the kernel has that entry, else the bzImage. */
  kernel: string;
  initramfs: string;
  kernelRelease: string;
  /**
   * The kernel's whole module tree (lib/modules/RELEASE, indexed), for a guest on the host's
   * root file system; null when the stage has none (no depmod on the host).
   */
  moduleTree: string | null;
  cacheKey: string;
  manifest: string;
  /** True when nothing had to be built. */
  cached: boolean;
}

/** An image holds one kernel: `pvhKernel` when the kernel can boot through PVH, else `bzImage`. */
export const IMAGE_FILES = { pvhKernel: 'vmlinux', bzImage: 'vmlinuz', initramfs: 'initramfs.img', manifest: 'manifest.json' } as const;

function defaultRoot(): string {
  // This file runs from dist/images/, two levels below the project root.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The checkout's cache folder (.cache/): images, kernels, packages, the private apt view. */
export function projectCacheDir(): string {
  return join(defaultRoot(), '.cache');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The prefix of `--kernel debian:VERSION`: a Debian kernel resolved on the private apt view. */
export const DEBIAN_KERNEL_PREFIX = 'debian:';

async function kernelInputAndSource(opts: BuildImageOptions, cache: string, ro: RunOptions): Promise<{ input: KernelInput; source: KernelSource; description: string }> {
  if (opts.kernel === undefined && opts.modules === undefined) {
    return {
      input: { kind: 'debian', packages: [{ name: KERNEL_PACKAGE, version: KERNEL_VERSION }], aptArgs: [] },
      source: { kind: 'debian', package: KERNEL_PACKAGE, version: KERNEL_VERSION },
      description: `${KERNEL_PACKAGE}=${KERNEL_VERSION}`,
    };
  }
  if (opts.kernel?.startsWith(DEBIAN_KERNEL_PREFIX)) {
    if (opts.modules !== undefined) throw new BuildError(`--kernel ${opts.kernel} brings its own modules: leave out --modules`);
    const apt = await PrivateApt.open(join(cache, 'apt'), ro);
    const k = await resolveDebianKernel(opts.kernel.slice(DEBIAN_KERNEL_PREFIX.length), apt, ro);
    ro.log?.(`${opts.kernel}: ${k.release} (${k.packages.map((p) => p.name).join(', ')} ${k.version})`);
    return {
      input: { kind: 'debian', packages: k.packages, aptArgs: apt.args },
      // Cached by package version: the same packages give the same stage.
      source: { kind: 'debian', package: k.packages.map((p) => p.name).join(' '), version: k.version },
      description: `${k.packages.map((p) => p.name).join(' ')}=${k.version}`,
    };
  }
  if (opts.kernel === undefined || opts.modules === undefined) {
    throw new BuildError('--kernel and --modules go together (a bzImage and its lib/modules/<release> tree)');
  }
  const kernel = resolve(opts.kernel);
  const modules = resolve(opts.modules);
  if (!(await isFile(kernel))) throw new BuildError(`--kernel ${opts.kernel}: no such file`);
  if (!(await stat(modules).then((s) => s.isDirectory(), () => false))) {
    throw new BuildError(`--modules ${opts.modules}: no such folder`);
  }
  ro.log?.('hashing the kernel and its modules tree…');
  const [kernelSha256, modulesTreeSha256] = await Promise.all([sha256File(kernel), hashTree(modules)]);
  return { input: { kind: 'byo', kernel, modules }, source: { kind: 'byo', kernelSha256, modulesTreeSha256 }, description: 'bring your own' };
}

/** Host programs and programs built from source, as one set for the initramfs. */
function mergeProgramSets(a: HostBinarySet, b: HostBinarySet): HostBinarySet {
  const seen = new Set(a.files.map((f) => f.guestPath));
  return {
    files: [...a.files, ...b.files.filter((f) => !seen.has(f.guestPath))],
    programs: [...a.programs, ...b.programs],
    bpfObjects: [...new Set([...a.bpfObjects, ...b.bpfObjects])].sort(),
    missing: [...a.missing, ...b.missing],
    fingerprint: [...a.fingerprint, ...b.fingerprint],
  };
}

async function placeFile(from: string, to: string): Promise<void> {
  // A hard link shares the 12 MB kernel between images; copy where links are not possible.
  await link(from, to).catch(() => copyFile(from, to));
}

export async function buildImage(opts: BuildImageOptions = {}): Promise<BuiltImage> {
  const started = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const ro: RunOptions = { verbose: opts.verbose ?? false, log };
  const root = resolve(opts.root ?? defaultRoot());
  const guestDir = join(root, 'guest');
  const cache = join(root, '.cache');
  const debsDir = join(cache, 'debs');
  const show = (p: string) => relative(root, p) || '.';
  if (!(await exists(join(guestDir, 'init')))) throw new BuildError(`${show(guestDir)}/init not found: is ${root} the zcnic checkout?`);

  const { input, source, description } = await kernelInputAndSource(opts, cache, ro);
  const kKey = kernelKey({ source, modules: GUEST_MODULES, builderVersion: BUILDER_VERSION });
  const [policy, toolchain, guestHash, hostSet, xdpSet, liburing] = await Promise.all([
    aptPolicy([BUSYBOX_PACKAGE, LIBXDP_PACKAGE], ro),
    toolchainFingerprint(ro),
    hashTree(guestDir),
    collectHostBinaries(HOST_BINARIES, ro),
    // xdp-bench and xdp-loader, static from Debian's sources (xdp-tools.ts): cached, built once.
    ensureXdpTools(cache, ro).then(xdpToolsFiles),
    // liburing for guest/zcrx-recv, static from Debian's source (liburing.ts): cached, built once.
    ensureLiburing(cache, ro),
  ]);
  const sourceBuilt = [...xdpSet.fingerprint, liburing.key];
  for (const m of hostSet.missing) log(`warning: host program left out of the guest: ${m}`);
  for (const m of xdpSet.missing) log(`warning: program left out of the guest: ${m}`);
  const programSet = mergeProgramSets(hostSet, xdpSet);
  const busyboxVersion = await chooseVersion(BUSYBOX_PACKAGE, debsDir, policy);
  const libxdpVersion = await chooseVersion(LIBXDP_PACKAGE, debsDir, policy);
  const key = imageKey({
    kernelKey: kKey,
    busyboxVersion,
    libxdpVersion,
    toolchain,
    guestHash,
    hostBinaries: hostSet.fingerprint.join('\n'),
    sourceBuilt: sourceBuilt.join('\n'),
    builderVersion: BUILDER_VERSION,
  });

  const imageDir = join(cache, 'images', key);
  const stageDir = join(cache, 'kernels', kKey);
  const byoModules = input.kind === 'byo' ? input.modules : null;
  const result = (stage: { release: string; moduleTree?: string }, kernelFile: string, cached: boolean): BuiltImage => ({
    kernel: join(imageDir, kernelFile),
    initramfs: join(imageDir, IMAGE_FILES.initramfs),
    manifest: join(imageDir, IMAGE_FILES.manifest),
    kernelRelease: stage.release,
    moduleTree: byoModules ?? (stage.moduleTree !== undefined ? join(stageDir, stage.moduleTree) : null),
    cacheKey: key,
    cached,
  });

  if (!opts.force) {
    const manifest = await readFile(join(imageDir, IMAGE_FILES.manifest), 'utf8').catch(() => undefined);
    if (manifest !== undefined) {
      const m = JSON.parse(manifest) as { kernelRelease: string; kernelFile: string; moduleTree?: string };
      log(`cached: ${show(imageDir)} (kernel ${m.kernelRelease})`);
      return result({ release: m.kernelRelease, ...(m.moduleTree !== undefined ? { moduleTree: m.moduleTree } : {}) }, m.kernelFile, true);
    }
  }

  // Kernel stage.
  let stage: KernelStage | undefined = opts.force ? undefined : await loadKernelStage(stageDir);
  if (stage) {
    log(`cached: kernel ${stage.release} (${show(stageDir)})`);
  } else {
    log(`preparing kernel (${description})…`);
    await mkdir(dirname(stageDir), { recursive: true });
    stage = await buildKernelStage(input, stageDir, debsDir, ro, opts.force ?? false);
    const builtin = stage.builtin.length ? `; built in: ${stage.builtin.join(' ')}` : '';
    log(`kernel ${stage.release}: modules ${stage.modules.map((m) => m.name).join(' ') || '(none)'}${builtin}`);
    if ('reason' in stage.pvh) log(`booting the bzImage, not through PVH: ${stage.pvh.reason}`);
  }
  const kernelFile = 'vmlinux' in stage.pvh ? IMAGE_FILES.pvhKernel : IMAGE_FILES.bzImage;

  // Initramfs, assembled in a private folder and renamed into place when complete.
  log('building initramfs…');
  const tmp = `${imageDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'bin'), { recursive: true });
  try {
    const [busyboxDeb, libxdpDeb] = await Promise.all([
      ensureDeb(debsDir, BUSYBOX_PACKAGE, busyboxVersion, ro),
      ensureDeb(debsDir, LIBXDP_PACKAGE, libxdpVersion, ro),
    ]);
    const busyboxRoot = join(tmp, 'busybox');
    const libxdpRoot = join(tmp, 'libxdp');
    await Promise.all([extractDeb(busyboxDeb, busyboxRoot, ro), extractDeb(libxdpDeb, libxdpRoot, ro)]);
    const binaries = await buildGuestBinaries(await guestBinaryTargets(guestDir), join(tmp, 'bin'), { LIBURING_DIR: liburing.dir }, ro);

    const info = { cacheKey: key, kernelRelease: stage.release, builderVersion: BUILDER_VERSION };
    const { archive, summary } = await assembleInitramfs(
      { guestDir, kernelStageDir: stageDir, kernel: stage, busyboxRoot, libxdpRoot, binaries, hostBinaries: programSet, info },
      ro,
    );
    const packed = await compress(archive, stage.initrdCompression, ro);

    const out = join(tmp, 'out');
    await mkdir(out);
    await writeFile(join(out, IMAGE_FILES.initramfs), packed);
    await placeFile(join(stageDir, 'vmlinux' in stage.pvh ? stage.pvh.vmlinux : stage.vmlinuz), join(out, kernelFile));
    const manifest = {
      cacheKey: key,
      kernelKey: kKey,
      kernelRelease: stage.release,
      kernelFile,
      ...(stage.moduleTree !== undefined ? { moduleTree: stage.moduleTree } : {}),
      kernelSource: stage.source,
      builderVersion: BUILDER_VERSION,
      busybox: `${BUSYBOX_PACKAGE}=${busyboxVersion}`,
      libxdp: `${LIBXDP_PACKAGE}=${libxdpVersion}`,
      toolchain,
      guestHash,
      hostBinaries: hostSet.fingerprint,
      sourceBuilt,
      initrdCompression: stage.initrdCompression,
      builtinModules: stage.builtin,
      initramfs: { ...summary, cpioBytes: archive.length, compressedBytes: packed.length },
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(out, IMAGE_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
    // Another process may have finished the same image meanwhile (the cache is shared by
    // concurrent runs): keep theirs, which someone may already be booting.
    if (opts.force || !(await exists(join(imageDir, IMAGE_FILES.manifest)))) {
      await rm(imageDir, { recursive: true, force: true });
      await rename(out, imageDir);
    }
    log(
      `built: ${show(imageDir)} (initramfs ${mb(packed.length)} ${stage.initrdCompression}, ` +
        `${summary.binaries.length} binaries, ${summary.suites.length} suite files) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return result(stage, kernelFile, false);
}
