// KVM-or-TCG: the decision logic with fake probes and caches, the cache file, and the boot
// probe's reading of QEMU against small shell scripts standing in for QEMU (no real boot here:
// the real probe is run by hand, see the module header).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AccelError,
  accelMachineKey,
  chooseAccel,
  fileProbeCache,
  kvmBootProbe,
  kvmFailureReason,
  kvmProbeArgs,
  qemuVersion,
  type CachedProbe,
  type ProbeCache,
  type ProbeResult,
} from '../../harness/accel.js';

const KEY = 'host=h hostKernel=6.1 qemu=7.2 guestKernel=abc';

function memCache(initial: CachedProbe | null = null): ProbeCache & { writes: CachedProbe[] } {
  let stored = initial;
  const writes: CachedProbe[] = [];
  return {
    writes,
    read: async () => stored,
    write: async (p) => {
      writes.push(p);
      stored = p;
    },
  };
}

function fakeProbe(result: ProbeResult): (() => Promise<ProbeResult>) & { calls: number } {
  const f = Object.assign(
    async () => {
      f.calls++;
      return result;
    },
    { calls: 0 },
  );
  return f;
}

const WORKS: ProbeResult = { ok: true, reason: 'guest init ran under KVM, boot.ms=640', durationMs: 1500 };
const BROKEN: ProbeResult = { ok: false, reason: 'QEMU: KVM internal error. Suberror: 1', durationMs: 2700 };
const now = () => new Date('2026-11-22T01:02:03.000Z');
const cached = (ok: boolean, machineKey = KEY): CachedProbe => ({
  machineKey,
  ok,
  reason: ok ? WORKS.reason : BROKEN.reason,
  durationMs: 1000,
  probedAt: '2026-11-21T00:00:00.000Z',
});

test('tcg: no probe, no cache', async () => {
  const probe = fakeProbe(WORKS);
  const cache = memCache(cached(true));
  const c = await chooseAccel({ requested: 'tcg', probe, cache, machineKey: KEY });
  assert.equal(c, { accel: 'tcg', reason: 'TCG requested (--accel tcg)', probed: false });
  assert.is(probe.calls, 0);
  assert.is(cache.writes.length, 0);
});

test('auto, no cache: a working probe gives KVM and is cached', async () => {
  const probe = fakeProbe(WORKS);
  const cache = memCache();
  const c = await chooseAccel({ requested: 'auto', probe, cache, machineKey: KEY, now });
  assert.equal(c, { accel: 'kvm', reason: 'KVM works: guest init ran under KVM, boot.ms=640', probed: true });
  assert.equal(cache.writes, [{ machineKey: KEY, ok: true, reason: WORKS.reason, durationMs: 1500, probedAt: '2026-11-22T01:02:03.000Z' }]);
});

test('auto, no cache: a failing probe falls back to TCG with the reason, cached', async () => {
  const cache = memCache();
  const c = await chooseAccel({ requested: 'auto', probe: fakeProbe(BROKEN), cache, machineKey: KEY });
  assert.equal(c, { accel: 'tcg', reason: 'KVM unusable: QEMU: KVM internal error. Suberror: 1', probed: true });
  assert.is(cache.writes[0]?.ok, false);
});

test('auto, cache hit: no probe, either way', async () => {
  for (const ok of [true, false]) {
    const probe = fakeProbe(ok ? BROKEN : WORKS);
    const c = await chooseAccel({ requested: 'auto', probe, cache: memCache(cached(ok)), machineKey: KEY });
    assert.is(probe.calls, 0);
    assert.is(c.probed, false);
    assert.is(c.accel, ok ? 'kvm' : 'tcg');
    assert.match(c.reason, /probed 2026-11-21T00:00:00.000Z, cached/);
    assert.match(c.reason, ok ? /^KVM works: guest init ran/ : /^KVM unusable: QEMU: KVM internal error/);
  }
});

test('auto: an entry for another machine key is a miss', async () => {
  const probe = fakeProbe(BROKEN);
  const c = await chooseAccel({ requested: 'auto', probe, cache: memCache(cached(true, 'host=other')), machineKey: KEY });
  assert.is(probe.calls, 1);
  assert.is(c.accel, 'tcg');
});

test('kvm forced: a cached success is trusted, a cached failure is probed again', async () => {
  const p1 = fakeProbe(BROKEN);
  const c1 = await chooseAccel({ requested: 'kvm', probe: p1, cache: memCache(cached(true)), machineKey: KEY });
  assert.is(p1.calls, 0);
  assert.is(c1.accel, 'kvm');

  const p2 = fakeProbe(WORKS);
  const cache = memCache(cached(false));
  const c2 = await chooseAccel({ requested: 'kvm', probe: p2, cache, machineKey: KEY });
  assert.is(p2.calls, 1);
  assert.equal(c2, { accel: 'kvm', reason: `KVM works: ${WORKS.reason}`, probed: true });
  assert.is(cache.writes[0]?.ok, true);
});

test('kvm forced: a failing probe is an AccelError carrying the reason (and is cached)', async () => {
  const cache = memCache();
  try {
    await chooseAccel({ requested: 'kvm', probe: fakeProbe(BROKEN), cache, machineKey: KEY });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, AccelError);
    assert.is((err as Error).message, '--accel kvm: KVM does not work on this machine: QEMU: KVM internal error. Suberror: 1');
  }
  assert.is(cache.writes.length, 1);
});

test('verdicts marked not cacheable, throwing probes and broken caches', async () => {
  const cache = memCache();
  const c = await chooseAccel({
    requested: 'auto',
    probe: fakeProbe({ ok: false, reason: 'no /dev/kvm', durationMs: 0, cacheable: false }),
    cache,
    machineKey: KEY,
  });
  assert.is(c.accel, 'tcg');
  assert.is(cache.writes.length, 0);

  const throwing = await chooseAccel({
    requested: 'auto',
    probe: async () => {
      throw new Error('boom');
    },
    cache,
    machineKey: KEY,
  });
  assert.equal(throwing, { accel: 'tcg', reason: 'KVM unusable: the KVM probe failed: boom', probed: true });
  assert.is(cache.writes.length, 0);

  const broken: ProbeCache = {
    read: async () => {
      throw new Error('EIO');
    },
    write: async () => {
      throw new Error('ENOSPC');
    },
  };
  const c3 = await chooseAccel({ requested: 'auto', probe: fakeProbe(WORKS), cache: broken, machineKey: KEY });
  assert.is(c3.accel, 'kvm');
});

test('unknown request is refused', async () => {
  try {
    await chooseAccel({ requested: 'hvf' as 'auto', probe: fakeProbe(WORKS), cache: memCache(), machineKey: KEY });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, AccelError);
  }
});

// ------------------------------------------------------------------ cache file and probe

const tmp = mkdtempSync(join(tmpdir(), 'zcnic-accel-test-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('file cache: round trip, one file per key, junk reads as a miss', async () => {
  const dir = join(tmp, 'cache', 'accel');
  const a = fileProbeCache(dir, KEY);
  const b = fileProbeCache(dir, `${KEY}x`);
  assert.is(await a.read(), null);
  assert.not.equal(a.path, b.path);
  await a.write(cached(true));
  assert.equal(await a.read(), cached(true));
  assert.is(await b.read(), null);
  writeFileSync(a.path, '{"machineKey": 1}');
  assert.is(await a.read(), null);
  writeFileSync(a.path, 'not json');
  assert.is(await a.read(), null);
});

test('probe command line: KVM, cpu max, no NIC, a minimal suite, console on stdio', () => {
  const a = kvmProbeArgs({ kernel: 'K', initramfs: 'I' });
  const after = (f: string) => a[a.indexOf(f) + 1];
  assert.is(after('-accel'), 'kvm');
  assert.is(after('-cpu'), 'max');
  assert.ok(a.includes('-nodefaults'), 'no default NIC or other devices');
  assert.not.ok(a.some((x) => x.includes('virtio-net')));
  assert.is(after('-serial'), 'stdio');
  assert.is(after('-kernel'), 'K');
  assert.is(after('-initrd'), 'I');
  assert.match(after('-append') ?? '', /console=ttyS0 .*zcnic\.suite=/);
});

test('kvmFailureReason: summarises what QEMU printed (real stderr from a kvm_pvm host)', () => {
  const stderr = [
    'KVM internal error. Suberror: 1',
    'extra data[0]: 0x0000000000000001',
    'emulation failure',
    'RAX=0000000003586ba0 RBX=0000000004794b64 RCX=0000000000000000 RDX=0000000000000005',
    'RIP=0000000004752e69 RFL=00000097 [--S-APC] CPL=0 II=0 A20=1 SMM=0 HLT=0',
    'Code=fa 0f 77 c4 4e 8d 54 35 00 41 b8 01 00 00 00 41 89 17 89 f0 <c4> 42 69 f7 c0 4c 89 d2 c1 e8 04',
  ].join('\n');
  assert.is(kvmFailureReason(stderr), 'QEMU: KVM internal error. Suberror: 1 (emulation failure at RIP=0000000004752e69 code c4 42 69 f7 c0)');
  assert.is(kvmFailureReason('qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000\n'), 'QEMU: failed to set MSR 0x10a to 0x2000000');
});

/** A stand-in for qemu-system-x86_64: a shell script. */
function fakeQemu(name: string, body: string): string {
  const path = join(tmp, name);
  writeFileSync(path, `#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 9.9.9 (fake)"; exit 0; }\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}
const devKvm = join(tmp, 'kvm');
writeFileSync(devKvm, '');
const probeWith = (qemu: string, timeoutMs = 5000) => kvmBootProbe({ kernel: 'K', initramfs: 'I', qemu, devKvm, timeoutMs })();

test('probe: success once the guest init printed its boot metric; QEMU is stopped', async () => {
  const pidFile = join(tmp, 'ok.pid');
  const qemu = fakeQemu(
    'qemu-ok',
    `echo $$ > ${pidFile}\necho 'zcnic-init: [0.52] kernel 6.12, suites accel-probe'\necho 'KTAP version 1'\necho '1..1'\necho '# zcnic-metric boot.ms=640'\nexec sleep 30`,
  );
  const r = await probeWith(qemu);
  assert.equal([r.ok, r.reason], [true, 'guest init ran under KVM, boot.ms=640']);
  assert.ok(r.durationMs < 4000, `took ${r.durationMs} ms`);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  assert.throws(() => process.kill(pid, 0), 'the fake QEMU must be gone');
});

test('probe: the boot metric without the init marker is not enough', async () => {
  const r = await probeWith(fakeQemu('qemu-nomarker', `echo '# zcnic-metric boot.ms=640'\nexit 1`));
  assert.is(r.ok, false);
  assert.match(r.reason, /QEMU exited \(status 1\) before the guest's init ran/);
});

test('probe: "KVM internal error" stops at once, with details', async () => {
  const qemu = fakeQemu(
    'qemu-pvm',
    `echo 'KVM internal error. Suberror: 1' >&2\necho 'emulation failure' >&2\necho 'RIP=0000000004752e69 RFL=00000097' >&2\nexec sleep 30`,
  );
  const r = await probeWith(qemu);
  assert.is(r.ok, false);
  assert.is(r.reason, 'QEMU: KVM internal error. Suberror: 1 (emulation failure at RIP=0000000004752e69)');
  assert.ok(r.durationMs < 3000, `took ${r.durationMs} ms`);
  assert.not.equal(r.cacheable, false);
});

test('probe: timeout, guest panic, missing QEMU, missing /dev/kvm', async () => {
  const slow = await probeWith(fakeQemu('qemu-slow', `echo 'zcnic-init: [0.5] kernel'\nexec sleep 30`), 300);
  assert.is(slow.ok, false);
  assert.match(slow.reason, /^timeout: the guest's init started but printed no KTAP after 0.3 s \(console: zcnic-init: \[0.5\] kernel\)$/);

  const panic = await probeWith(fakeQemu('qemu-panic', `echo '[ 0.9] Kernel panic - not syncing: VFS: Unable to mount root fs'\nexit 0`));
  assert.is(panic.reason, 'guest kernel panicked: Kernel panic - not syncing: VFS: Unable to mount root fs');

  const missing = await probeWith(join(tmp, 'no-such-qemu'));
  assert.is(missing.ok, false);
  assert.match(missing.reason, /^cannot run .*no-such-qemu: spawn .* ENOENT$/);
  assert.is(missing.cacheable, false);

  const noKvm = await kvmBootProbe({ kernel: 'K', initramfs: 'I', devKvm: join(tmp, 'no-kvm') })();
  assert.is(noKvm.ok, false);
  assert.match(noKvm.reason, /^no .*no-kvm \(no KVM module loaded/);
  assert.is(noKvm.cacheable, false);
});

test('machine key: host, host kernel, QEMU version, guest kernel', async () => {
  const qemu = fakeQemu('qemu-version', 'exit 0');
  assert.is(await qemuVersion(qemu), 'QEMU emulator version 9.9.9 (fake)');
  const key = await accelMachineKey({ guestKernelKey: 'e7f2', qemu });
  assert.match(key, /^host=\S+ hostKernel=\S+ qemu=QEMU emulator version 9.9.9 \(fake\) guestKernel=e7f2$/);
  assert.match(await qemuVersion(join(tmp, 'nope')), /^unavailable/);
});

test.run();
