// Static guest programs, built with the host's gcc (the guest has no libc of its own:
// everything static, so one x86-64 binary runs next to busybox in the initramfs).
// Each lands in the initramfs as /usr/bin/<name>.
//
// Two sources of binaries:
//   guest/tools/<name>.c     one self-contained program each, compiled here;
//   guest/<name>/build.sh    the hook for programs with several sources or libraries
//                            (AF_XDP tools linking libxdp/libbpf, zcrx-recv linking
//                            liburing): run as `sh build.sh OUTPUT` from its folder, with
//                            the libraries the image builds from source in its environment
//                            (LIBURING_DIR: images/liburing.ts); it must write one static
//                            executable to OUTPUT.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';

/** Name of the per-folder build script that adds a binary to the image. */
export const BUILD_HOOK = 'build.sh';

export type BinaryTarget =
  | { kind: 'tool'; name: string; dir: string; source: string }
  | { kind: 'hook'; name: string; dir: string; script: string };

const TOOL_CFLAGS = ['-static', '-O2', '-Wall', '-Wextra'];

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

export async function guestBinaryTargets(guestDir: string): Promise<BinaryTarget[]> {
  const targets: BinaryTarget[] = [];
  const toolsDir = join(guestDir, 'tools');
  const tools = (await readdir(toolsDir).catch(() => [] as string[])).filter((n) => n.endsWith('.c')).sort();
  for (const source of tools) targets.push({ kind: 'tool', name: source.slice(0, -2), dir: toolsDir, source });

  const dirs = (await readdir(guestDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  for (const name of dirs) {
    const dir = join(guestDir, name);
    if (await isFile(join(dir, BUILD_HOOK))) targets.push({ kind: 'hook', name, dir, script: BUILD_HOOK });
  }

  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.name)) throw new BuildError(`two guest binaries are named ${t.name} (guest/tools/${t.name}.c and guest/${t.name}/)`);
    seen.add(t.name);
  }
  return targets;
}

/** Build each target into outDir/<name>, hooks with `hookEnv` added to their environment; returns name -> path. */
export async function buildGuestBinaries(targets: readonly BinaryTarget[], outDir: string, hookEnv: Record<string, string>, ro: RunOptions): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const t of targets) {
    const dest = join(outDir, t.name);
    ro.log?.(`compiling ${t.name}…`);
    try {
      if (t.kind === 'tool') {
        await run('gcc', [...TOOL_CFLAGS, '-o', dest, t.source], { ...ro, cwd: t.dir });
      } else {
        await run('sh', [t.script, dest], { ...ro, cwd: t.dir, env: { ...ro.env, ...hookEnv } });
      }
    } catch (err) {
      const hint =
        t.kind === 'hook'
          ? 'static libraries it may need: apt-get install -y libc6-dev libxdp-dev libbpf-dev libelf-dev zlib1g-dev'
          : 'apt-get install -y gcc libc6-dev';
      throw new BuildError(`building guest binary ${t.name} failed (${hint}):\n${(err as Error).message}`);
    }
    if (!(await isFile(dest))) throw new BuildError(`guest/${t.name}/${BUILD_HOOK} did not write its OUTPUT file`);
    out.set(t.name, dest);
  }
  return out;
}
