import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpioArchive } from '../../images/cpio.js';
import { modulesDep, parseBuiltin, parseModInfo, resolveLoadOrder } from '../../images/modinfo.js';
import { chooseCompression } from '../../images/kernel.js';
import { debFileName, parsePolicy } from '../../images/debian.js';

interface Rec {
  name: string;
  mode: number;
  nlink: number;
  size: number;
  rdev: [number, number];
  data: Uint8Array;
}

/** A minimal newc reader, independent of the writer, to check what the kernel would see. */
function readNewc(buf: Uint8Array): Rec[] {
  const dec = new TextDecoder();
  const out: Rec[] = [];
  let off = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    const h = dec.decode(buf.subarray(off, off + 110));
    assert.is(h.slice(0, 6), '070701');
    const f = (i: number) => parseInt(h.slice(6 + 8 * i, 14 + 8 * i), 16);
    const namesize = f(11);
    const size = f(6);
    const name = dec.decode(buf.subarray(off + 110, off + 110 + namesize - 1));
    const dataStart = align(off + 110 + namesize);
    const rec: Rec = { name, mode: f(1), nlink: f(4), size, rdev: [f(9), f(10)], data: buf.subarray(dataStart, dataStart + size) };
    off = align(dataStart + size);
    if (name === 'TRAILER!!!') break;
    out.push(rec);
  }
  assert.is(off, buf.length, 'archive ends after the trailer, padded to 4');
  return out;
}

test('cpio: parents first, types, modes, device numbers and data', () => {
  const a = new CpioArchive();
  a.addFile('/usr/bin/frames', 'ELF', 0o755);
  a.addSymlink('bin/sh', '/bin/busybox');
  a.addCharDevice('dev/console', 5, 1);
  a.addDir('tmp', 0o1777);
  const recs = readNewc(a.toBytes());
  assert.equal(
    recs.map((r) => r.name),
    ['usr', 'usr/bin', 'usr/bin/frames', 'bin', 'bin/sh', 'dev', 'dev/console', 'tmp'],
  );
  const by = new Map(recs.map((r) => [r.name, r]));
  assert.is(by.get('usr/bin/frames')?.mode, 0o100755);
  assert.is(new TextDecoder().decode(by.get('usr/bin/frames')?.data), 'ELF');
  assert.is(by.get('bin/sh')?.mode, 0o120777);
  assert.is(new TextDecoder().decode(by.get('bin/sh')?.data), '/bin/busybox');
  assert.is(by.get('dev/console')?.mode, 0o020600);
  assert.equal(by.get('dev/console')?.rdev, [5, 1]);
  assert.is(by.get('tmp')?.mode, 0o041777);
  assert.is(by.get('usr')?.nlink, 2);
});

test('cpio: odd sizes are padded; output is deterministic', () => {
  const make = () => new CpioArchive().addFile('a', 'x').addFile('bb', 'yyyyy').addFile('ccc', new Uint8Array(7)).toBytes();
  const one = make();
  assert.is(one.length % 4, 0);
  assert.equal(one, make());
  assert.equal(readNewc(one).map((r) => r.size), [1, 5, 7]);
});

test('cpio: rejects duplicates and bad paths', () => {
  const a = new CpioArchive().addFile('x', '1');
  assert.throws(() => a.addFile('x', '2'), /duplicate/);
  assert.throws(() => a.addFile('../etc/passwd', ''), /bad archive path/);
  assert.throws(() => a.addFile('', ''), /bad archive path/);
  a.addDir('d').addDir('d'); // folders may be declared twice
});

/** A tiny ELF64 with a .modinfo section, like a kernel module's. */
function fakeModule(modinfo: string): Uint8Array {
  const enc = new TextEncoder();
  const info = enc.encode(modinfo);
  const shstr = enc.encode('\0.shstrtab\0.modinfo\0');
  const infoOff = 64;
  const strOff = infoOff + info.length;
  const shoff = (strOff + shstr.length + 7) & ~7;
  const buf = new Uint8Array(shoff + 3 * 64);
  const v = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  v.setBigUint64(0x28, BigInt(shoff), true);
  v.setUint16(0x3a, 64, true);
  v.setUint16(0x3c, 3, true);
  v.setUint16(0x3e, 1, true);
  buf.set(info, infoOff);
  buf.set(shstr, strOff);
  const sh = (i: number, name: number, off: number, size: number) => {
    const b = shoff + i * 64;
    v.setUint32(b, name, true);
    v.setBigUint64(b + 0x18, BigInt(off), true);
    v.setBigUint64(b + 0x20, BigInt(size), true);
  };
  sh(1, 1, strOff, shstr.length);
  sh(2, 11, infoOff, info.length);
  return buf;
}

test('modinfo: depends, name and vermagic from .modinfo', () => {
  const m = parseModInfo(fakeModule('license=GPL\0depends=net_failover,foo-bar\0name=virtio_net\0vermagic=6.12.117+deb12-amd64 SMP mod_unload \0'));
  assert.equal(m.depends, ['net_failover', 'foo_bar']);
  assert.is(m.name, 'virtio_net');
  assert.is(m.vermagic?.split(' ')[0], '6.12.117+deb12-amd64');
  assert.equal(parseModInfo(fakeModule('depends=\0name=failover\0')).depends, []);
  assert.throws(() => parseModInfo(new Uint8Array(64)), /ELF/);
});

test('modinfo: load order puts dependencies first and skips built-ins', async () => {
  const deps: Record<string, string[]> = {
    virtio_net: ['net_failover'],
    net_failover: ['failover'],
    failover: [],
    tun: [],
  };
  const order = await resolveLoadOrder(
    ['virtio_pci', 'virtio_net', 'tun', 'virtio_console'],
    (n) => n === 'virtio_pci' || n === 'virtio_console',
    async (n) => {
      const d = deps[n];
      if (!d) throw new Error(`unknown ${n}`);
      return d;
    },
  );
  assert.equal(order, ['failover', 'net_failover', 'virtio_net', 'tun']);
  await resolveLoadOrder(['a'], () => false, async (n) => (n === 'a' ? ['b'] : ['a'])).then(
    () => assert.unreachable('cycle not detected'),
    (e: Error) => assert.match(e.message, /cycle: a -> b -> a/),
  );
});

test('modules.dep: every module with all it needs, the last loaded first, built-in ones left out', () => {
  // Load order with direct dependencies, as the image's modules have them (9pnet needs netfs).
  const dep = modulesDep([
    { name: 'failover', depends: [] },
    { name: 'net_failover', depends: ['failover'] },
    { name: 'virtio_net', depends: ['net_failover'] },
    { name: 'llc', depends: [] },
    { name: 'stp', depends: ['llc'] },
    { name: 'bridge', depends: ['stp', 'llc'] },
    { name: 'netfs', depends: [] },
    { name: '9pnet', depends: ['netfs'] },
    { name: '9pnet_virtio', depends: ['9pnet', 'virtio_ring'] },
  ]);
  assert.is(
    dep,
    [
      'failover.ko:',
      'net_failover.ko: failover.ko',
      'virtio_net.ko: net_failover.ko failover.ko',
      'llc.ko:',
      'stp.ko: llc.ko',
      'bridge.ko: stp.ko llc.ko',
      'netfs.ko:',
      '9pnet.ko: netfs.ko',
      '9pnet_virtio.ko: 9pnet.ko netfs.ko',
      '',
    ].join('\n'),
  );
});

test('modules.builtin, kernel config and apt output parsing', () => {
  const b = parseBuiltin('kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/char/virtio_console.ko\nkernel/x/snd-pcm.ko\n');
  assert.ok(b.has('virtio_pci') && b.has('virtio_console') && b.has('snd_pcm'));
  assert.is(chooseCompression('CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\n'), 'zstd');
  assert.is(chooseCompression('CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n'), 'gzip');
  assert.is(chooseCompression(undefined), 'gzip');
  const policy = parsePolicy(
    'busybox-static:\n  Installed: 1:1.35.0-4\n  Candidate: 1:1.35.0-4+deb12u1+b1\n  Version table:\nlibxdp1:\n  Installed: (none)\n  Candidate: (none)\n',
  );
  assert.is(policy.get('busybox-static'), '1:1.35.0-4+deb12u1+b1');
  assert.not.ok(policy.has('libxdp1'));
  assert.is(debFileName('busybox-static', '1:1.35.0-4'), 'busybox-static_1%3a1.35.0-4_amd64.deb');
});

test.run();
