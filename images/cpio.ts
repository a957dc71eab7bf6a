// A newc ("070701") cpio writer, the format the kernel unpacks an initramfs from.
// Written here rather than driving cpio(1) over a staging folder so that device nodes
// (/dev/console must exist before devtmpfs is mounted) and root ownership need no root
// privileges, and so that the archive is byte-for-byte reproducible (mtime 0, fixed order).

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

interface Entry {
  path: string;
  mode: number;
  data: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function normalize(path: string): string {
  const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '' || p.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw new Error(`bad archive path: ${JSON.stringify(path)}`);
  }
  return p;
}

export class CpioArchive {
  private readonly entries = new Map<string, Entry>();

  /** Parent folders are created on demand (mode 0755), as the kernel needs them first. */
  private parents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.entries.has(dir)) this.put(dir, S_IFDIR | 0o755, new Uint8Array());
    }
  }

  private put(path: string, mode: number, data: Uint8Array, rdevMajor = 0, rdevMinor = 0): void {
    const existing = this.entries.get(path);
    if (existing && (existing.mode & 0o170000) === S_IFDIR && (mode & 0o170000) === S_IFDIR) {
      existing.mode = mode;
      return;
    }
    if (existing) throw new Error(`duplicate archive path: ${path}`);
    this.entries.set(path, { path, mode, data, rdevMajor, rdevMinor });
  }

  addDir(path: string, perm = 0o755): this {
    const p = normalize(path);
    this.parents(p);
    this.put(p, S_IFDIR | perm, new Uint8Array());
    return this;
  }

  addFile(path: string, data: Uint8Array | string, perm = 0o644): this {
    const p = normalize(path);
    this.parents(p);
    this.put(p, S_IFREG | perm, typeof data === 'string' ? new TextEncoder().encode(data) : data);
    return this;
  }

  addSymlink(path: string, target: string): this {
    const p = normalize(path);
    this.parents(p);
    this.put(p, S_IFLNK | 0o777, new TextEncoder().encode(target));
    return this;
  }

  addCharDevice(path: string, major: number, minor: number, perm = 0o600): this {
    const p = normalize(path);
    this.parents(p);
    this.put(p, S_IFCHR | perm, new Uint8Array(), major, minor);
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(normalize(path));
  }

  get size(): number {
    return this.entries.size;
  }

  /** The archive, entries in insertion order (parents always precede children). */
  toBytes(): Uint8Array {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const push = (b: Uint8Array) => {
      chunks.push(b);
      total += b.length;
      const pad = (4 - (total % 4)) % 4;
      if (pad) {
        chunks.push(new Uint8Array(pad));
        total += pad;
      }
    };
    const enc = new TextEncoder();
    let ino = 1;
    const record = (e: Entry) => {
      const name = enc.encode(`${e.path}\0`);
      const isDir = (e.mode & 0o170000) === S_IFDIR;
      const header =
        '070701' +
        hex8(e.path === 'TRAILER!!!' ? 0 : ino++) +
        hex8(e.mode) +
        hex8(0) + // uid: root
        hex8(0) + // gid: root
        hex8(isDir ? 2 : 1) +
        hex8(0) + // mtime: fixed, for reproducible archives
        hex8(e.data.length) +
        hex8(0) +
        hex8(0) +
        hex8(e.rdevMajor) +
        hex8(e.rdevMinor) +
        hex8(name.length) +
        hex8(0);
      // Header and name are padded together to 4 bytes, then the data on its own.
      const head = new Uint8Array(header.length + name.length);
      head.set(enc.encode(header), 0);
      head.set(name, header.length);
      push(head);
      if (e.data.length) push(e.data);
    };
    for (const e of this.entries.values()) record(e);
    record({ path: 'TRAILER!!!', mode: 0, data: new Uint8Array(), rdevMajor: 0, rdevMinor: 0 });
    const out = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}
