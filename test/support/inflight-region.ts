/**
 * One queue's split inflight region as a test reads and writes it (as the frontend that keeps it
 * sees it, or to forge what a killed backend left behind), at the offsets the protocol package
 * defines (InflightSplit), so that no test spells the layout out again.
 */
import { InflightSplit } from 'vfio-user-ts';
import type { InflightArea } from '../../device/inflight-tracker.js';

export interface InflightHeader {
  readonly version: number;
  readonly descNum: number;
  readonly lastBatchHead: number;
  readonly usedIdx: number;
}

/** The u16 header field at `field`, one of InflightSplit's header offsets. */
type HeaderField = (typeof InflightSplit)['version' | 'descNum' | 'lastBatchHead' | 'usedIdx'];

function view(area: InflightArea): DataView {
  return new DataView(area.buffer, area.offset);
}

/** Where head `head`'s descriptor state starts in the queue's part. */
function descriptorAt(head: number): number {
  return InflightSplit.headerSize + InflightSplit.descSize * head;
}

export function inflightHeader(area: InflightArea): InflightHeader {
  const v = view(area);
  return {
    version: v.getUint16(InflightSplit.version, true),
    descNum: v.getUint16(InflightSplit.descNum, true),
    lastBatchHead: v.getUint16(InflightSplit.lastBatchHead, true),
    usedIdx: v.getUint16(InflightSplit.usedIdx, true),
  };
}

export function setInflightHeaderField(area: InflightArea, field: HeaderField, value: number): void {
  view(area).setUint16(field, value, true);
}

/** Head `head`'s inflight byte: 1 while the device has taken it and not completed it. */
export function inflightMark(area: InflightArea, head: number): number {
  return view(area).getUint8(descriptorAt(head) + InflightSplit.descInflight);
}

export function setInflightMark(area: InflightArea, head: number, value: number): void {
  view(area).setUint8(descriptorAt(head) + InflightSplit.descInflight, value);
}

/** Head `head`'s counter: the order in which the device took the heads still marked. */
export function inflightCounter(area: InflightArea, head: number): bigint {
  return view(area).getBigUint64(descriptorAt(head) + InflightSplit.descCounter, true);
}
