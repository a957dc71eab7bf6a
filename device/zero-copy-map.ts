/**
 * The zero-copy proof: which guest-physical pages hold a user buffer (an AF_XDP umem, a
 * MSG_ZEROCOPY send buffer) and at which offset of that buffer. A transmitted frame whose first
 * byte lies in one of those pages, at the start of one of the buffer's frames, was handed to the
 * device from the user's memory itself: nothing copied it. A copy (AF_PACKET, a copying send)
 * lives in kernel memory instead and is never found here.
 */

export interface ZeroCopyMapSpec {
  /** Size of one frame (chunk) of the user buffer; frames start at multiples of it. */
  readonly frameSize: number;
  /** Offset in a frame where the packet starts (XDP headroom; 0 for xdpsock's TX frames). */
  readonly headroom: number;
  /** [offset in the user buffer, guest-physical address] of each page of the buffer. */
  readonly pages: ReadonlyArray<readonly [number, number]>;
}

const PAGE_SIZE = 4096;

export class ZeroCopyMap {
  /** Page addresses, sorted, with the buffer offset of each. */
  private readonly pageAddr: Float64Array;
  private readonly pageOffset: Float64Array;
  private readonly frameSize: number;
  private readonly headroom: number;

  constructor(spec: ZeroCopyMapSpec) {
    const sorted = [...spec.pages].sort((a, b) => a[1] - b[1]);
    this.pageAddr = Float64Array.from(sorted, (p) => p[1]);
    this.pageOffset = Float64Array.from(sorted, (p) => p[0]);
    this.frameSize = spec.frameSize;
    this.headroom = spec.headroom;
  }

  /** The index of the user buffer's page holding `gpa`, or -1. */
  pageOf(gpa: number): number {
    const addr = this.pageAddr;
    let lo = 0;
    let hi = addr.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const page = addr[mid]!;
      if (gpa < page) hi = mid - 1;
      else if (gpa >= page + PAGE_SIZE) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** Whether the `length` bytes at `gpa` are exactly a frame of the user buffer (one page). */
  holds(gpa: number, length: number): boolean {
    const index = this.pageOf(gpa);
    if (index < 0) return false;
    const inPage = gpa - this.pageAddr[index]!;
    const inFrame = (this.pageOffset[index]! + inPage) % this.frameSize;
    return inFrame === this.headroom && inFrame + length <= this.frameSize && inPage + length <= PAGE_SIZE;
  }
}

/**
 * Whether the `length` bytes at `gpa` lie in one page of the user buffer, anywhere in it: the
 * proof for paged frames (MSG_ZEROCOPY), whose headers are in kernel memory and whose payload
 * buffers are the user's pages (skb frags), at whatever offset the send started.
 */
export function holdsPayload(map: ZeroCopyMap, gpa: number, length: number): boolean {
  return map.pageOf(gpa) >= 0 && (gpa % PAGE_SIZE) + length <= PAGE_SIZE;
}

/** Checks a map from the control API; a string says what is wrong with it. */
export function checkZeroCopyMap(value: unknown): ZeroCopyMapSpec | string {
  if (typeof value !== 'object' || value === null) return 'the map is an object {frameSize, headroom, pages: [[offset, gpa], ...]}';
  const { frameSize, headroom = 0, pages } = value as Record<string, unknown>;
  if (typeof frameSize !== 'number' || !Number.isSafeInteger(frameSize) || frameSize <= 0) return 'frameSize must be a positive integer';
  if (typeof headroom !== 'number' || !Number.isSafeInteger(headroom) || headroom < 0 || headroom >= frameSize) return 'headroom must be an integer in 0..frameSize-1';
  if (!Array.isArray(pages) || pages.length === 0) return 'pages must be a non-empty array of [offset, gpa]';
  for (const p of pages) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) return 'each page is [offset, gpa] with non-negative integers';
    if ((p[1] as number) % PAGE_SIZE !== 0) return `page address 0x${(p[1] as number).toString(16)} is not page-aligned`;
  }
  return { frameSize, headroom, pages: pages as Array<[number, number]> };
}
