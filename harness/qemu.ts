// QEMU command lines for a zcnic guest, and a launcher.
//
// Facts this encodes (measured on the project's machines, see the platform notes):
//  - vhost-user needs guest RAM in a shared memfd the backend can map;
//  - QEMU 7.2 under TCG segfaults with vhost-user + MSI-X (vhost_net_start ->
//    msix_set_vector_notifiers), so under TCG its PCI devices use INTx (vectors=0);
//    QEMU 10.0 does not (smoke+xdpsock passed with MSI-X under TCG), nor does KVM;
//  - several queue pairs need mq=on on the device and queues=N on the netdev, and
//    2N+2 MSI-X vectors (N rx + N tx + control + config).
import { execa, type Options, type ResultPromise } from 'execa';

export type Accel = 'kvm' | 'tcg';

export interface QemuOptions {
  kernel: string;
  initramfs: string;
  accel: Accel;
  smp: number;
  memMiB: number;
  /** The device: a vhost-user backend listening on this unix socket. No NIC without it. */
  vhostUserSocket?: string;
  /**
   * Reconnect to the vhost-user socket this many seconds after the backend went away
   * (`-chardev socket,...,reconnect=N`): a backend killed and started again gets the NIC back,
   * and the guest's link comes back up by itself. Default: no reconnect.
   */
  vhostUserReconnect?: number;
  /** Queue pairs of the NIC (default 1). */
  queues?: number;
  /** NIC MAC address (default: QEMU's 52:54:00:12:34:56). */
  mac?: string;
  /** Host side of the guest's KTAP port (org.zcnic.ktap): a file, or a unix socket (see ktapChardev). */
  ktapPath: string;
  /**
   * 'file' (default): QEMU writes KTAP into ktapPath.
   * 'socket': QEMU listens on ktapPath; the guest waits (up to 10 s) for a reader to
   * connect before it writes, then falls back to the console.
   */
  ktapChardev?: 'file' | 'socket';
  /** Suites to run (zcnic.suite=...); default: the guest's default (smoke). */
  suite?: string | readonly string[];
  /** Per-test timeout in the guest, seconds (zcnic.timeout=...). */
  testTimeoutSec?: number;
  /** Extra kernel command line, appended last. */
  appendCmdline?: string;
  /** Write the serial console here instead of QEMU's stdio. */
  consoleLog?: string;
  /** Firmware folders (-L) of a QEMU unpacked outside /usr (harness/qemu-binary.ts). */
  firmwareDirs?: readonly string[];
  /** This QEMU runs vhost-user with MSI-X under TCG (10.0 does; 7.2 segfaults, see the header). */
  msixUnderTcg?: boolean;
  /**
   * The NIC negotiates VIRTIO_F_ACCESS_PLATFORM (iommu_platform=on, no vIOMMU: addresses stay
   * guest-physical and QEMU sends no IOTLB messages; the backend must offer the bit, or QEMU
   * refuses the option), so virtio_net uses the DMA API, which its AF_XDP zero-copy needs
   * (virtqueue_dma_dev() is NULL without it).
   */
  accessPlatform?: boolean;
  /**
   * ctrl_guest_offloads=off: the guest cannot turn receive offloads off through the control
   * queue. QEMU serves that queue itself and tells a vhost-user backend nothing of
   * VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET (qemu_set_offload() finds no set_offload in the vhost-user
   * netdev), so a device offering GUEST_TSO would go on sending GSO frames to a guest that
   * switched them off (virtio_net does at every XDP attach, and drops them). Without the
   * feature, virtio_net refuses native XDP while GUEST_TSO/CSUM are on, and ethtool -K cannot
   * change them: the guest's offloads stay what it negotiated, which is what the device sees.
   */
  fixedGuestOffloads?: boolean;
  /**
   * packed=on: the NIC offers the guest VIRTIO_F_RING_PACKED, so its queues run on packed rings
   * when the backend offers it too (zcnic's device does unless --split-ring-only).
   */
  packedRing?: boolean;
  /**
   * in_order=on: the NIC offers the guest VIRTIO_F_IN_ORDER (QEMU 10.0 has the property, off by
   * default; 7.2 has none and refuses the option). zcnic's device offers it unless --no-in-order.
   */
  inOrder?: boolean;
  /**
   * Several NICs, each on its own backend, instead of the one NIC of `vhostUserSocket` (which
   * then must be absent); `queues` and `accessPlatform` apply to each.
   */
  nics?: readonly NicBackend[];
  /**
   * Share the host's root file system, read-only, as 9p tag `hostroot` (the guest's
   * zcnic.rootfs=host mounts it under an overlay): a full user space for the kernel's selftests.
   */
  hostRoot?: boolean;
  /**
   * QEMU's host_mtu for every NIC: QEMU then negotiates VIRTIO_NET_F_MTU and sends NET_SET_MTU
   * to a vhost-user device, and the guest can raise its MTU no higher. Absent: no F_MTU, and
   * virtio_net allows any MTU up to 65535, as on the NICs netdev's CI runs its selftests on
   * (which set 9000 for their multi-buffer XDP and GRO cases).
   */
  hostMtu?: number;
}

/**
 * What a NIC is attached to: a vhost-user backend (zcnic's device), or a host tap through QEMU's
 * own virtio-net (the reference; no /dev/vhost-net on these machines, so QEMU moves the frames).
 */
export type NicBackend =
  | { readonly kind: 'vhost-user'; readonly socket: string; readonly mac: string }
  | { readonly kind: 'tap'; readonly ifname: string; readonly mac: string };

const KTAP_PORT_NAME = 'org.zcnic.ktap';

/** QEMU's -chardev/-netdev option syntax doubles commas inside values. */
function optValue(v: string): string {
  return v.replace(/,/g, ',,');
}

/**
 * The kernel command line zcnic always gives. cryptomgr.notests: the kernel's self-tests of its
 * crypto algorithms, which none of the suites exercises, took 0.44 s of a 3.9 s boot of Debian's
 * 6.12 under TCG (medians of 3 and 4 boots, 3.94 -> 3.50 s). acpi=off: the machine has none
 * (NO_ACPI), and a kernel not told so looks for it and logs an "ACPI BIOS Error" on every boot.
 */
const BASE_CMDLINE: readonly string[] = ['console=ttyS0', 'quiet', 'panic=-1', 'cryptomgr.notests', 'acpi=off'];

export function kernelCmdline(o: Pick<QemuOptions, 'suite' | 'testTimeoutSec' | 'appendCmdline'>): string {
  const parts = [...BASE_CMDLINE];
  const suites = o.suite === undefined ? [] : typeof o.suite === 'string' ? [o.suite] : [...o.suite];
  if (suites.length > 0) parts.push(`zcnic.suite=${suites.join(',')}`);
  if (o.testTimeoutSec !== undefined) parts.push(`zcnic.timeout=${Math.ceil(o.testTimeoutSec)}`);
  if (o.appendCmdline !== undefined && o.appendCmdline.trim() !== '') parts.push(o.appendCmdline.trim());
  return parts.join(' ');
}

function validate(o: QemuOptions): void {
  const intIn = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  };
  intIn('smp', o.smp, 1, 256);
  intIn('memMiB', o.memMiB, 64, 1 << 20);
  if (o.queues !== undefined) intIn('queues', o.queues, 1, 64);
  if (o.vhostUserReconnect !== undefined) intIn('vhostUserReconnect', o.vhostUserReconnect, 1, 3600);
  if (o.queues !== undefined && o.queues > 1 && o.vhostUserSocket === undefined && (o.nics ?? []).length === 0) {
    throw new RangeError('queues > 1 needs a vhostUserSocket');
  }
  if (o.nics !== undefined && o.vhostUserSocket !== undefined) throw new RangeError('give nics or vhostUserSocket, not both');
  for (const mac of [o.mac, ...(o.nics ?? []).map((n) => n.mac)]) {
    if (mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw new RangeError(`bad MAC address: ${mac}`);
  }
  if (o.ktapPath === '') throw new RangeError('ktapPath is empty');
}

/**
 * The machine has no ACPI: the kernel's ACPI start (its AML interpreter, 0.12-0.15 s under TCG)
 * and routing each PCI device's INTx through ACPI link objects (0.18 s per device on 7.3) cost
 * more than a third of the kernel's boot. Without ACPI the kernel takes the CPUs from SeaBIOS's
 * MP table (one per socket, see -smp) and the PCI interrupts from its PIRQ table; the boot to
 * the first KTAP line went from 3.57 to 2.89 s on 7.3 (medians of 3) and from 3.35 to 3.07 s on
 * 6.12. Nothing can power the VM off then: the guest ends it by rebooting, which -no-reboot
 * turns into QEMU's exit.
 */
export const NO_ACPI = 'acpi=off';

export function qemuArgs(o: QemuOptions): string[] {
  validate(o);
  const tcg = o.accel === 'tcg';
  const args: string[] = [];

  // -cpu max: everything TCG can emulate; under KVM it is the host's CPU (the -cpu host
  // model is refused by some nested hypervisors, max is not). Under TCG, max without 5-level
  // paging or without ERMS booted no faster (3.08 s against 3.06 s, medians of 8; 3.05 s
  // against 3.00 s, medians of 4).
  args.push('-accel', tcg ? 'tcg,thread=multi' : 'kvm', '-cpu', 'max');
  // One CPU per socket: without ACPI the kernel counts CPUs in SeaBIOS's MP table, which lists
  // only the first CPU of each package (-smp 2 as two cores of one socket booted one CPU).
  args.push('-smp', `${o.smp},sockets=${o.smp}`, '-m', `${o.memMiB}M`);
  // Guest RAM the vhost-user backend can mmap: a shared memfd. No ACPI (see NO_ACPI).
  args.push('-object', `memory-backend-memfd,id=mem,size=${o.memMiB}M,share=on`, '-machine', `memory-backend=mem,${NO_ACPI}`);
  args.push('-nographic', '-no-reboot');
  for (const dir of o.firmwareDirs ?? []) args.push('-L', dir);
  args.push('-kernel', o.kernel, '-initrd', o.initramfs, '-append', kernelCmdline(o));

  if (o.consoleLog !== undefined) {
    // The serial console into a file; without a monitor nothing else wants stdio.
    args.push('-chardev', `file,id=con0,path=${optValue(o.consoleLog)}`, '-serial', 'chardev:con0', '-monitor', 'none');
  }

  // INTx under TCG for every virtio-pci device where QEMU needs it (see the header); MSI-X otherwise.
  const useIntx = tcg && o.msixUnderTcg !== true;
  const intx = useIntx ? ',vectors=0' : '';
  const nics: NicBackend[] =
    o.nics !== undefined ? [...o.nics] : o.vhostUserSocket !== undefined ? [{ kind: 'vhost-user', socket: o.vhostUserSocket, mac: o.mac ?? '' }] : [];
  nics.forEach((nic, i) => args.push(...nicArgs(o, nic, i, useIntx)));
  // Without a NIC QEMU adds a default one with user-mode networking.
  if (nics.length === 0) args.push('-nic', 'none');
  if (o.hostRoot === true) {
    // security_model=none: QEMU (root here) reads files as they are; multidevs=remap keeps inode
    // numbers unique across the host's file systems.
    args.push('-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap');
    args.push('-device', `virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot${intx}`);
  }

  const ktapChardev =
    (o.ktapChardev ?? 'file') === 'socket'
      ? `socket,id=ktap0,path=${optValue(o.ktapPath)},server=on,wait=off`
      : `file,id=ktap0,path=${optValue(o.ktapPath)}`;
  args.push('-device', `virtio-serial-pci${intx}`);
  args.push('-chardev', ktapChardev);
  args.push('-device', `virtserialport,chardev=ktap0,name=${KTAP_PORT_NAME}`);
  return args;
}

/** One NIC's -chardev/-netdev/-device arguments; NIC i is n<i> (its vhost-user chardev vhost<i>). */
function nicArgs(o: QemuOptions, nic: NicBackend, i: number, useIntx: boolean): string[] {
  const queues = o.queues ?? 1;
  const args: string[] = [];
  const mq = queues > 1 ? `,queues=${queues}` : '';
  if (nic.kind === 'vhost-user') {
    const reconnect = o.vhostUserReconnect !== undefined ? `,reconnect=${o.vhostUserReconnect}` : '';
    args.push('-chardev', `socket,id=vhost${i},path=${optValue(nic.socket)}${reconnect}`);
    args.push('-netdev', `vhost-user,id=n${i},chardev=vhost${i}${mq}`);
  } else {
    // The tap exists already (the harness made it, in the namespace QEMU runs in).
    args.push('-netdev', `tap,id=n${i},ifname=${optValue(nic.ifname)},script=no,downscript=no,vhost=off${mq}`);
  }
  let dev = `virtio-net-pci,netdev=n${i}`;
  if (nic.mac !== '') dev += `,mac=${nic.mac}`;
  if (queues > 1) dev += ',mq=on';
  // A transitional device cannot have ACCESS_PLATFORM (legacy drivers know no such bit).
  if (o.accessPlatform === true) dev += ',iommu_platform=on,disable-legacy=on';
  if (o.fixedGuestOffloads === true) dev += ',ctrl_guest_offloads=off';
  if (o.packedRing === true) dev += ',packed=on';
  if (o.inOrder === true) dev += ',in_order=on';
  dev += useIntx ? ',vectors=0' : queues > 1 ? `,vectors=${2 * queues + 2}` : '';
  // No option ROM: nothing boots from the network, and it spares the iPXE dependency.
  dev += ',romfile=';
  if (o.hostMtu !== undefined) dev += `,host_mtu=${o.hostMtu}`;
  args.push('-device', dev);
  return args;
}

export interface LaunchOptions {
  /** QEMU binary (default qemu-system-x86_64 from PATH). */
  qemu?: string;
  /** A command QEMU runs under, e.g. `ip netns exec NS` (it must exec QEMU: the pid is QEMU's). */
  prefix?: readonly string[];
  /** Passed through to execa (stdio, signal, timeout, ...). */
  execa?: Options;
}

/** Start QEMU; the caller owns the process (await it, or kill it by its pid). */
export function launchQemu(o: QemuOptions, l: LaunchOptions = {}): ResultPromise {
  const [file, ...args] = [...(l.prefix ?? []), l.qemu ?? 'qemu-system-x86_64', ...qemuArgs(o)] as [string, ...string[]];
  return execa(file, args, { reject: false, ...l.execa });
}
