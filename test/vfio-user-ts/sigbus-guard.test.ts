// The addon's SIGBUS guard (sys.mapGuest): a file that shrinks under a guest-memory mapping must
// not kill the process, and every other SIGBUS still must. This file is also the worker script
// of the worker test: in a worker it maps and faults instead of registering tests.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { ftruncateSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { GuestMemory, sys } from 'vfio-user-ts';

const PAGE = 4096;
const faults = sys.guestFaults;

interface WorkerReport {
  readonly slot: number;
  readonly read: number;
}

if (!isMainThread) {
  // The worker maps the memfd it was given itself (as each datapath worker does) and reads
  // beyond the end the main thread truncated it to.
  const buffer = sys.mapGuest(workerData as number, 0, 16 * PAGE);
  const bytes = new Uint8Array(buffer);
  const report: WorkerReport = { slot: sys.mappingGuard(buffer), read: bytes[12 * PAGE]! };
  sys.unmap(buffer);
  parentPort!.postMessage(report);
} else {
  test('an access beyond the end of a truncated file reads zeros, counted in the mapping\'s slot; the rest of the file stays', () => {
    const fd = sys.memfdCreate('guard', 16 * PAGE);
    const buffer = sys.mapGuest(fd, 0, 16 * PAGE);
    const bytes = new Uint8Array(buffer);
    const slot = sys.mappingGuard(buffer);
    assert.ok(slot >= 0, 'a guarded mapping has a slot');
    bytes[100] = 7;
    bytes[9 * PAGE + 5] = 9;
    const before = faults.total;
    assert.is(faults.inSlot(slot), 0);
    assert.is(faults.firstPage(slot), -1);
    ftruncateSync(fd, 4 * PAGE);
    assert.is(bytes[9 * PAGE + 5], 0, 'beyond the end: a zero page, not SIGBUS');
    assert.is(faults.total, before + 1);
    assert.is(faults.inSlot(slot), 1);
    assert.is(faults.firstPage(slot), 9);
    // The zero pages run from the faulting page to the end of the mapping: no more faults.
    bytes[15 * PAGE] = 1;
    assert.is(bytes[15 * PAGE], 1, 'a write lands in the private page');
    assert.is(faults.inSlot(slot), 1);
    // Pages 4..8 were not touched since: they are still the file's, beyond its end.
    assert.is(bytes[5 * PAGE], 0);
    assert.is(faults.inSlot(slot), 2);
    assert.is(faults.firstPage(slot), 9, 'the first fault is kept');
    assert.is(bytes[100], 7, 'below the end the file is still mapped');
    sys.unmap(buffer);
    sys.close(fd);
  });

  test('mapShared mappings have no slot; a freed slot starts from zero for the next mapping', () => {
    const fd = sys.memfdCreate('slots', 4 * PAGE);
    const plain = sys.mapShared(fd, 0, PAGE);
    assert.is(sys.mappingGuard(plain), -1);
    assert.throws(() => sys.mappingGuard(new ArrayBuffer(8)), /not returned by mapShared or mapGuest/);
    const first = sys.mapGuest(fd, 0, 4 * PAGE);
    const slot = sys.mappingGuard(first);
    ftruncateSync(fd, PAGE);
    assert.is(new Uint8Array(first)[2 * PAGE], 0);
    assert.is(faults.inSlot(slot), 1);
    sys.unmap(first);
    ftruncateSync(fd, 4 * PAGE);
    const second = sys.mapGuest(fd, 0, 4 * PAGE);
    assert.is(sys.mappingGuard(second), slot, 'the lowest free slot is taken again');
    assert.is(faults.inSlot(slot), 0);
    assert.is(faults.firstPage(slot), -1);
    sys.unmap(second);
    sys.unmap(plain);
    sys.close(fd);
  });

  test('worker threads: a fault in a worker\'s own mapping is counted in its slot, seen from every thread', async () => {
    const fd = sys.memfdCreate('guard-worker', 16 * PAGE);
    const mine = sys.mapGuest(fd, 0, 16 * PAGE);
    const mySlot = sys.mappingGuard(mine);
    ftruncateSync(fd, 8 * PAGE);
    const before = faults.total;
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: fd });
    const report = await new Promise<WorkerReport>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    assert.is(report.read, 0);
    assert.ok(report.slot >= 0 && report.slot !== mySlot, 'the worker\'s mapping has a slot of its own');
    assert.is(faults.total, before + 1, 'the process-wide count moved once');
    assert.is(faults.inSlot(mySlot), 0, 'this thread\'s mapping of the same file has not faulted');
    assert.is(new Uint8Array(mine)[12 * PAGE], 0);
    assert.is(faults.inSlot(mySlot), 1);
    sys.unmap(mine);
    sys.close(fd);
  });

  test('sys.copyBytes out of a truncated file reads zeros where it ended, counted like a JavaScript access', () => {
    const fd = sys.memfdCreate('guard-copy', 8 * PAGE);
    const buffer = sys.mapGuest(fd, 0, 8 * PAGE);
    const bytes = new Uint8Array(buffer);
    const slot = sys.mappingGuard(buffer);
    bytes.fill(5);
    ftruncateSync(fd, 3 * PAGE);
    const copied = new Uint8Array(2 * PAGE).fill(0xee);
    sys.copyBytes(copied, 0, bytes, 2 * PAGE, 2 * PAGE);
    assert.ok(copied.subarray(0, PAGE).every((b) => b === 5), 'the page below the end: the file\'s bytes');
    assert.ok(copied.subarray(PAGE).every((b) => b === 0), 'the page beyond it: zeros, not SIGBUS');
    assert.is(faults.inSlot(slot), 1);
    assert.is(faults.firstPage(slot), 3);
    sys.unmap(buffer);
    sys.close(fd);
  });

  test('GuestMemory: truncatedRegion names the region whose file shrank, firstFaultOffset the page in it', () => {
    const a = sys.memfdCreate('region-a', 8 * PAGE);
    const b = sys.memfdCreate('region-b', 16 * PAGE);
    // Region 1 starts half a page into its file: offsets in it are not those of the mapping.
    const memory = new GuestMemory(
      [
        { guestPhysAddr: 0x100000, size: 8 * PAGE, userAddr: 0x7f0000000000, mmapOffset: 0, fd: a },
        { guestPhysAddr: 0x200000, size: 8 * PAGE, userAddr: 0x7f0000100000, mmapOffset: PAGE + PAGE / 2, fd: b },
      ],
      sys.mapGuest,
      sys.unmap,
      sys.mappingGuard,
    );
    assert.is(memory.truncatedRegion(faults), -1);
    ftruncateSync(b, 4 * PAGE);
    const region = memory.slice(0x200000, 8 * PAGE)!;
    assert.is(region[5 * PAGE + 7], 0, 'file offset 6.5 pages + 7: beyond the end');
    assert.is(memory.truncatedRegion(faults), 1);
    // The fault was in the mapping's page 5 (the file's page 6: the mapping starts at file
    // offset 1 page), which starts half a page before region offset 5 pages.
    assert.is(memory.firstFaultOffset(1, faults), 5 * PAGE - PAGE / 2);
    assert.is(memory.firstFaultOffset(0, faults), -1);
    memory.close();
    assert.is(memory.truncatedRegion(faults), -1, 'closed: its slots are not its own any more');
    sys.close(a);
    sys.close(b);
  });

  /** Runs `body` (ES module code with `sys` imported) in a child process; its exit. */
  function child(body: string): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
    const script = `import { ftruncateSync } from 'node:fs';\nimport { sys } from 'vfio-user-ts';\n${body}\nprocess.stdout.write('survived');`;
    const repo = fileURLToPath(new URL('../../../', import.meta.url));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
    return { status: r.status, signal: r.signal, stderr: r.stderr };
  }

  test('with the guard installed, a SIGBUS anywhere else still kills the process with SIGBUS', () => {
    const guard = `const fd = sys.memfdCreate('g', 8192); sys.mapGuest(fd, 0, 8192);`;
    const plain = child(`${guard}\nconst other = sys.memfdCreate('plain', 8192);\nconst bytes = new Uint8Array(sys.mapShared(other, 0, 8192));\nftruncateSync(other, 0);\nbytes[4096] = 1;`);
    assert.is(plain.signal, 'SIGBUS', `an unguarded mapping: ${JSON.stringify(plain)}`);
    const sent = child(`${guard}\nprocess.kill(process.pid, 'SIGBUS');\nawait new Promise((resolve) => setTimeout(resolve, 1000));`);
    assert.is(sent.signal, 'SIGBUS', `a SIGBUS sent with kill(): ${JSON.stringify(sent)}`);
    const guarded = child(`const fd = sys.memfdCreate('g', 8192);\nconst bytes = new Uint8Array(sys.mapGuest(fd, 0, 8192));\nftruncateSync(fd, 0);\nbytes[4096] = 1;`);
    assert.equal([guarded.status, guarded.signal], [0, null], `the guarded one survives: ${guarded.stderr}`);
  });

  test.run();
}
