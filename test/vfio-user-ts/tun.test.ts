// tunOpen, tunSetVnetHeaderSize, tunSetOffload, readFd, writeFd and writevFd of the zcnic_sys addon.
// Creating a tap needs CAP_NET_ADMIN: without root these tests are skipped.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { isSysError, sys } from 'vfio-user-ts';

const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const root = process.getuid?.() === 0 && existsSync('/dev/net/tun');

function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(m);
  return parseInt(m[1]!, 8);
}

(root ? test : test.skip)('tunOpen creates a non-blocking tap that goes away on close', () => {
  const name = `zcnt${process.pid % 100000}`;
  const fd = sys.tunOpen(name, false);
  try {
    assert.ok(existsSync(`/sys/class/net/${name}`), 'the interface exists');
    // tun_flags in /sys: IFF_TAP (0x0002) | IFF_NO_PI (0x1000), no IFF_VNET_HDR (0x4000).
    const flags = parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8'), 16);
    assert.is(flags & 0x5003, 0x1002, 'IFF_TAP | IFF_NO_PI');
    assert.ok(fdFlags(fd) & O_NONBLOCK, 'O_NONBLOCK');
    assert.ok(fdFlags(fd) & O_CLOEXEC, 'O_CLOEXEC');
    assert.is(sys.readFd(fd, new Uint8Array(2048), 0, 2048), -1, 'nothing to read yet');
  } finally {
    sys.close(fd);
  }
  assert.not.ok(existsSync(`/sys/class/net/${name}`), 'gone after close');
});

(root ? test : test.skip)('a vnet-header tap takes a header size and offloads', () => {
  const name = `zcnv${process.pid % 100000}`;
  const fd = sys.tunOpen(name, true);
  try {
    const flags = parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8'), 16);
    assert.is(flags & 0x5003, 0x5002, 'IFF_TAP | IFF_NO_PI | IFF_VNET_HDR');
    sys.tunSetVnetHeaderSize(fd, 12);
    sys.tunSetOffload(fd, 0);
    assert.throws(() => sys.tunSetVnetHeaderSize(fd, 4), (e: unknown) => isSysError(e, 'EINVAL'));
  } finally {
    sys.close(fd);
  }
});

(root ? test : test.skip)('tunOpen errors are SysErrors', () => {
  assert.throws(() => sys.tunOpen('x'.repeat(16), false), (e: unknown) => e instanceof RangeError);
  try {
    sys.tunOpen('bad name/', false);
    assert.unreachable();
  } catch (e) {
    assert.ok(isSysError(e), String(e));
    assert.is(e.syscall, 'ioctl');
  }
});

test('readFd and writeFd move bytes and report EAGAIN as -1', () => {
  // An eventfd: a write of 8 bytes adds to its counter, a read of 8 bytes takes it.
  const fd = sys.eventfdCreate(0, true);
  try {
    const out = new Uint8Array(10);
    new DataView(out.buffer).setBigUint64(1, 42n, true);
    assert.is(sys.writeFd(fd, out, 1, 8), 8);
    const into = new Uint8Array(12);
    assert.is(sys.readFd(fd, into, 2, 8), 8);
    assert.is(new DataView(into.buffer).getBigUint64(2, true), 42n);
    assert.is(sys.readFd(fd, into, 0, 8), -1, 'nothing left');
    assert.throws(() => sys.readFd(fd, into, 8, 8), (e: unknown) => e instanceof RangeError);
    assert.throws(() => sys.writeFd(fd, out, 0, 4), (e: unknown) => isSysError(e, 'EINVAL'));
  } finally {
    sys.close(fd);
  }
  assert.throws(() => sys.readFd(fd, new Uint8Array(8), 0, 8), (e: unknown) => isSysError(e, 'EBADF'));
});

test('writevFd gathers pieces into one write', () => {
  // A memfd: the pieces land one after the other from the file's start.
  const fd = sys.memfdCreate('zcnic-writev', 4096);
  try {
    const first = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const second = new Uint8Array([4, 5, 6, 7, 8]);
    const pieces = [first, second, first];
    const offsets = new Float64Array([2, 0, 0]);
    const lengths = new Float64Array([3, 5, 0]);
    assert.is(sys.writevFd(fd, pieces, offsets, lengths, 2), 8);
    const file = new Uint8Array(sys.mapShared(fd, 0, 4096));
    assert.equal([...file.subarray(0, 9)], [1, 2, 3, 4, 5, 6, 7, 8, 0]);
    sys.unmap(file.buffer);
    lengths[1] = 6;
    assert.throws(() => sys.writevFd(fd, pieces, offsets, lengths, 2), (e: unknown) => e instanceof RangeError);
    assert.throws(() => sys.writevFd(fd, pieces, offsets, lengths, 4), (e: unknown) => e instanceof RangeError);
    assert.throws(() => sys.writevFd(fd, pieces, offsets, lengths, sys.MAX_WRITEV_PIECES + 1), (e: unknown) => e instanceof RangeError);
  } finally {
    sys.close(fd);
  }
});

test.run();
