// WorkerMemory: a datapath worker's guest memory, and its watch for pages the frontend took away
// (a region's file truncated under the mapping, absorbed by the addon's SIGBUS guard).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ftruncateSync } from 'node:fs';
import { sys, type MemoryRegion } from 'vfio-user-ts';
import { WorkerMemory } from '../../device/datapath/worker-memory.js';

const PAGE = 4096;

function region(fd: number, guestPhysAddr: number): MemoryRegion {
  return { guestPhysAddr, size: 8 * PAGE, userAddr: 0x7f0000000000 + guestPhysAddr, mmapOffset: 0, fd };
}

test('a truncated region is reported once per table, with its page; a new table starts over', () => {
  const a = sys.memfdCreate('worker-memory-a', 8 * PAGE);
  const b = sys.memfdCreate('worker-memory-b', 8 * PAGE);
  const memory = new WorkerMemory();
  try {
    assert.is(memory.current, null);
    assert.is(memory.map([region(a, 0x100000), region(b, 0x200000)]), null);
    assert.is(memory.newlyTruncated(), false, 'no fault yet');
    ftruncateSync(b, 2 * PAGE);
    assert.is(memory.current!.slice(0x200000 + 5 * PAGE, 1)![0], 0, 'beyond the end: a zero page');
    assert.is(memory.newlyTruncated(), true);
    assert.ok(memory.truncated);
    assert.match(memory.truncationDetail(), /region 1 \(gpa 0x200000, 0x8000 bytes\).*offset 0x5000/);
    assert.is(memory.current!.slice(0x200000 + 3 * PAGE, 1)![0], 0, 'another fault in the same table');
    assert.is(memory.newlyTruncated(), false, 'reported once');
    assert.ok(memory.truncated, 'and still known');
    ftruncateSync(b, 8 * PAGE);
    assert.is(memory.map([region(a, 0x100000), region(b, 0x200000)]), null);
    assert.is(memory.truncated, false, 'a new table is whole');
    assert.is(memory.newlyTruncated(), false);
    assert.is(memory.map([]), null);
    assert.is(memory.current, null, 'an empty table unmaps');
    assert.match(memory.map([region(-1, 0x100000)]) ?? '', /cannot map guest memory/);
  } finally {
    memory.close();
    sys.close(a);
    sys.close(b);
  }
});

test.run();
