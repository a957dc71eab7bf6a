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
}

const KTAP_PORT_NAME = 'org.zcnic.ktap';

/** QEMU's -chardev/-netdev option syntax doubles commas inside values. */
function optValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export function kernelCmdline(o: Pick<QemuOptions, 'suite' | 'testTimeoutSec' | 'appendCmdline'>): string {
  const parts = ['console=ttyS0', 'quiet', 'panic=-1'];
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
  if (o.queues !== undefined && o.queues > 1 && o.vhostUserSocket === undefined) {
    throw new RangeError('queues > 1 needs a vhostUserSocket');
  }
  if (o.mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(o.mac)) throw new RangeError(`bad MAC address: ${o.mac}`);
  if (o.ktapPath === '') throw new RangeError('ktapPath is empty');
}

export function qemuArgs(o: QemuOptions): string[] {
  validate(o);
  const tcg = o.accel === 'tcg';
  const queues = o.queues ?? 1;
  const args: string[] = [];

  // -cpu max: everything TCG can emulate; under KVM it is the host's CPU (the -cpu host
  // model is refused by some nested hypervisors, max is not).
  args.push('-accel', tcg ? 'tcg,thread=multi' : 'kvm', '-cpu', 'max');
  args.push('-smp', String(o.smp), '-m', `${o.memMiB}M`);
  // Guest RAM the vhost-user backend can mmap: a shared memfd.
  args.push('-object', `memory-backend-memfd,id=mem,size=${o.memMiB}M,share=on`, '-machine', 'memory-backend=mem');
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
  if (o.vhostUserSocket !== undefined) {
    const reconnect = o.vhostUserReconnect !== undefined ? `,reconnect=${o.vhostUserReconnect}` : '';
    args.push('-chardev', `socket,id=vhost0,path=${optValue(o.vhostUserSocket)}${reconnect}`);
    args.push('-netdev', `vhost-user,id=n0,chardev=vhost0${queues > 1 ? `,queues=${queues}` : ''}`);
    let dev = 'virtio-net-pci,netdev=n0';
    if (o.mac !== undefined) dev += `,mac=${o.mac}`;
    if (queues > 1) dev += ',mq=on';
    // A transitional device cannot have ACCESS_PLATFORM (legacy drivers know no such bit).
    if (o.accessPlatform === true) dev += ',iommu_platform=on,disable-legacy=on';
    dev += useIntx ? ',vectors=0' : queues > 1 ? `,vectors=${2 * queues + 2}` : '';
    // No option ROM: nothing boots from the network, and it spares the iPXE dependency.
    dev += ',romfile=';
    // An explicit MTU makes QEMU negotiate VIRTIO_NET_F_MTU (and send NET_SET_MTU to the device).
    dev += ',host_mtu=1500';
    args.push('-device', dev);
  } else {
    // Without this QEMU adds a default NIC with user-mode networking.
    args.push('-nic', 'none');
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

export interface LaunchOptions {
  /** QEMU binary (default qemu-system-x86_64 from PATH). */
  qemu?: string;
  /** Passed through to execa (stdio, signal, timeout, ...). */
  execa?: Options;
}

/** Start QEMU; the caller owns the process (await it, or kill it by its pid). */
export function launchQemu(o: QemuOptions, l: LaunchOptions = {}): ResultPromise {
  return execa(l.qemu ?? 'qemu-system-x86_64', qemuArgs(o), { reject: false, ...l.execa });
}
