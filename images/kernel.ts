// Kernel stage: a vmlinuz plus the decompressed modules the guest loads, in load order.
// Built once per kernel key into .cache/kernels/<key>/ and reused by every initramfs.
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pvhKernel } from './bzimage.js';
import type { DebianPackage } from './debian-archive.js';
import { ensureDeb, extractDeb } from './debian.js';
import { normalizeModName, parseBuiltin, parseModInfo, resolveLoadOrder } from './modinfo.js';
import { BuildError, run, type RunOptions } from './run.js';

/**
 * Modules the guest needs (dependencies such as failover/net_failover are added from
 * each module's metadata). Built-in ones are skipped: Debian builds virtio_pci and
 * virtio_console in, virtio_net and tun are modules. bridge (with its dependencies stp and
 * llc) is for the tap-xdp suite's path without XDP: a tap bridged to the NIC. 9p, 9pnet_virtio
 * and overlay mount the host's root file system as the guest's user space (zcnic.rootfs=host:
 * harness/host-root.ts). A boot loads virtio_net; the rest when a suite names them (guest/init).
 */
export const GUEST_MODULES: readonly string[] = ['virtio_pci', 'virtio_net', 'tun', 'virtio_console', 'bridge', '9p', '9pnet_virtio', 'overlay'];

export type InitrdCompression = 'zstd' | 'gzip';

/** Debian's packages of one kernel (downloaded through `aptArgs`' view), or your own build. */
export type KernelInput =
  | { kind: 'debian'; packages: readonly DebianPackage[]; aptArgs: readonly string[] }
  | { kind: 'byo'; kernel: string; modules: string };

export interface KernelStage {
  release: string;
  vmlinuz: string;
  /** The kernel ELF QEMU boots through PVH (images/bzimage.ts), or why the bzImage is booted. */
  pvh: { vmlinux: string } | { reason: string };
  /** Module files in the stage folder, in the order insmod must load them. */
  modules: { name: string; file: string }[];
  /** Requested modules the kernel has built in. */
  builtin: string[];
  initrdCompression: InitrdCompression;
  source: string;
  /**
   * The kernel's whole module tree with its depmod index (MODULE_TREE/lib/modules/RELEASE in the
   * stage), for a guest on the host's root file system, whose modprobe loads any module a test
   * wants; absent for your own kernel (its --modules folder is the tree).
   */
  moduleTree?: string;
}

const STAGE_FILE = 'kernel.json';
/** The kernel ELF taken out of the bzImage, when it can boot through PVH. */
const PVH_KERNEL_FILE = 'vmlinux';
/** The stage's folder that holds lib/modules/RELEASE (a root for depmod -b). */
const MODULE_TREE = 'module-root';
const MODULE_FILE = /\.ko(\.xz|\.zst|\.gz)?$/;

export async function loadKernelStage(dir: string): Promise<KernelStage | undefined> {
  try {
    const text = await readFile(join(dir, STAGE_FILE), 'utf8');
    return JSON.parse(text) as KernelStage;
  } catch {
    return undefined;
  }
}

async function walkModules(root: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile() || !MODULE_FILE.test(e.name)) continue;
    const name = normalizeModName(e.name.replace(MODULE_FILE, ''));
    // `parentPath` is Node >= 20.12; `path` is the older spelling of the same thing.
    const dir = (e as { parentPath?: string }).parentPath ?? (e as { path?: string }).path ?? root;
    if (!index.has(name)) index.set(name, join(dir, e.name));
  }
  return index;
}

async function decompress(file: string, ro: RunOptions): Promise<Uint8Array> {
  if (file.endsWith('.ko')) return readFile(file);
  if (file.endsWith('.gz')) return gunzipSync(await readFile(file));
  const tool = file.endsWith('.xz') ? 'xz' : 'zstd';
  return (await run(tool, ['-dc', file], { ...ro, binary: true })).stdoutBuffer;
}

/** Which initramfs compressions the kernel can unpack, from its build config. */
export function chooseCompression(config: string | undefined): InitrdCompression {
  // gzip is the safe default: every config that supports an initramfs has RD_GZIP.
  return config !== undefined && /^CONFIG_RD_ZSTD=y$/m.test(config) ? 'zstd' : 'gzip';
}

async function only(dir: string, what: string, pred: (n: string) => boolean): Promise<string> {
  const hits = (await readdir(dir).catch(() => [] as string[])).filter(pred);
  if (hits.length !== 1 || hits[0] === undefined) {
    throw new BuildError(`expected one ${what} in ${dir}, found ${hits.length ? hits.join(', ') : 'none'}`);
  }
  return join(dir, hits[0]);
}

async function readOptional(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => undefined);
}

interface KernelTree {
  vmlinuz: string;
  modulesRoot: string;
  config: string | undefined;
  source: string;
}

/**
 * The packages unpacked into one tree. Up to 6.x: boot/vmlinuz-REL, boot/config-REL and
 * lib/modules/REL. From 7.x (merged /usr): usr/lib/modules/REL/{vmlinuz,config,kernel/...}.
 */
async function debianTree(input: Extract<KernelInput, { kind: 'debian' }>, debsDir: string, scratch: string, ro: RunOptions): Promise<KernelTree> {
  for (const p of input.packages) {
    const deb = await ensureDeb(debsDir, p.name, p.version, ro, input.aptArgs);
    ro.log?.(`unpacking ${p.name}…`);
    await extractDeb(deb, scratch, ro);
  }
  const usrModules = join(scratch, 'usr', 'lib', 'modules');
  const modulesParent = (await readdir(usrModules).catch(() => [] as string[])).length > 0 ? usrModules : join(scratch, 'lib', 'modules');
  const modulesRoot = await only(modulesParent, 'module tree', () => true);
  const boot = join(scratch, 'boot');
  const bootVmlinuz = await only(boot, 'vmlinuz', (n) => n.startsWith('vmlinuz-')).catch(() => undefined);
  const vmlinuz = bootVmlinuz ?? (await only(modulesRoot, 'vmlinuz', (n) => n === 'vmlinuz' || n === 'vmlinuz.unsigned'));
  const configPath = (await only(boot, 'kernel config', (n) => n.startsWith('config-')).catch(() => undefined)) ?? join(modulesRoot, 'config');
  return {
    vmlinuz,
    modulesRoot,
    config: await readOptional(configPath),
    source: `debian ${input.packages.map((p) => `${p.name}=${p.version}`).join(' ')}`,
  };
}

async function byoTree(kernel: string, modules: string): Promise<KernelTree> {
  // `make modules_install` leaves `build` pointing at the source tree, whose .config says
  // which initramfs compressions are built in; without a config we fall back to gzip.
  // An unpacked distribution kernel has it at <root>/boot/config-<release> instead.
  const config =
    (await readOptional(join(modules, 'build', '.config'))) ??
    (await readOptional(join(modules, '..', '..', '..', 'boot', `config-${basename(modules)}`)));
  // Only base names: the stage metadata must not record where this machine keeps things.
  return { vmlinuz: kernel, modulesRoot: modules, config, source: `byo ${basename(kernel)} + modules ${basename(modules)}` };
}

/** Build the kernel stage into `stageDir` (atomically: a half-built stage is never visible). */
export async function buildKernelStage(
  input: KernelInput,
  stageDir: string,
  debsDir: string,
  ro: RunOptions,
  /** --force: replace an existing stage instead of deferring to it. */
  replace = false,
): Promise<KernelStage> {
  const tmp = `${stageDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const scratch = join(tmp, 'extract');
  const out = join(tmp, 'stage');
  await mkdir(join(out, 'modules'), { recursive: true });
  try {
    const tree = input.kind === 'debian' ? await debianTree(input, debsDir, scratch, ro) : await byoTree(input.kernel, input.modules);
    const builtinText = await readOptional(join(tree.modulesRoot, 'modules.builtin'));
    const builtin = parseBuiltin(builtinText ?? '');
    const index = await walkModules(tree.modulesRoot);
    const bytes = new Map<string, Uint8Array>();
    const assumedBuiltin: string[] = [];

    const depsOf = async (name: string): Promise<readonly string[]> => {
      const file = index.get(name);
      if (file === undefined) {
        if (builtinText === undefined) {
          // No modules.builtin (a hand-made tree): trust that the kernel has it built in.
          assumedBuiltin.push(name);
          return [];
        }
        throw new BuildError(`module ${name} is neither built into the kernel (modules.builtin) nor present under ${tree.modulesRoot}`);
      }
      const data = await decompress(file, ro);
      bytes.set(name, data);
      return parseModInfo(data).depends;
    };
    const order = (await resolveLoadOrder(GUEST_MODULES, (n) => builtin.has(n), depsOf)).filter((n) => bytes.has(n));

    // The release string is what `uname -r` prints in the guest; the modules' vermagic is
    // authoritative, the folder name (lib/modules/<release>) the fallback.
    let release = basename(tree.modulesRoot);
    const first = order[0];
    const firstBytes = first !== undefined ? bytes.get(first) : undefined;
    if (firstBytes) {
      const vermagic = parseModInfo(firstBytes).vermagic?.split(' ')[0];
      if (vermagic) release = vermagic;
    }

    const modules: { name: string; file: string }[] = [];
    for (const name of order) {
      const data = bytes.get(name);
      if (!data) continue;
      const vm = parseModInfo(data).vermagic?.split(' ')[0];
      if (vm !== undefined && vm !== release) {
        throw new BuildError(`module ${name} was built for ${vm}, not ${release}: the modules do not match the kernel`);
      }
      const file = `modules/${name}.ko`;
      await writeFile(join(out, file), data);
      modules.push({ name, file });
    }
    await copyFile(tree.vmlinuz, join(out, 'vmlinuz'));
    const pvh = await pvhKernel(await readFile(tree.vmlinuz), ro);
    if ('elf' in pvh) await writeFile(join(out, PVH_KERNEL_FILE), pvh.elf);
    const moduleTree = input.kind === 'debian' ? await keepModuleTree(tree.modulesRoot, out, release, ro) : undefined;

    const stage: KernelStage = {
      release,
      vmlinuz: 'vmlinuz',
      pvh: 'elf' in pvh ? { vmlinux: PVH_KERNEL_FILE } : pvh,
      modules,
      builtin: [...GUEST_MODULES.map(normalizeModName).filter((n) => builtin.has(n)), ...assumedBuiltin],
      initrdCompression: chooseCompression(tree.config),
      source: tree.source,
      ...(moduleTree !== undefined ? { moduleTree } : {}),
    };
    await writeFile(join(out, STAGE_FILE), `${JSON.stringify(stage, null, 2)}\n`);
    await rm(scratch, { recursive: true, force: true });
    // A concurrent build of the same kernel may have won the race; its stage is as good.
    const theirs = replace ? undefined : await loadKernelStage(stageDir);
    if (theirs) return theirs;
    await rm(stageDir, { recursive: true, force: true });
    await rename(out, stageDir);
    return stage;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Moves the unpacked module tree into the stage (a rename: same file system) and indexes it
 * with the host's depmod, which Debian's packages leave to their postinst. Without kmod on the
 * host the tree is left out, and a guest on the host's root has only the modules it booted with.
 */
async function keepModuleTree(modulesRoot: string, out: string, release: string, ro: RunOptions): Promise<string | undefined> {
  const depmod = ['/usr/sbin/depmod', '/sbin/depmod'];
  const tool = (await Promise.all(depmod.map((p) => isFile(p)))).findIndex((found) => found);
  if (tool < 0) {
    ro.log?.('warning: no depmod on this host (Debian package kmod): the module tree is not kept');
    return undefined;
  }
  const relative = join(MODULE_TREE, 'lib', 'modules', release);
  await mkdir(dirname(join(out, relative)), { recursive: true });
  await rename(modulesRoot, join(out, relative));
  await run(depmod[tool]!, ['-b', join(out, MODULE_TREE), release], ro);
  return relative;
}

export async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}
