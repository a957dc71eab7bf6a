// The kernel ELF inside a bzImage, for a boot through PVH.
//
// QEMU boots a bzImage through SeaBIOS's Linux loader, and the kernel's own stub then
// decompresses the payload and relocates it. Under TCG that took about 1 s of each boot (QEMU's
// start to the kernel's first timestamp: 1.49 s against 0.49 s through PVH on Debian's 6.12,
// 1.68 s against 0.88 s on 7.3, medians of 3). A kernel built with CONFIG_PVH carries an entry point for
// PVH in an ELF note, and QEMU's -kernel starts such an ELF directly: the payload is that ELF,
// decompressed here once per kernel.
import { gunzipSync } from 'node:zlib';
import { run, type RunOptions } from './run.js';

/** The boot protocol's setup header (Documentation/arch/x86/boot.rst). */
const SETUP_HEADER = {
  setupSects: 0x1f1,
  magic: 0x202,
  version: 0x206,
  payloadOffset: 0x248,
  payloadLength: 0x24c,
} as const;
/** payload_offset and payload_length came with boot protocol 2.08. */
const PAYLOAD_FIELDS_SINCE = 0x0208;

/**
 * How the payload is compressed, by its first bytes. All but gzip end in the decompressed size
 * (4 bytes, little-endian: the kernel's size_append), which the decompressors take for garbage.
 */
const COMPRESSIONS = [
  { name: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd], sizeAppended: true },
  { name: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], sizeAppended: true },
  { name: 'gzip', magic: [0x1f, 0x8b], sizeAppended: false },
] as const;

/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry point of a PVH boot, in a note owned by "Xen". */
const PVH_NOTE = { owner: 'Xen', type: 18 } as const;
const PT_NOTE = 4;

/** The compressed kernel of a bzImage, or why there is none. */
export function bzImagePayload(bz: Uint8Array): Uint8Array | string {
  const view = new DataView(bz.buffer, bz.byteOffset, bz.byteLength);
  if (bz.length < SETUP_HEADER.payloadLength + 4 || view.getUint32(SETUP_HEADER.magic, true) !== 0x53726448 /* "HdrS" */) {
    return 'not a bzImage';
  }
  if (view.getUint16(SETUP_HEADER.version, true) < PAYLOAD_FIELDS_SINCE) return 'boot protocol older than 2.08';
  // 0 setup sectors means 4, for kernels older than the field.
  const setupSects = bz[SETUP_HEADER.setupSects] || 4;
  const start = (setupSects + 1) * 512 + view.getUint32(SETUP_HEADER.payloadOffset, true);
  const end = start + view.getUint32(SETUP_HEADER.payloadLength, true);
  if (end > bz.length) return 'payload past the end of the file';
  return bz.subarray(start, end);
}

/** Whether an ELF file has the PVH entry note (in a PT_NOTE segment). */
export function hasPvhEntry(elf: Uint8Array): boolean {
  const isElf64 = elf.length >= 64 && elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c && elf[3] === 0x46 && elf[4] === 2 && elf[5] === 1;
  if (!isElf64) return false;
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  const decoder = new TextDecoder();
  const align4 = (n: number) => (n + 3) & ~3;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 0x30 > elf.length || view.getUint32(ph, true) !== PT_NOTE) continue;
    const offset = Number(view.getBigUint64(ph + 0x08, true));
    const end = Math.min(elf.length, offset + Number(view.getBigUint64(ph + 0x20, true)));
    for (let n = offset; n + 12 <= end; ) {
      const namesz = view.getUint32(n, true);
      const descsz = view.getUint32(n + 4, true);
      const type = view.getUint32(n + 8, true);
      // The name's length counts its NUL.
      const owner = decoder.decode(elf.subarray(n + 12, n + 12 + Math.max(0, namesz - 1)));
      if (owner === PVH_NOTE.owner && type === PVH_NOTE.type) return true;
      n += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

/** The kernel ELF of a bzImage when QEMU can boot it through PVH, or why not. */
export async function pvhKernel(bz: Uint8Array, ro: RunOptions): Promise<{ elf: Uint8Array } | { reason: string }> {
  const payload = bzImagePayload(bz);
  if (typeof payload === 'string') return { reason: payload };
  const compression = COMPRESSIONS.find((c) => c.magic.every((b, i) => payload[i] === b));
  if (compression === undefined) return { reason: 'the payload is compressed with neither zstd, xz nor gzip' };
  let elf: Uint8Array;
  if (compression.name === 'gzip') {
    elf = gunzipSync(payload);
  } else {
    const data = payload.subarray(0, payload.length - 4);
    elf = (await run(compression.name, ['-dc'], { ...ro, input: data, binary: true })).stdoutBuffer;
    const size = new DataView(payload.buffer, payload.byteOffset + payload.length - 4, 4).getUint32(0, true);
    if (elf.length !== size) return { reason: `the ${compression.name} payload decompressed to ${elf.length} bytes, not the ${size} it names` };
  }
  return hasPvhEntry(elf) ? { elf } : { reason: 'the kernel has no PVH entry point (CONFIG_PVH)' };
}
