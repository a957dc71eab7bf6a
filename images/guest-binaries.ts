// Static guest programs, compiled with the host's gcc (the guest has no libc of its own:
// everything static, so one x86-64 binary runs next to busybox in the initramfs).
//
// Two sources of targets:
//   guest/tools/<name>.c          one self-contained program each, no extra libraries;
//   guest/<dir>/build.json        the hook for programs with several sources or libraries
//                                 (AF_XDP tools linking libxdp/libbpf), see BinaryManifest.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';

/** Name of the per-folder manifest that adds binaries to the image. */
export const BINARY_MANIFEST = 'build.json';

/**
 * guest/<dir>/build.json, e.g.
 *   { "binaries": [ { "name": "xdpsock", "sources": ["xdpsock.c"],
 *                     "cflags": ["-Wno-unused-parameter"], "ldlibs": ["-lxdp", "-lbpf", "-lelf", "-lz"] } ] }
 * Sources are relative to that folder, which is also gcc's working directory.
 */
export interface BinaryManifest {
  binaries: { name: string; sources: string[]; cflags?: string[]; ldlibs?: string[] }[];
}

export interface BinaryTarget {
  name: string;
  dir: string;
  sources: string[];
  cflags: string[];
  ldlibs: string[];
}

const BASE_CFLAGS = ['-static', '-O2', '-Wall', '-Wextra', '-D_GNU_SOURCE'];

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}

export function parseManifest(text: string, where: string): BinaryManifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BuildError(`${where}: not JSON (${(err as Error).message})`);
  }
  const bins = (data as { binaries?: unknown } | null)?.binaries;
  if (!Array.isArray(bins)) throw new BuildError(`${where}: expected {"binaries": [...]}`);
  for (const b of bins as unknown[]) {
    const o = b as Record<string, unknown>;
    const ok =
      typeof o?.name === 'string' &&
      /^[A-Za-z0-9_.-]+$/.test(o.name) &&
      isStringArray(o.sources) &&
      o.sources.length > 0 &&
      (o.cflags === undefined || isStringArray(o.cflags)) &&
      (o.ldlibs === undefined || isStringArray(o.ldlibs));
    if (!ok) throw new BuildError(`${where}: each binary needs "name" and "sources" (strings), optional "cflags"/"ldlibs"`);
  }
  return data as BinaryManifest;
}

export async function guestBinaryTargets(guestDir: string): Promise<BinaryTarget[]> {
  const targets: BinaryTarget[] = [];
  const toolsDir = join(guestDir, 'tools');
  const tools = (await readdir(toolsDir).catch(() => [] as string[])).filter((n) => n.endsWith('.c')).sort();
  for (const src of tools) targets.push({ name: src.slice(0, -2), dir: toolsDir, sources: [src], cflags: [], ldlibs: [] });

  const dirs = (await readdir(guestDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  for (const d of dirs) {
    const dir = join(guestDir, d);
    const text = await readFile(join(dir, BINARY_MANIFEST), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    for (const b of parseManifest(text, `guest/${d}/${BINARY_MANIFEST}`).binaries) {
      targets.push({ name: b.name, dir, sources: b.sources, cflags: b.cflags ?? [], ldlibs: b.ldlibs ?? [] });
    }
  }
  const seen = new Set<string>();
  for (const t of targets) {
    if (seen.has(t.name)) throw new BuildError(`two guest binaries are named ${t.name}`);
    seen.add(t.name);
  }
  return targets;
}

/** Compile each target into outDir/<name>; returns name -> path. */
export async function buildGuestBinaries(targets: readonly BinaryTarget[], outDir: string, ro: RunOptions): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const t of targets) {
    const dest = join(outDir, t.name);
    ro.log?.(`compiling ${t.name}…`);
    try {
      await run('gcc', [...BASE_CFLAGS, ...t.cflags, '-o', dest, ...t.sources, ...t.ldlibs], { ...ro, cwd: t.dir });
    } catch (err) {
      const hint = t.ldlibs.length
        ? ` (static libraries needed: apt-get install -y libc6-dev libxdp-dev libbpf-dev libelf-dev zlib1g-dev)`
        : ' (apt-get install -y gcc libc6-dev)';
      throw new BuildError(`building guest binary ${t.name} failed${hint}:\n${(err as Error).message}`);
    }
    out.set(t.name, dest);
  }
  return out;
}
