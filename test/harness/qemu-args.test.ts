import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kernelCmdline, qemuArgs, type QemuOptions } from '../../harness/qemu.js';

const base: QemuOptions = {
  kernel: 'img/vmlinuz',
  initramfs: 'img/initramfs.img',
  accel: 'tcg',
  smp: 2,
  memMiB: 512,
  ktapPath: 'run/ktap.log',
};

/** The value following `flag`, for flags that occur once. */
function after(args: string[], flag: string): string {
  const i = args.indexOf(flag);
  assert.ok(i >= 0, `${flag} missing`);
  return args[i + 1] ?? '';
}

/** Every value given to a repeated flag (-device, -chardev). */
function all(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

test('TCG: multi-threaded TCG, cpu max, a socket per vCPU, shared memfd RAM sized like -m, no ACPI', () => {
  const a = qemuArgs(base);
  assert.is(after(a, '-accel'), 'tcg,thread=multi');
  assert.is(after(a, '-cpu'), 'max');
  assert.is(after(a, '-smp'), '2,sockets=2');
  assert.is(after(a, '-m'), '512M');
  assert.is(after(a, '-object'), 'memory-backend-memfd,id=mem,size=512M,share=on');
  assert.is(after(a, '-machine'), 'memory-backend=mem,acpi=off');
  assert.ok(a.includes('-nographic') && a.includes('-no-reboot'));
  assert.is(after(a, '-kernel'), 'img/vmlinuz');
  assert.is(after(a, '-initrd'), 'img/initramfs.img');
});

test('KVM keeps MSI-X', () => {
  const a = qemuArgs({ ...base, accel: 'kvm', vhostUserSocket: 's.sock' });
  assert.is(after(a, '-accel'), 'kvm');
  for (const d of all(a, '-device')) assert.not.match(d, /vectors=0/);
});

test('vhost-user NIC under TCG uses INTx (vectors=0)', () => {
  const a = qemuArgs({ ...base, vhostUserSocket: 'dev.sock', mac: '02:00:00:00:00:02' });
  assert.ok(all(a, '-chardev').includes('socket,id=vhost0,path=dev.sock'));
  assert.is(after(a, '-netdev'), 'vhost-user,id=n0,chardev=vhost0');
  const nic = all(a, '-device').find((d) => d.startsWith('virtio-net-pci'));
  assert.ok(nic);
  assert.match(nic, /netdev=n0/);
  assert.match(nic, /mac=02:00:00:00:00:02/);
  assert.match(nic, /vectors=0/);
  assert.not.match(nic, /mq=on/);
  assert.not.ok(a.includes('-nic'));
});

test('a QEMU that runs MSI-X under TCG (10.0) keeps MSI-X there: no vectors=0 anywhere', () => {
  const a = qemuArgs({ ...base, vhostUserSocket: 'dev.sock', queues: 4, msixUnderTcg: true });
  assert.is(after(a, '-accel'), 'tcg,thread=multi');
  for (const d of all(a, '-device')) assert.not.match(d, /vectors=0/);
  assert.match(all(a, '-device').find((d) => d.startsWith('virtio-net-pci'))!, /vectors=10/);
});

test('several queues: mq=on and queues=N; 2N+2 MSI-X vectors under KVM', () => {
  const tcg = qemuArgs({ ...base, vhostUserSocket: 'd.sock', queues: 4 });
  assert.is(after(tcg, '-netdev'), 'vhost-user,id=n0,chardev=vhost0,queues=4');
  const nicTcg = all(tcg, '-device').find((d) => d.startsWith('virtio-net-pci')) ?? '';
  assert.match(nicTcg, /mq=on/);
  assert.match(nicTcg, /vectors=0/);
  const kvm = qemuArgs({ ...base, accel: 'kvm', vhostUserSocket: 'd.sock', queues: 4 });
  const nicKvm = all(kvm, '-device').find((d) => d.startsWith('virtio-net-pci')) ?? '';
  assert.match(nicKvm, /mq=on/);
  assert.match(nicKvm, /vectors=10/);
});

test('no device socket: no NIC at all (not QEMU default user networking)', () => {
  const a = qemuArgs(base);
  assert.is(after(a, '-nic'), 'none');
  assert.not.ok(a.includes('-netdev'));
});

test('KTAP port: virtio-serial with a named port, file or listening socket', () => {
  const a = qemuArgs(base);
  assert.ok(all(a, '-device').includes('virtio-serial-pci,vectors=0'));
  assert.ok(all(a, '-chardev').includes('file,id=ktap0,path=run/ktap.log'));
  assert.ok(all(a, '-device').includes('virtserialport,chardev=ktap0,name=org.zcnic.ktap'));
  const s = qemuArgs({ ...base, ktapPath: 'run/ktap.sock', ktapChardev: 'socket' });
  assert.ok(all(s, '-chardev').includes('socket,id=ktap0,path=run/ktap.sock,server=on,wait=off'));
  const k = qemuArgs({ ...base, accel: 'kvm' });
  assert.ok(all(k, '-device').includes('virtio-serial-pci'));
});

test('commas in paths are doubled in -chardev values', () => {
  const a = qemuArgs({ ...base, ktapPath: 'a,b/ktap', vhostUserSocket: 'x,y.sock' });
  assert.ok(all(a, '-chardev').includes('file,id=ktap0,path=a,,b/ktap'));
  assert.ok(all(a, '-chardev').includes('socket,id=vhost0,path=x,,y.sock'));
});

test('console: stdio by default, a file with consoleLog', () => {
  assert.not.ok(qemuArgs(base).includes('-serial'));
  const a = qemuArgs({ ...base, consoleLog: 'run/console.log' });
  assert.ok(all(a, '-chardev').includes('file,id=con0,path=run/console.log'));
  assert.is(after(a, '-serial'), 'chardev:con0');
  assert.is(after(a, '-monitor'), 'none');
});

test('kernel command line', () => {
  assert.is(after(qemuArgs(base), '-append'), 'console=ttyS0 quiet panic=-1 cryptomgr.notests acpi=off');
  assert.is(
    kernelCmdline({ suite: ['smoke', 'xsk'], testTimeoutSec: 30, appendCmdline: ' zcnic.shell=1 ' }),
    'console=ttyS0 quiet panic=-1 cryptomgr.notests acpi=off zcnic.suite=smoke,xsk zcnic.timeout=30 zcnic.shell=1',
  );
  assert.is(kernelCmdline({ suite: 'smoke' }), 'console=ttyS0 quiet panic=-1 cryptomgr.notests acpi=off zcnic.suite=smoke');
});

test('bad options are refused', () => {
  assert.throws(() => qemuArgs({ ...base, smp: 0 }), /smp/);
  assert.throws(() => qemuArgs({ ...base, memMiB: 1.5 }), /memMiB/);
  assert.throws(() => qemuArgs({ ...base, queues: 2 }), /vhostUserSocket/);
  assert.throws(() => qemuArgs({ ...base, vhostUserSocket: 's', queues: 0 }), /queues/);
  assert.throws(() => qemuArgs({ ...base, mac: '02:00:00:00:00' }), /MAC/);
});

test('fixedGuestOffloads (--guest-tso): ctrl_guest_offloads=off, so the guest cannot turn offloads off behind the device', () => {
  const nic = (o: Partial<QemuOptions>) => all(qemuArgs({ ...base, vhostUserSocket: 's.sock', ...o }), '-device').find((d) => d.startsWith('virtio-net-pci'))!;
  assert.match(nic({ fixedGuestOffloads: true }), ',ctrl_guest_offloads=off');
  assert.not.match(nic({}), 'ctrl_guest_offloads');
});

test('packedRing (--packed-ring): packed=on on the NIC, nothing of it otherwise', () => {
  const nic = (o: Partial<QemuOptions>) => all(qemuArgs({ ...base, vhostUserSocket: 's.sock', ...o }), '-device').find((d) => d.startsWith('virtio-net-pci'))!;
  assert.match(nic({ packedRing: true }), ',packed=on');
  assert.not.match(nic({}), 'packed');
});

test('inOrder (--in-order): in_order=on on the NIC, nothing of it otherwise', () => {
  const nic = (o: Partial<QemuOptions>) => all(qemuArgs({ ...base, vhostUserSocket: 's.sock', ...o }), '-device').find((d) => d.startsWith('virtio-net-pci'))!;
  assert.match(nic({ inOrder: true }), ',in_order=on');
  assert.not.match(nic({}), 'in_order');
});

test('accessPlatform: the NIC modern-only with iommu_platform=on; nothing of it otherwise', () => {
  const nic = (o: Partial<QemuOptions>) => all(qemuArgs({ ...base, vhostUserSocket: 's.sock', ...o }), '-device').find((d) => d.startsWith('virtio-net-pci'))!;
  assert.match(nic({ accessPlatform: true }), ',iommu_platform=on,disable-legacy=on');
  assert.not.match(nic({}), 'iommu_platform');
});

test('two NICs: a vhost-user chardev and netdev each, told apart by MAC', () => {
  const a = qemuArgs({
    ...base,
    queues: 2,
    nics: [
      { kind: 'vhost-user', socket: 'a.sock', mac: '52:54:00:12:34:56' },
      { kind: 'vhost-user', socket: 'b.sock', mac: '52:54:00:12:34:57' },
    ],
  });
  assert.equal(all(a, '-chardev').slice(0, 2), ['socket,id=vhost0,path=a.sock', 'socket,id=vhost1,path=b.sock']);
  assert.equal(all(a, '-netdev'), ['vhost-user,id=n0,chardev=vhost0,queues=2', 'vhost-user,id=n1,chardev=vhost1,queues=2']);
  const nics = all(a, '-device').filter((d) => d.startsWith('virtio-net-pci'));
  assert.is(nics.length, 2);
  assert.match(nics[1]!, /netdev=n1,mac=52:54:00:12:34:57,mq=on/);
  assert.throws(() => qemuArgs({ ...base, vhostUserSocket: 'x', nics: [] }), /not both/);
  assert.throws(() => qemuArgs({ ...base, nics: [{ kind: 'tap', ifname: 't', mac: 'nope' }] }), /MAC/);
});

test("the reference NICs: QEMU's own virtio-net on existing taps, without vhost", () => {
  const a = qemuArgs({ ...base, nics: [{ kind: 'tap', ifname: 'zrt1n0', mac: '52:54:00:12:34:56' }] });
  assert.equal(all(a, '-netdev'), ['tap,id=n0,ifname=zrt1n0,script=no,downscript=no,vhost=off']);
  assert.not.ok(all(a, '-chardev').some((c) => c.includes('vhost0')));
});

test("hostRoot: the host's / read-only as 9p tag hostroot", () => {
  const a = qemuArgs({ ...base, hostRoot: true });
  assert.equal(all(a, '-fsdev'), ['local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap']);
  assert.ok(all(a, '-device').includes('virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,vectors=0'));
  assert.not.ok(qemuArgs(base).includes('-fsdev'));
});

test.run();
