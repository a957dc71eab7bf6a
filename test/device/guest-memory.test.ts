import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkRegions, sys } from 'vfio-user-ts';
import { FakeGuest } from '../support/fake-driver.js';

test('translates inside a region and refuses ranges outside or across regions', () => {
  const guest = new FakeGuest([
    { guestPhysAddr: 0x100000, size: 0x10000 },
    { guestPhysAddr: 0x110000, size: 0x10000 },
  ]);
  const m = guest.memory;
  try {
    assert.is(m.regionOfGuestRange(0x100000, 0x10000), 0);
    assert.is(m.regionOfGuestRange(0x110000, 1), 1);
    assert.is(m.regionOfGuestRange(0xfffff, 2), -1, 'starts before the first region');
    assert.is(m.regionOfGuestRange(0x10ffff, 2), -1, 'adjacent regions: a buffer may not cross');
    assert.is(m.regionOfGuestRange(0x11ffff, 2), -1, 'runs off the end');
    assert.is(m.regionOfGuestRange(2 ** 64 - 1, 16), -1, 'wraps 2^64');
    assert.is(m.regionOfGuestRange(0x100000, 0xffffffff), -1, 'oversized length');
    guest.write(0x110010, Uint8Array.of(1, 2, 3));
    assert.equal([...m.slice(0x110010, 3)!], [1, 2, 3], 'the device mapping sees the driver writes');
    assert.is(m.slice(0x10fffe, 4), null);
  } finally {
    guest.close();
  }
});

test('typed views need alignment and bounds', () => {
  const guest = new FakeGuest([{ guestPhysAddr: 0x200000, size: 0x1000 }]);
  try {
    assert.ok(guest.memory.typedView(Uint32Array, 0x200004, 4));
    assert.is(guest.memory.typedView(Uint32Array, 0x200002, 4), null, 'misaligned');
    assert.is(guest.memory.typedView(Uint16Array, 0x200ffe, 2), null, 'past the end');
  } finally {
    guest.close();
  }
});

test('translates frontend addresses to guest-physical', () => {
  const guest = new FakeGuest([{ guestPhysAddr: 0x100000, size: 0x10000 }]);
  try {
    const uva = guest.regions[0]!.userAddr;
    assert.is(guest.memory.guestAddrOfUserRange(uva + 0x20, 16), 0x100020);
    assert.is(guest.memory.guestAddrOfUserRange(uva + 0xfff8, 16), -1);
  } finally {
    guest.close();
  }
});

test('unmapping empties the views', () => {
  const guest = new FakeGuest();
  const bytes = guest.memory.bytes[0]!;
  guest.close();
  assert.is(bytes.byteLength, 0);
});

test('checkRegions refuses empty, too many, overlapping and beyond-2^53 tables', () => {
  const r = (gpa: number, size: number, uva = gpa) => ({ guestPhysAddr: gpa, size, userAddr: uva, mmapOffset: 0, fd: -1 });
  assert.match(checkRegions([], 8)!, /no regions/);
  assert.match(checkRegions(Array.from({ length: 9 }, (_, i) => r(i * 0x1000, 0x1000)), 8)!, /9 regions/);
  assert.match(checkRegions([r(0, 0x2000), r(0x1000, 0x1000, 0x10000)], 8)!, /overlaps/);
  assert.match(checkRegions([r(0, 0x1000), r(0x1000, 0x1000, 0x800)], 8)!, /frontend's address space/);
  assert.match(checkRegions([r(2 ** 53 - 10, 0x1000)], 8)!, /2\^53/);
  assert.match(checkRegions([r(0, 0)], 8)!, /size 0/);
  assert.is(checkRegions([r(0, 0x1000), r(0x1000, 0x1000)], 8), null);
});

test('checkRegions with fileSize refuses a region beyond the end of its file (mmap would SIGBUS on it later)', () => {
  const fd = sys.memfdCreate('zcnic-test-small', 0x4000);
  const efd = sys.eventfdCreate(0, true);
  try {
    const r = (size: number, mmapOffset: number, f = fd) => ({ guestPhysAddr: 0x100000, size, userAddr: 0x7f0000000000, mmapOffset, fd: f });
    assert.is(checkRegions([r(0x4000, 0)], 8, sys.fileSize), null, 'exactly the file');
    assert.is(checkRegions([r(0x2000, 0x2000)], 8, sys.fileSize), null, 'the last half');
    assert.match(checkRegions([r(0x100000, 0)], 8, sys.fileSize)!, /region 0: mmap offset 0x0 \+ size 0x100000 is beyond the end of its file \(16384 bytes\)/);
    assert.match(checkRegions([r(0x1000, 0x4000)], 8, sys.fileSize)!, /beyond the end of its file/, 'an offset past the end');
    assert.match(checkRegions([r(0x1000, 0, efd)], 8, sys.fileSize)!, /beyond the end of its file \(0 bytes\)/, 'an eventfd has no size');
    assert.is(checkRegions([r(0x100000, 0)], 8), null, 'without fileSize the file is not looked at');
  } finally {
    sys.close(fd);
    sys.close(efd);
  }
});

test.run();
