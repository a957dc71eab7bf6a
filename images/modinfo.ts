// Kernel module metadata without kmod: Debian's kernel package ships no modules.dep
// (depmod runs at install time) and kmod is not a build dependency. Every .ko carries
// a .modinfo section of NUL-separated key=value strings; `depends=` there is written by
// modpost from the same symbol analysis depmod uses, and `vermagic=` starts with the
// kernel release.

export interface ModInfo {
  name?: string;
  depends: string[];
  vermagic?: string;
}

/** Module names use '_' internally; file names may use '-'. */
export function normalizeModName(name: string): string {
  return name.replace(/-/g, '_');
}

function sectionBytes(elf: Uint8Array, wanted: string): Uint8Array | undefined {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const isElf = elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46;
  // ELFCLASS64, little-endian: the only kind of module an x86-64 kernel loads.
  if (!isElf || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  const header = (i: number) => {
    const base = shoff + i * shentsize;
    return {
      name: view.getUint32(base, true),
      offset: Number(view.getBigUint64(base + 0x18, true)),
      size: Number(view.getBigUint64(base + 0x20, true)),
    };
  };
  const strtab = header(shstrndx);
  const decoder = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const sh = header(i);
    const start = strtab.offset + sh.name;
    let end = start;
    while (end < elf.length && elf[end] !== 0) end++;
    if (decoder.decode(elf.subarray(start, end)) === wanted) return elf.subarray(sh.offset, sh.offset + sh.size);
  }
  return undefined;
}

export function parseModInfo(elf: Uint8Array): ModInfo {
  const section = sectionBytes(elf, '.modinfo');
  const info: ModInfo = { depends: [] };
  if (!section) return info;
  for (const entry of new TextDecoder().decode(section).split('\0')) {
    const eq = entry.indexOf('=');
    if (eq < 0) continue;
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (key === 'name') info.name = value;
    else if (key === 'vermagic') info.vermagic = value;
    else if (key === 'depends' && value !== '') info.depends = value.split(',').map(normalizeModName);
  }
  return info;
}

/**
 * Load order for `wanted`: every module after its dependencies, built-in ones left out.
 * `depsOf` returns a module's direct dependencies (and throws for unknown modules).
 */
export async function resolveLoadOrder(
  wanted: readonly string[],
  isBuiltin: (name: string) => boolean,
  depsOf: (name: string) => Promise<readonly string[]>,
): Promise<string[]> {
  const order: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();
  async function visit(raw: string, chain: readonly string[]): Promise<void> {
    const name = normalizeModName(raw);
    if (done.has(name) || isBuiltin(name)) return;
    if (visiting.has(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    visiting.add(name);
    for (const dep of await depsOf(name)) await visit(dep, [...chain, name]);
    visiting.delete(name);
    done.add(name);
    order.push(name);
  }
  for (const w of wanted) await visit(w, []);
  return order;
}

/**
 * modules.dep as depmod writes it, which busybox modprobe reads: one line per module, `NAME.ko:`
 * and every module it needs, directly or through another, the one loaded last first (modprobe
 * loads the list from its end and does not recurse). `modules` is in load order (resolveLoadOrder)
 * with each module's direct dependencies; dependencies not in the list are built in.
 */
export function modulesDep(modules: ReadonlyArray<{ readonly name: string; readonly depends: readonly string[] }>): string {
  const position = new Map(modules.map((m, i) => [m.name, i]));
  const direct = new Map(modules.map((m) => [m.name, m.depends.filter((d) => position.has(d))]));
  const needs = (name: string, into: Set<string>): Set<string> => {
    for (const dep of direct.get(name) ?? []) if (!into.has(dep)) needs(dep, into.add(dep));
    return into;
  };
  return modules
    .map((m) => {
      const deps = [...needs(m.name, new Set())].sort((a, b) => position.get(b)! - position.get(a)!);
      return `${m.name}.ko:${deps.map((d) => ` ${d}.ko`).join('')}\n`;
    })
    .join('');
}

/** Module names listed in modules.builtin (paths like kernel/drivers/virtio/virtio_pci.ko). */
export function parseBuiltin(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const base = line.trim().split('/').pop() ?? '';
    if (base.endsWith('.ko')) out.add(normalizeModName(base.slice(0, -3)));
  }
  return out;
}
