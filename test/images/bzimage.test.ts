import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { gzipSync } from 'node:zlib';
import { bzImagePayload, hasPvhEntry, pvhKernel } from '../../images/bzimage.js';
import { run } from '../../images/run.js';

/** A 64-bit ELF header and one PT_NOTE segment holding one note (owner, type). */
function elfWithNote(owner: string, type: number): Uint8Array {
  const name = new TextEncoder().encode(`${owner}\0`);
  const nameLen = (name.length + 3) & ~3;
  const desc = 8;
  const noteLen = 12 + nameLen + desc;
  const elf = new Uint8Array(64 + 56 + noteLen);
  const v = new DataView(elf.buffer);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setBigUint64(0x20, 64n, true); // e_phoff
  v.setUint16(0x36, 56, true); // e_phentsize
  v.setUint16(0x38, 1, true); // e_phnum
  v.setUint32(64, 4, true); // p_type PT_NOTE
  v.setBigUint64(64 + 0x08, 120n, true); // p_offset
  v.setBigUint64(64 + 0x20, BigInt(noteLen), true); // p_filesz
  v.setUint32(120, name.length, true);
  v.setUint32(124, desc, true);
  v.setUint32(128, type, true);
  elf.set(name, 132);
  return elf;
}

/** A bzImage whose setup header points at `payload` (2 setup sectors, boot protocol 2.15). */
function bzImage(payload: Uint8Array, version = 0x020f): Uint8Array {
  const setupSects = 2;
  const payloadOffset = 0x40;
  const bz = new Uint8Array((setupSects + 1) * 512 + payloadOffset + payload.length);
  const v = new DataView(bz.buffer);
  bz[0x1f1] = setupSects;
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, version, true);
  v.setUint32(0x248, payloadOffset, true);
  v.setUint32(0x24c, payload.length, true);
  bz.set(payload, (setupSects + 1) * 512 + payloadOffset);
  return bz;
}

/** The kernel's size_append: the decompressed size, 4 bytes little-endian, after the stream. */
function withSize(stream: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(stream.length + 4);
  out.set(stream);
  new DataView(out.buffer).setUint32(stream.length, size, true);
  return out;
}

test('bzImage payload: found through the setup header; refused for other files and old protocols', () => {
  const payload = new Uint8Array([1, 2, 3, 4, 5]);
  assert.equal([...(bzImagePayload(bzImage(payload)) as Uint8Array)], [1, 2, 3, 4, 5]);
  assert.is(bzImagePayload(new Uint8Array(1024)), 'not a bzImage');
  assert.is(bzImagePayload(bzImage(payload, 0x0207)), 'boot protocol older than 2.08');
  const cut = bzImage(payload).subarray(0, 3 * 512 + 0x40 + 2);
  assert.is(bzImagePayload(cut), 'payload past the end of the file');
});

test('PVH entry: the Xen note of type 18 only', () => {
  assert.ok(hasPvhEntry(elfWithNote('Xen', 18)));
  assert.not.ok(hasPvhEntry(elfWithNote('Xen', 17)));
  assert.not.ok(hasPvhEntry(elfWithNote('Linux', 18)));
  assert.not.ok(hasPvhEntry(new Uint8Array(200)));
});

test('PVH kernel: gzip and zstd payloads decompressed; the appended size checked; kernels without the entry refused', async () => {
  const pvh = elfWithNote('Xen', 18);
  const viaGzip = await pvhKernel(bzImage(gzipSync(pvh)), {});
  assert.equal('elf' in viaGzip ? [...viaGzip.elf] : viaGzip, [...pvh]);

  const zstd = (await run('zstd', ['-c'], { input: pvh, binary: true })).stdoutBuffer;
  const viaZstd = await pvhKernel(bzImage(withSize(zstd, pvh.length)), {});
  assert.equal('elf' in viaZstd ? [...viaZstd.elf] : viaZstd, [...pvh]);
  assert.equal(await pvhKernel(bzImage(withSize(zstd, pvh.length + 1)), {}), {
    reason: `the zstd payload decompressed to ${pvh.length} bytes, not the ${pvh.length + 1} it names`,
  });

  assert.equal(await pvhKernel(bzImage(gzipSync(elfWithNote('Xen', 17))), {}), { reason: 'the kernel has no PVH entry point (CONFIG_PVH)' });
  assert.equal(await pvhKernel(bzImage(new Uint8Array([0x42, 0x5a, 0x68, 0x39])), {}), { reason: 'the payload is compressed with neither zstd, xz nor gzip' });
  assert.equal(await pvhKernel(new Uint8Array(16), {}), { reason: 'not a bzImage' });
});

test.run();
