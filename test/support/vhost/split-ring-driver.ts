/**
 * The driver side of one split virtqueue of a FrontendSession, for tests: writes descriptors
 * (direct chains or through an indirect table), publishes heads on the available ring, and reads
 * the used ring. All addresses are guest-physical; the session's memory is the guest RAM.
 */
import { DescFlags } from 'vfio-user-ts';
import type { FrontendMemory, FrontendSession, SessionQueue } from 'vfio-user-ts/vhost-user-frontend';

export interface DriverBuffer {
  readonly gpa: number;
  readonly length: number;
  readonly writable?: boolean;
}

export interface UsedElement {
  readonly id: number;
  readonly len: number;
}

export class SplitRingDriver {
  readonly queue: SessionQueue;
  private readonly memory: FrontendMemory;
  /** Next free descriptor (the tests never reuse descriptors). */
  private nextDescriptor = 0;
  /** avail.idx as the driver will publish it next. */
  private availIdx = 0;
  private readonly pending: number[] = [];

  constructor(session: FrontendSession, index: number) {
    this.queue = session.queue(index);
    this.memory = session.memory;
  }

  /** Writes descriptor `i` of the table at `tableGpa`. */
  writeDescriptor(tableGpa: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const at = this.memory.gpaToOffset(tableGpa + 16 * i, 16);
    const view = this.memory.view;
    view.setUint32(at, addr % 2 ** 32, true);
    view.setUint32(at + 4, Math.floor(addr / 2 ** 32), true);
    view.setUint32(at + 8, len, true);
    view.setUint16(at + 12, flags, true);
    view.setUint16(at + 14, next, true);
  }

  private takeDescriptors(count: number): number {
    if (this.nextDescriptor + count > this.queue.size) throw new Error('the test ran out of descriptors');
    const first = this.nextDescriptor;
    this.nextDescriptor += count;
    return first;
  }

  /** A chain of consecutive descriptors in the ring's table; returns its head (not yet published). */
  addChain(buffers: readonly DriverBuffer[]): number {
    const head = this.takeDescriptors(buffers.length);
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      const flags = (last ? 0 : DescFlags.next) | (b.writable ? DescFlags.write : 0);
      this.writeDescriptor(this.queue.descGpa, head + i, b.gpa, b.length, flags, last ? 0 : head + i + 1);
    });
    this.pending.push(head);
    return head;
  }

  /** One descriptor pointing to an indirect table (allocated in guest memory) of `buffers`. */
  addIndirectChain(buffers: readonly DriverBuffer[]): number {
    const table = this.memory.alloc(16 * buffers.length, 16);
    buffers.forEach((b, i) => {
      const last = i === buffers.length - 1;
      const flags = (last ? 0 : DescFlags.next) | (b.writable ? DescFlags.write : 0);
      this.writeDescriptor(table, i, b.gpa, b.length, flags, last ? 0 : i + 1);
    });
    const head = this.takeDescriptors(1);
    this.writeDescriptor(this.queue.descGpa, head, table, 16 * buffers.length, DescFlags.indirect, 0);
    this.pending.push(head);
    return head;
  }

  /** Puts the chains added since the last publish on the available ring and bumps avail.idx. */
  publish(): void {
    const view = this.memory.view;
    const avail = this.memory.gpaToOffset(this.queue.availGpa, 6 + 2 * this.queue.size);
    for (const head of this.pending) {
      view.setUint16(avail + 4 + 2 * (this.availIdx % this.queue.size), head, true);
      this.availIdx = (this.availIdx + 1) & 0xffff;
    }
    this.pending.length = 0;
    view.setUint16(avail + 2, this.availIdx, true);
  }

  /** used.idx as the device last published it. */
  usedIdx(): number {
    return this.memory.view.getUint16(this.memory.gpaToOffset(this.queue.usedGpa + 2, 2), true);
  }

  /** Used ring element `i` (mod the queue size). */
  usedElement(i: number): UsedElement {
    const at = this.memory.gpaToOffset(this.queue.usedGpa + 4 + 8 * (i % this.queue.size), 8);
    return { id: this.memory.view.getUint32(at, true), len: this.memory.view.getUint32(at + 4, true) };
  }

  /** Copies `bytes` into guest memory at a fresh allocation; returns its gpa. */
  place(bytes: Uint8Array, align = 16): number {
    const gpa = this.memory.alloc(bytes.length, align);
    this.memory.slice(gpa, bytes.length).set(bytes);
    return gpa;
  }
}
