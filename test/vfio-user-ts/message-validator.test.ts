// Tests of validateMessage: every rule, one case each (plus the valid neighbour of each limit).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { inflightMessage, MAX_MEM_REGIONS, Request, sys, validateMessage, type RawMessage, type Validated, type VhostUserMessage } from 'vfio-user-ts';

const limits = { queueCount: 4, maxRegions: MAX_MEM_REGIONS };

// Real fds to attach (the validator only counts them; it never touches them). Closed in test.after.
let fdA = -1;
let fdB = -1;
test.before(() => {
  fdA = sys.eventfdCreate(0, true);
  fdB = sys.eventfdCreate(0, true);
});
test.after(() => {
  sys.close(fdA);
  sys.close(fdB);
});

/** A payload built from little-endian u32 words. */
function words(...values: number[]): Uint8Array {
  const bytes = new Uint8Array(4 * values.length);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setUint32(4 * i, v >>> 0, true));
  return bytes;
}

/** A u64 payload from (low, high) words. */
const u64 = (low: number, high = 0) => words(low, high);

function validate(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = []): Validated {
  const raw: RawMessage = { request, flags: 1, payload, fds };
  return validateMessage(raw, limits);
}

function ok(result: Validated): VhostUserMessage {
  if (!result.ok) assert.unreachable(`expected a valid message, got: ${result.error}`);
  return (result as { ok: true; message: VhostUserMessage }).message;
}

function refused(result: Validated, ...fragments: (string | RegExp)[]): void {
  assert.not.ok(result.ok, 'expected the message to be refused');
  const error = (result as { ok: false; error: string }).error;
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(error.includes(f), `error "${error}" should mention "${f}"`);
    else assert.match(error, f);
  }
}

/** A SET_MEM_TABLE payload with `count` well-formed regions (header says `declared`). */
function memTable(count: number, declared = count, fields?: (i: number) => [number, number, number, number, number, number, number, number]): Uint8Array {
  const regionWords: number[] = [];
  for (let i = 0; i < count; i++) {
    // gpa, size, uva, mmap offset as (low, high) pairs
    regionWords.push(...(fields?.(i) ?? [0x100000 * (i + 1), 0, 0x100000, 0, 0x1000 * (i + 1), 0x7f00, 0, 0]));
  }
  return words(declared, 0, ...regionWords);
}

// ---- requests without payload ----

test('an empty request passes without payload and fds', () => {
  for (const request of [Request.getFeatures, Request.setOwner, Request.resetOwner, Request.getProtocolFeatures, Request.getQueueNum, Request.getStatus, Request.resetDevice]) {
    assert.equal(ok(validate(request)), { kind: 'empty', request });
  }
});

test('an empty request with a payload is refused', () => {
  refused(validate(Request.getFeatures, u64(0)), 'getFeatures', 'payload is 8 bytes, expected 0');
});

test('an empty request with an fd is refused', () => {
  refused(validate(Request.setOwner, new Uint8Array(0), [fdA]), 'setOwner', 'came with 1 file descriptors, expected 0');
});

// ---- u64 requests ----

test('a u64 request decodes values up to 2^53 - 1', () => {
  assert.equal(ok(validate(Request.setStatus, u64(0x40000000, 1))), { kind: 'u64', request: Request.setStatus, value: 0x140000000 });
  assert.equal(ok(validate(Request.sendRarp, u64(0xffffffff, 0x1fffff))), { kind: 'u64', request: Request.sendRarp, value: 2 ** 53 - 1 });
});

test('SET_FEATURES and SET_PROTOCOL_FEATURES decode the whole feature word, all 64 bits', () => {
  assert.equal(ok(validate(Request.setFeatures, u64(0x40000000, 1))), { kind: 'features', request: Request.setFeatures, value: 0x140000000n });
  // HOST_USO (56), GUEST_USO4/6 (54, 55) and VERSION_1 (32): beyond a double's 53 bits.
  assert.equal(ok(validate(Request.setFeatures, u64(0, 0x01c00001))), { kind: 'features', request: Request.setFeatures, value: (1n << 56n) | (1n << 55n) | (1n << 54n) | (1n << 32n) });
  assert.equal(ok(validate(Request.setProtocolFeatures, u64(0xffffffff, 0xffffffff))), { kind: 'features', request: Request.setProtocolFeatures, value: (1n << 64n) - 1n });
});

test('a u64 request of the wrong size is refused', () => {
  refused(validate(Request.setFeatures, words(1)), 'payload is 4 bytes, expected 8');
  refused(validate(Request.setStatus, words(1, 0, 0)), 'payload is 12 bytes, expected 8');
});

test('a u64 request with an fd is refused', () => {
  refused(validate(Request.setFeatures, u64(1), [fdA]), 'came with 1 file descriptors, expected 0');
});

test('a u64 at or above 2^53 is refused (feature words excepted)', () => {
  refused(validate(Request.netSetMtu, u64(0, 0x200000)), '2^53');
  refused(validate(Request.setStatus, u64(0, 0x80000000)), '2^53');
});

test('NET_SET_MTU must be in 68..65535', () => {
  refused(validate(Request.netSetMtu, u64(67)), 'MTU 67 is outside 68..65535');
  refused(validate(Request.netSetMtu, u64(65536)), 'MTU 65536 is outside 68..65535');
  assert.equal(ok(validate(Request.netSetMtu, u64(68))), { kind: 'u64', request: Request.netSetMtu, value: 68 });
  assert.equal(ok(validate(Request.netSetMtu, u64(65535))), { kind: 'u64', request: Request.netSetMtu, value: 65535 });
});

// ---- vring state requests ----

test('a vring state request decodes index and number', () => {
  assert.equal(ok(validate(Request.setVringNum, words(3, 256))), { kind: 'vringState', request: Request.setVringNum, index: 3, num: 256 });
  assert.equal(ok(validate(Request.getVringBase, words(0, 0))), { kind: 'vringState', request: Request.getVringBase, index: 0, num: 0 });
});

test('a vring state request of the wrong size is refused', () => {
  refused(validate(Request.setVringBase, words(0)), 'payload is 4 bytes, expected 8');
});

test('a vring state request with an fd is refused', () => {
  refused(validate(Request.setVringEnable, words(0, 1), [fdA]), 'came with 1 file descriptors, expected 0');
});

test('a vring index out of range is refused', () => {
  refused(validate(Request.setVringNum, words(4, 256)), 'vring index 4 is out of range (the device has 4 queues)');
  refused(validate(Request.getVringBase, words(0xffffffff, 0)), 'out of range');
});

test('a ring size of 0 is refused', () => {
  refused(validate(Request.setVringNum, words(0, 0)), 'queue size 0 is not a power of two');
});

test('a ring size of 3 is refused', () => {
  refused(validate(Request.setVringNum, words(0, 3)), 'queue size 3 is not a power of two');
});

test('a ring size of 65536 is refused, 32768 and 1 are fine', () => {
  refused(validate(Request.setVringNum, words(0, 65536)), 'queue size 65536');
  ok(validate(Request.setVringNum, words(0, 32768)));
  ok(validate(Request.setVringNum, words(0, 1)));
});

test('a vring base above 0xffff is refused', () => {
  refused(validate(Request.setVringBase, words(1, 0x10000)), 'base 65536 is beyond');
  assert.equal(ok(validate(Request.setVringBase, words(1, 0xffff))), { kind: 'vringState', request: Request.setVringBase, index: 1, num: 0xffff });
  // A packed ring's base: avail slot 3 with wrap counter 1, used slot 2 with wrap counter 0.
  assert.equal(ok(validateMessage({ request: Request.setVringBase, flags: 1, payload: words(1, 0x00028003), fds: [] }, { ...limits, packedRing: true })), { kind: 'vringState', request: Request.setVringBase, index: 1, num: 0x00028003 });
});

test('SET_VRING_ENABLE 2 is refused', () => {
  refused(validate(Request.setVringEnable, words(0, 2)), 'enable must be 0 or 1, not 2');
  ok(validate(Request.setVringEnable, words(0, 0)));
  ok(validate(Request.setVringEnable, words(0, 1)));
});

// ---- SET_VRING_KICK / CALL / ERR ----

test('a vring fd request takes one fd', () => {
  assert.equal(ok(validate(Request.setVringKick, u64(2), [fdA])), { kind: 'vringFd', request: Request.setVringKick, index: 2, fd: fdA });
});

test('a vring fd request with the NOFD bit takes no fd (fd -1)', () => {
  assert.equal(ok(validate(Request.setVringCall, u64(0x103))), { kind: 'vringFd', request: Request.setVringCall, index: 3, fd: -1 });
});

test('a vring fd request of the wrong size is refused', () => {
  refused(validate(Request.setVringKick, words(0), [fdA]), 'payload is 4 bytes, expected 8');
});

test('a vring fd request without fd and without NOFD is refused', () => {
  refused(validate(Request.setVringKick, u64(0)), 'came with 0 file descriptors, expected 1');
});

test('a vring fd request with NOFD and an fd is refused', () => {
  refused(validate(Request.setVringErr, u64(0x100), [fdA]), 'came with 1 file descriptors, expected 0');
});

test('a vring fd request with two fds is refused', () => {
  refused(validate(Request.setVringCall, u64(1), [fdA, fdB]), 'came with 2 file descriptors, expected 1');
});

test('unknown bits in the low word of a vring fd request are refused', () => {
  refused(validate(Request.setVringKick, u64(0x200), [fdA]), 'unknown bits set');
});

test('unknown bits in the high word of a vring fd request are refused', () => {
  refused(validate(Request.setVringCall, u64(0, 1), [fdA]), 'unknown bits set in 0x100000000');
});

test('a vring fd request with an index out of range is refused', () => {
  refused(validate(Request.setVringKick, u64(4), [fdA]), 'vring index 4 is out of range');
});

// ---- SET_MEM_TABLE ----

test('SET_MEM_TABLE decodes its regions and their fds', () => {
  const message = ok(validate(Request.setMemTable, memTable(2), [fdA, fdB]));
  assert.equal(message, {
    kind: 'memTable',
    regions: [
      { guestPhysAddr: 0x100000, size: 0x100000, userAddr: 0x7f0000001000, mmapOffset: 0, fd: fdA },
      { guestPhysAddr: 0x200000, size: 0x100000, userAddr: 0x7f0000002000, mmapOffset: 0, fd: fdB },
    ],
  });
});

test('SET_MEM_TABLE shorter than the region count is refused', () => {
  refused(validate(Request.setMemTable, words(1)), 'payload is 4 bytes, shorter than the region count');
});

test('SET_MEM_TABLE with 0 regions is refused', () => {
  refused(validate(Request.setMemTable, words(0, 0)), 'memory table has no regions');
});

test('SET_MEM_TABLE with 9 regions is refused, 8 are fine', () => {
  refused(validate(Request.setMemTable, memTable(9), new Array<number>(9).fill(fdA)), 'memory table has 9 regions, at most 8 allowed');
  ok(validate(Request.setMemTable, memTable(8), new Array<number>(8).fill(fdA)));
});

test('SET_MEM_TABLE whose size does not match its count is refused', () => {
  refused(validate(Request.setMemTable, memTable(1, 2), [fdA, fdB]), 'payload is 40 bytes, expected 72');
});

test('SET_MEM_TABLE with too few fds is refused', () => {
  refused(validate(Request.setMemTable, memTable(2), [fdA]), 'came with 1 file descriptors, expected 2');
});

test('SET_MEM_TABLE with too many fds is refused', () => {
  refused(validate(Request.setMemTable, memTable(1), [fdA, fdB]), 'came with 2 file descriptors, expected 1');
});

test('SET_MEM_TABLE with a field at or above 2^53 is refused', () => {
  refused(
    validate(Request.setMemTable, memTable(1, 1, () => [0, 0, 0x1000, 0, 0, 0x200000, 0, 0]), [fdA]),
    'region 0 has a field at or above 2^53',
  );
});

// ---- SET_VRING_ADDR ----

/** SET_VRING_ADDR payload: index, flags, desc, used, avail, log (u64s as low/high). */
const vringAddr = (index: number, desc: [number, number], used: [number, number], avail: [number, number]) =>
  words(index, 1, ...desc, ...used, ...avail, 0, 0);

test('SET_VRING_ADDR decodes index, flags and the three addresses', () => {
  assert.equal(ok(validate(Request.setVringAddr, vringAddr(1, [0x1000, 0x7f00], [0x3000, 0x7f00], [0x2000, 0x7f00]))), {
    kind: 'vringAddr',
    index: 1,
    flags: 1,
    desc: 0x7f0000001000,
    used: 0x7f0000003000,
    avail: 0x7f0000002000,
  });
});

test('SET_VRING_ADDR of the wrong size is refused', () => {
  refused(validate(Request.setVringAddr, words(0, 0, 0, 0)), 'payload is 16 bytes, expected 40');
});

test('SET_VRING_ADDR with an fd is refused', () => {
  refused(validate(Request.setVringAddr, vringAddr(0, [0, 0], [0, 0], [0, 0]), [fdA]), 'came with 1 file descriptors, expected 0');
});

test('SET_VRING_ADDR with an index out of range is refused', () => {
  refused(validate(Request.setVringAddr, vringAddr(4, [0, 0], [0, 0], [0, 0])), 'vring index 4 is out of range');
});

test('SET_VRING_ADDR with an address at or above 2^53 is refused', () => {
  refused(validate(Request.setVringAddr, vringAddr(0, [0, 0], [0, 0x200000], [0, 0])), 'a ring address is at or above 2^53');
});

// ---- fd-only requests ----

test('SET_BACKEND_REQ_FD and SET_LOG_FD take exactly one fd and no payload', () => {
  assert.equal(ok(validate(Request.setBackendReqFd, new Uint8Array(0), [fdA])), { kind: 'fd', request: Request.setBackendReqFd, fd: fdA });
  assert.equal(ok(validate(Request.setLogFd, new Uint8Array(0), [fdB])), { kind: 'fd', request: Request.setLogFd, fd: fdB });
});

test('SET_LOG_FD without an fd is refused', () => {
  refused(validate(Request.setLogFd), 'came with 0 file descriptors, expected 1');
});

test('SET_BACKEND_REQ_FD with a payload is refused', () => {
  refused(validate(Request.setBackendReqFd, u64(0), [fdA]), 'payload is 8 bytes, expected 0');
});

test('SET_LOG_BASE is recognised with 16 bytes and one fd', () => {
  assert.equal(ok(validate(Request.setLogBase, words(0, 0, 0, 0), [fdA])), { kind: 'logBase', fd: fdA });
});

test('SET_LOG_BASE of the wrong size or without fd is refused', () => {
  refused(validate(Request.setLogBase, u64(0), [fdA]), 'payload is 8 bytes, expected 16');
  refused(validate(Request.setLogBase, words(0, 0, 0, 0)), 'came with 0 file descriptors, expected 1');
});

// ---- unknown requests ----

test('an unknown request is refused', () => {
  refused(validate(0), 'request 0: unknown or unsupported request');
  refused(validate(99, u64(0)), 'request 99: unknown or unsupported request');
  refused(validate(0xffffffff), 'unknown or unsupported request');
});

test('a known request the backend does not support is refused (SET_CONFIG)', () => {
  refused(validate(25, new Uint8Array(12)), 'unknown or unsupported request');
});

// ---- GET_INFLIGHT_FD / SET_INFLIGHT_FD ---------------------------------------------------------

/** The 24-byte inflight payload: mmap_size, mmap_offset (u64), num_queues, queue_size (u16), padding. */
function inflight(mmapSize: number, mmapOffset: number, queues: number, queueSize: number): Uint8Array {
  return inflightMessage({ mmapSize, mmapOffset, queues, queueSize });
}

test('GET_INFLIGHT_FD: 24 bytes, no fd, queue count within the device, power-of-two size', () => {
  assert.equal(ok(validate(Request.getInflightFd, inflight(0, 0, 2, 256))), { kind: 'getInflight', queues: 2, queueSize: 256 });
  assert.equal(ok(validate(Request.getInflightFd, inflight(0, 0, 4, 32768))), { kind: 'getInflight', queues: 4, queueSize: 32768 });
  refused(validate(Request.getInflightFd, inflight(0, 0, 2, 256).subarray(0, 20)), 'payload is 20 bytes, expected 24');
  refused(validate(Request.getInflightFd, inflight(0, 0, 2, 256), [fdA]), 'came with 1 file descriptors, expected 0');
  refused(validate(Request.getInflightFd, inflight(0, 0, 0, 256)), '0 queues');
  refused(validate(Request.getInflightFd, inflight(0, 0, 5, 256)), '5 queues, the device has 1..4');
  refused(validate(Request.getInflightFd, inflight(0, 0, 2, 0)), 'queue size 0');
  refused(validate(Request.getInflightFd, inflight(0, 0, 2, 300)), 'queue size 300');
});

test('SET_INFLIGHT_FD: one fd, a region large enough for its queues, page-aligned offset', () => {
  const need = 2 * 4160;
  assert.equal(ok(validate(Request.setInflightFd, inflight(need, 0, 2, 256), [fdA])), {
    kind: 'setInflight',
    mmapSize: need,
    mmapOffset: 0,
    queues: 2,
    queueSize: 256,
    fd: fdA,
  });
  ok(validate(Request.setInflightFd, inflight(need + 4096, 8192, 2, 256), [fdA]));
  refused(validate(Request.setInflightFd, inflight(need, 0, 2, 256)), 'came with 0 file descriptors, expected 1');
  refused(validate(Request.setInflightFd, inflight(need, 0, 2, 256), [fdA, fdB]), 'came with 2 file descriptors, expected 1');
  refused(validate(Request.setInflightFd, new Uint8Array(16), [fdA]), 'payload is 16 bytes, expected 24');
  refused(validate(Request.setInflightFd, inflight(need - 1, 0, 2, 256), [fdA]), 'smaller than 8320');
  refused(validate(Request.setInflightFd, inflight(need, 100, 2, 256), [fdA]), 'not page aligned');
  refused(validate(Request.setInflightFd, inflight(need, 0, 9, 256), [fdA]), '9 queues');
  refused(validate(Request.setInflightFd, inflight(need, 0, 2, 3), [fdA]), 'queue size 3');
  refused(validate(Request.setInflightFd, inflight(2 ** 60, 0, 2, 256), [fdA]), '2^53');
});

test.run();
