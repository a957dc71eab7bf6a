// Cache keys for the image builder.
//
// Two stages are cached separately so that editing a guest script does not
// re-extract a 107 MB kernel package:
//   kernel stage  (.cache/kernels/<kernelKey>)  vmlinuz + the decompressed modules we load
//   image stage   (.cache/images/<imageKey>)    vmlinuz + initramfs.img + manifest.json
// A key is a truncated SHA-256 over a canonical JSON rendering of every input
// that can change the output, so "same key" means "same bytes would be built".
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readlink, lstat } from 'node:fs/promises';
import { join } from 'node:path';

/** Bump when the builder's output changes for the same inputs (layout, init wiring, flags). */
export const BUILDER_VERSION = 2;

/** 16 hex digits (64 bits): plenty to tell apart the few images one cache ever holds. */
const KEY_LENGTH = 16;

export type KernelSource =
  | { kind: 'debian'; package: string; version: string }
  | { kind: 'byo'; kernelSha256: string; modulesTreeSha256: string };

export interface KernelKeyInputs {
  source: KernelSource;
  /** Modules the guest needs; part of the key because the stage keeps only these. */
  modules: readonly string[];
  builderVersion: number;
}

export interface ImageKeyInputs {
  kernelKey: string;
  busyboxVersion: string;
  /** libxdp1 ships the BPF objects that go into the initramfs. */
  libxdpVersion: string;
  /** Versions of the host packages that end up statically linked in guest binaries. */
  toolchain: string;
  /** hashTree() of the guest/ folder. */
  guestHash: string;
  /**
   * Host programs copied in with their libraries (host-binaries.ts): one line per file,
   * "guestPath package=version sha256". Absent: none (older images, tests).
   */
  hostBinaries?: string;
  /**
   * Programs built from Debian source packages (xdp-tools.ts): one line per file,
   * "guestPath sources sha256". Absent: none.
   */
  sourceBuilt?: string;
  builderVersion: number;
}

/** JSON with object keys sorted at every level, so key order in source code never matters. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function digest(tag: string, value: unknown): string {
  return createHash('sha256').update(`${tag}\n${canonicalJson(value)}`).digest('hex').slice(0, KEY_LENGTH);
}

export function kernelKey(inputs: KernelKeyInputs): string {
  // Module order is irrelevant to the output (we resolve the load order ourselves).
  return digest('zcnic-kernel', { ...inputs, modules: [...inputs.modules].sort() });
}

export function imageKey(inputs: ImageKeyInputs): string {
  return digest('zcnic-image', inputs);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Names skipped by hashTree: editor droppings and VCS metadata, never inputs of the image. */
function ignoredName(name: string): boolean {
  return name.startsWith('.') || name.endsWith('~');
}

/**
 * Hash of a directory tree: relative paths, file types, the executable bit and contents,
 * visited in sorted order. Timestamps are left out on purpose: a fresh checkout must hit
 * the same cache entry as the tree it came from.
 */
export async function hashTree(root: string): Promise<string> {
  const hash = createHash('sha256');
  async function visit(rel: string): Promise<void> {
    const names = (await readdir(join(root, rel))).filter((n) => !ignoredName(n)).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const abs = join(root, relPath);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        hash.update(`d ${relPath}\n`);
        await visit(relPath);
      } else if (st.isSymbolicLink()) {
        hash.update(`l ${relPath} ${await readlink(abs)}\n`);
      } else if (st.isFile()) {
        const exec = (st.mode & 0o111) !== 0 ? 'x' : '-';
        hash.update(`f ${relPath} ${exec} ${st.size} ${await sha256File(abs)}\n`);
      }
    }
  }
  await visit('');
  return hash.digest('hex');
}
