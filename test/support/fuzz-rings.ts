/**
 * The fuzzer's ring cases without a device: guest RAM laid out as FrontendSession lays it out,
 * in plain memory, a case written into it with what the rules expect of it, and the device
 * played by writing used elements where a device writes them (or where it must not).
 */
import { DescFlags, PackedDescFlags } from 'vfio-user-ts';
import { FrontendMemory, type SessionQueue } from 'vfio-user-ts/vhost-user-frontend';
import { GUEST_BASE, MEMORY_BYTES, RECEIVEQ, TRANSMITQ } from '../../fuzz/layout.js';
import type { RingGenome } from '../../fuzz/ring-genome.js';
import type { Expectation, UsedElement } from '../../fuzz/ring-model.js';
import { compare, completions, expectCase, genomeFeatures, usedArea, writeCase } from '../../fuzz/ring-runner.js';
import type { SnapshotDelta } from '../../fuzz/snapshot.js';

/** Guest RAM laid out as FrontendSession lays it out (rings from the region's start, a page each part), in plain memory. */
export function guest(size: number): { memory: FrontendMemory; queue: (index: number) => SessionQueue } {
  const memory = new FrontendMemory(GUEST_BASE, MEMORY_BYTES, 0x7f0000000000, new ArrayBuffer(MEMORY_BYTES));
  const queues: SessionQueue[] = [RECEIVEQ, TRANSMITQ].map((index) => ({
    index,
    size,
    descGpa: memory.alloc(16 * size, 4096),
    availGpa: memory.alloc(6 + 2 * size, 4096),
    usedGpa: memory.alloc(6 + 8 * size, 4096),
    kickFd: -1,
    callFd: -1,
  }));
  return { memory, queue: (index) => queues[index]! };
}

export interface WrittenCase {
  readonly memory: FrontendMemory;
  readonly queue: (index: number) => SessionQueue;
  /** What the rules expect, under the features the genome asks for (a backend offering them all). */
  readonly expected: Expectation;
  /** The hostile queue's descriptor ring as the driver wrote it. */
  readonly ring: Uint8Array;
  readonly publishRest: () => void;
}

/** Writes `g` and returns what the rules expect of it, with the memory and the ring as the driver wrote it. */
export function written(g: RingGenome, reflect = true): WrittenCase {
  const { memory, queue } = guest(g.size);
  const session = { memory, queue, features: genomeFeatures(g) };
  const publishRest = writeCase(session, g);
  const hostile = queue(g.side === 'tx' ? TRANSMITQ : RECEIVEQ);
  return { memory, queue, expected: expectCase(session, g, reflect), ring: memory.slice(hostile.descGpa, 16 * g.size).slice(), publishRest };
}

/**
 * Plays the device: writes `elements` where a device writes used elements. Packed: id, length
 * and flags in the element's slot (the address stays). Split: id and length in its used slot,
 * then used.idx moved on by the chains it completes.
 */
export function writeUsed(memory: FrontendMemory, queue: SessionQueue, layout: 'split' | 'packed', elements: readonly UsedElement[]): void {
  for (const u of elements) {
    if (layout === 'split') {
      memory.view.setUint32(memory.gpaToOffset(queue.usedGpa + 4 + 8 * u.slot), u.id, true);
      memory.view.setUint32(memory.gpaToOffset(queue.usedGpa + 8 + 8 * u.slot), u.length, true);
      const idx = memory.gpaToOffset(queue.usedGpa + 2);
      memory.view.setUint16(idx, (memory.view.getUint16(idx, true) + u.chains) & 0xffff, true);
      continue;
    }
    const at = queue.descGpa + 16 * u.slot;
    memory.view.setUint32(memory.gpaToOffset(at + 8), u.length, true);
    memory.view.setUint16(memory.gpaToOffset(at + 12), u.id, true);
    memory.view.setUint16(memory.gpaToOffset(at + 14), (u.wrap === 1 ? PackedDescFlags.avail | PackedDescFlags.used : 0) | (u.length > 0 ? DescFlags.write : 0), true);
  }
}

/** The counters a device that did what `e` says would show. */
export function deltaOf(e: Expectation): SnapshotDelta {
  return { txFrames: e.txFrames, txBytes: e.txBytes, rxFrames: e.rxFrames, rxBytes: e.rxBytes, rxNoBuffers: e.rxNoBuffers, errors: { ...e.errors }, protocolErrors: {}, needsReset: e.needsReset };
}

/**
 * What the runner makes of the rings in `c.memory` now, judged by `judge` (c.expected, or a
 * deliberately wrong expectation), with the counters of a device that did what c.expected says.
 */
export function judgeRings(c: WrittenCase, judge: Expectation, before: Uint8Array[]): string[] {
  const [txWritten, rxWritten] = before;
  const t = completions(c.memory, c.queue(TRANSMITQ), 'transmitq', judge.layout, judge.txElements, txWritten!);
  const r = completions(c.memory, c.queue(RECEIVEQ), 'receiveq', judge.layout, judge.rxElements, rxWritten!);
  return compare(judge, deltaOf(c.expected), { txUsed: t.count, rxUsed: r.count, problems: [...t.problems, ...r.problems] });
}

/** Both queues' usedArea as they are now (before the device played here wrote anything): what judgeRings tells its writes from. */
export function usedAreas(c: WrittenCase): Uint8Array[] {
  return [TRANSMITQ, RECEIVEQ].map((index) => {
    const area = usedArea(c.expected.layout, c.queue(index));
    return c.memory.slice(area.gpa, area.bytes).slice();
  });
}
