// The guest's root file system: busybox, guest/init as /init, the kernel stage's modules,
// libxdp's BPF objects, the suites and the static guest binaries, as a compressed newc cpio.
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CpioArchive } from './cpio.js';
import type { HostBinarySet } from './host-binaries.js';
import type { InitrdCompression, KernelStage } from './kernel.js';
import { modulesDep, parseModInfo } from './modinfo.js';
import { BuildError, run, type RunOptions } from './run.js';

/** Where libxdp looks for its BPF objects by default (its compiled-in BPF_OBJECT_PATH). */
export const BPF_OBJECT_DIR = 'usr/lib/x86_64-linux-gnu/bpf';
/** The objects AF_XDP sockets need: the default XSK redirect program and the multi-prog dispatcher. */
export const BPF_OBJECTS: readonly string[] = ['xsk_def_xdp_prog.o', 'xsk_def_xdp_prog_5.3.o', 'xdp-dispatcher.o'];
/** Guest paths the init and the suites rely on. */
export const GUEST_SUITES_DIR = 'usr/share/zcnic/suites';
export const GUEST_BIN_DIR = 'usr/bin';
/** The modules' dependencies, for busybox modprobe (guest/init loads what a suite names). */
export const MODULE_DEPENDENCIES = 'modules.dep';

export interface InitramfsInputs {
  guestDir: string;
  kernelStageDir: string;
  kernel: KernelStage;
  /** Root of the unpacked busybox-static package. */
  busyboxRoot: string;
  /** Root of the unpacked libxdp1 package. */
  libxdpRoot: string;
  binaries: ReadonlyMap<string, string>;
  /** Dynamically linked host programs with their libraries (host-binaries.ts). */
  hostBinaries?: HostBinarySet;
  /** Written to /etc/zcnic/image.json so a guest (and a human in the shell) can tell which image it is. */
  info: Record<string, unknown>;
}

export interface InitramfsSummary {
  applets: number;
  modules: string[];
  suites: string[];
  binaries: string[];
  /** Host programs (guest paths) and the shared objects copied for them. */
  hostPrograms: string[];
  hostLibraries: string[];
  bpfObjects: readonly string[];
  entries: number;
}

async function addTree(cpio: CpioArchive, hostDir: string, guestDir: string): Promise<string[]> {
  const added: string[] = [];
  const entries = await readdir(hostDir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => join((e as { parentPath?: string }).parentPath ?? (e as { path?: string }).path ?? hostDir, e.name))
    .sort();
  for (const f of files) {
    const rel = relative(hostDir, f);
    // Scripts keep their executable bit; everything else is plain data.
    const data = await readFile(f);
    const exec = data[0] === 0x23 && data[1] === 0x21; // "#!"
    cpio.addFile(`${guestDir}/${rel}`, data, exec ? 0o755 : 0o644);
    added.push(rel);
  }
  return added;
}

async function busyboxApplets(busybox: string, ro: RunOptions): Promise<string[]> {
  // Ask the packaged binary itself (static, runs on the host) where each applet lives.
  const res = await run(busybox, ['--list-full'], ro);
  return res.stdout
    .split('\n')
    .map((l) => l.trim().replace(/^\/+/, ''))
    .filter((l) => l !== '');
}

export async function assembleInitramfs(inp: InitramfsInputs, ro: RunOptions): Promise<{ archive: Uint8Array; summary: InitramfsSummary }> {
  const cpio = new CpioArchive();
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'run', 'root', 'etc', 'mnt']) cpio.addDir(d);
  cpio.addDir('tmp', 0o1777);
  // The kernel opens /dev/console for /init before anything is mounted.
  cpio.addCharDevice('dev/console', 5, 1, 0o600);
  cpio.addCharDevice('dev/null', 1, 3, 0o666);

  const init = await readFile(join(inp.guestDir, 'init')).catch(() => {
    throw new BuildError(`missing ${join(inp.guestDir, 'init')}`);
  });
  cpio.addFile('init', init, 0o755);

  // Our binaries first: a busybox applet of the same name must not shadow them.
  for (const [name, path] of [...inp.binaries].sort(([a], [b]) => a.localeCompare(b))) {
    cpio.addFile(`${GUEST_BIN_DIR}/${name}`, await readFile(path), 0o755);
  }

  const busybox = join(inp.busyboxRoot, 'bin', 'busybox');
  cpio.addFile('bin/busybox', await readFile(busybox), 0o755);
  let applets = 0;
  for (const link of await busyboxApplets(busybox, ro)) {
    if (cpio.has(link)) continue;
    cpio.addSymlink(link, '/bin/busybox');
    applets++;
  }

  const modDir = `lib/modules/${inp.kernel.release}`;
  cpio.addDir(modDir);
  const depends: Array<{ name: string; depends: string[] }> = [];
  for (const m of inp.kernel.modules) {
    const data = await readFile(join(inp.kernelStageDir, m.file));
    cpio.addFile(`${modDir}/${m.name}.ko`, data);
    depends.push({ name: m.name, depends: parseModInfo(data).depends });
  }
  cpio.addFile(`${modDir}/${MODULE_DEPENDENCIES}`, modulesDep(depends));

  // Host programs at their host paths, libraries and ELF interpreter included (/lib and /lib64
  // are real folders here, not the host's merged-/usr symlinks).
  const hostFiles = inp.hostBinaries?.files ?? [];
  for (const f of hostFiles) {
    if (cpio.has(f.guestPath)) continue;
    cpio.addFile(f.guestPath, f.data, 0o755);
  }
  const bpfObjects = [...new Set([...BPF_OBJECTS, ...(inp.hostBinaries?.bpfObjects ?? [])])];
  for (const obj of bpfObjects) {
    const data = await readFile(join(inp.libxdpRoot, BPF_OBJECT_DIR, obj)).catch(() => {
      throw new BuildError(`libxdp1 does not contain ${BPF_OBJECT_DIR}/${obj}; the package layout changed`);
    });
    cpio.addFile(`${BPF_OBJECT_DIR}/${obj}`, data);
  }

  const suites = await addTree(cpio, join(inp.guestDir, 'suites'), GUEST_SUITES_DIR);
  cpio.addFile('etc/zcnic/image.json', `${JSON.stringify(inp.info, null, 2)}\n`);

  const summary: InitramfsSummary = {
    applets,
    modules: inp.kernel.modules.map((m) => m.name),
    suites,
    binaries: [...inp.binaries.keys()].sort(),
    hostPrograms: inp.hostBinaries?.programs ?? [],
    hostLibraries: hostFiles.map((f) => f.guestPath).filter((p) => !(inp.hostBinaries?.programs ?? []).includes(p)),
    bpfObjects,
    entries: cpio.size,
  };
  return { archive: cpio.toBytes(), summary };
}

export async function compress(archive: Uint8Array, how: InitrdCompression, ro: RunOptions): Promise<Uint8Array> {
  if (how === 'gzip') return gzipSync(archive, { level: 9 });
  // Single-threaded on purpose: the same input then always gives the same bytes.
  const res = await run('zstd', ['-q', '-19', '--single-thread', '-c'], { ...ro, input: archive, binary: true });
  return res.stdoutBuffer;
}
