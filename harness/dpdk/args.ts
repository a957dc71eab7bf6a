// Builds dpdk-testpmd's command line from typed options. Pure, so it is unit-testable and the
// exact command can be printed in error messages and bench reports.

/** frontend = net_virtio_user (the driver side); backend = net_vhost (the device side). */
export type TestpmdRole = 'frontend' | 'backend';
export type ForwardMode = 'txonly' | 'rxonly' | 'io' | 'macswap';

export interface TestpmdOptions {
  role: TestpmdRole;
  /** vhost-user socket: the backend creates it, the frontend connects to it. */
  socket: string;
  forwardMode: ForwardMode;
  /** Frame length for txonly (`--txpkts`), without the virtio-net header and CRC. */
  txPktLen?: number;
  /** Packets per burst (`--burst`); testpmd's default is 32. */
  burst?: number;
  /** Queue pairs: the vdev's `queues=` and `--rxq/--txq`. Default 1. */
  queues?: number;
  /** Ring sizes (`--rxd/--txd`); default: the PMD's. */
  rxd?: number;
  txd?: number;
  /**
   * CPU of the forwarding lcore. Defaults follow the measured layout: the backend forwards on
   * cpu 1, the frontend on cpu 0, so the two busy pollers never share a core.
   */
  fwdCpu?: number;
  /** CPU of the main lcore (idle in the command line loop); defaults to the other core. */
  mainCpu?: number;
  /** MiB of (non-huge) memory for EAL's `-m`. Default 1024. */
  memoryMb?: number;
  /** EAL `--file-prefix`; must be unique per running instance. Default: generated. */
  filePrefix?: string;
  /** Appended to the `--vdev` string, e.g. "mrg_rxbuf=0" or "packed_vq=1". */
  vdevArgs?: string;
  /** Extra EAL arguments (before `--`). */
  extraEalArgs?: readonly string[];
  /** Extra application arguments (after `--`). */
  extraArgs?: readonly string[];
}

function checkPositiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v <= 0)) {
    throw new RangeError(`testpmd option ${name} must be a positive integer, got ${v}`);
  }
}

function checkCpu(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`testpmd option ${name} must be a CPU number, got ${v}`);
  }
}

/** Default CPU layout (see TestpmdOptions.fwdCpu). */
export function defaultCpus(role: TestpmdRole): { fwdCpu: number; mainCpu: number } {
  return role === 'backend' ? { fwdCpu: 1, mainCpu: 0 } : { fwdCpu: 0, mainCpu: 1 };
}

/** argv for dpdk-testpmd (without the program name), interactive mode. */
export function buildTestpmdArgs(opts: TestpmdOptions, filePrefix: string): string[] {
  for (const [name, v] of [
    ['txPktLen', opts.txPktLen],
    ['burst', opts.burst],
    ['queues', opts.queues],
    ['rxd', opts.rxd],
    ['txd', opts.txd],
    ['memoryMb', opts.memoryMb],
  ] as const) {
    checkPositiveInt(name, v);
  }
  if (opts.socket.includes(',')) {
    // The vdev string is comma-separated key=value pairs; a comma would split the path.
    throw new RangeError(`socket path must not contain ',': ${opts.socket}`);
  }
  const cpus = defaultCpus(opts.role);
  const fwdCpu = opts.fwdCpu ?? cpus.fwdCpu;
  const mainCpu = opts.mainCpu ?? cpus.mainCpu;
  checkCpu('fwdCpu', fwdCpu);
  checkCpu('mainCpu', mainCpu);
  const queues = opts.queues ?? 1;

  const vdevParts =
    opts.role === 'frontend'
      ? [`net_virtio_user0`, `path=${opts.socket}`, `queues=${queues}`]
      : [`net_vhost0`, `iface=${opts.socket}`, `queues=${queues}`];
  if (opts.vdevArgs) vdevParts.push(opts.vdevArgs);

  const eal = [
    // lcore 0 is the main lcore, lcore 1 the only forwarding lcore; '@' pins each to a CPU.
    `--lcores=0@${mainCpu},1@${fwdCpu}`,
    '--no-huge',
    '-m',
    String(opts.memoryMb ?? 1024),
    '--no-pci',
    `--file-prefix=${filePrefix}`,
  ];
  // virtio-user shares its memory with the backend by fd; one segment file means one region
  // in SET_MEM_TABLE, which is what the measured command line used.
  if (opts.role === 'frontend') eal.push('--single-file-segments');
  eal.push('--vdev', vdevParts.join(','), ...(opts.extraEalArgs ?? []));

  const app = ['-i', `--forward-mode=${opts.forwardMode}`, '--nb-cores=1'];
  if (opts.txPktLen !== undefined) app.push(`--txpkts=${opts.txPktLen}`);
  if (opts.burst !== undefined) app.push(`--burst=${opts.burst}`);
  if (queues !== 1) app.push(`--rxq=${queues}`, `--txq=${queues}`);
  if (opts.rxd !== undefined) app.push(`--rxd=${opts.rxd}`);
  if (opts.txd !== undefined) app.push(`--txd=${opts.txd}`);
  app.push(...(opts.extraArgs ?? []));

  return [...eal, '--', ...app];
}
