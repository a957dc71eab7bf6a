/**
 * `zcnic device`: runs the virtio-net device behind a vhost-user socket until SIGINT/SIGTERM,
 * then prints the final stats as one JSON line (its last line of stdout) and exits 0.
 * Logs go to stderr; stats are readable while it runs through the control socket.
 */
import { parseArgs } from 'node:util';
import { VhostUserServer } from 'vfio-user-ts';
import { ControlServer, parseGeneratorOptions } from '../device/control-server.js';
import { GUEST_MEMORY_TRUNCATED, type DatapathMode } from '../device/datapath/messages.js';
import { DEFAULT_TAP, portNames, TAP_NAME, type PortName } from '../device/ports/port.js';
import { wireFdProblem } from '../device/ports/wire.js';
import { parseMac } from '../device/test-frame.js';
import { linearHeaderRefusals, type LinearHeaderRefusal } from '../device/transmit-queue.js';
import { VirtioNet } from '../device/virtio-net.js';
import { UsageError, integerOption } from './options.js';

export const deviceHelp = `Usage: zcnic device --socket PATH [options]
       zcnic device --connect PATH [options]

Runs zcnic's virtio-net device as a vhost-user backend listening on PATH (created mode 0600).
QEMU (-chardev socket,path=PATH -netdev vhost-user,...) or DPDK's net_virtio_user connect to it.
With --connect the roles of the sockets are reversed: the frontend listens (QEMU
-chardev socket,path=PATH,server=on,wait=off) and the device connects to it, retrying while the
socket is absent or refusing and connecting again whenever the frontend goes away.
Runs until SIGINT or SIGTERM, then prints the final stats as one JSON line on stdout and exits 0.

Options:
  --socket PATH        vhost-user socket to listen on (this or --connect is required)
  --connect PATH       connect to a frontend listening on PATH instead (client mode)
  --control PATH       control socket (newline-delimited JSON: {"cmd":"stats"}, {"cmd":"resetCounters"},
                       {"cmd":"setPort",...}); default PATH.ctl (with --connect: PATH.ctl too)
  --port NAME          where frames go and come from: sink (count and drop, default), reflect
                       (transmitq frames come back on receiveq), gen (inject test frames), tap
                       (a host tap interface: frames written to it and read from it; needs root),
                       wire (another zcnic device, back to back through --wire-fds: what this
                       NIC's transmitq k sends arrives on the other's receiveq k, and the other
                       way round; a frame the other has no room for is dropped and counted)
  --tap NAME           the tap interface of --port tap, created if missing (default zc0)
  --wire-fds FD,...    this device's ends of the wire of port wire, one per queue pair (as many
                       as --queues), inherited fds: each an end of a unix SOCK_SEQPACKET socket
                       pair whose other end the other device got for the same queue pair, e.g.
                       --wire-fds 3,4. Needed to choose port wire, here or by setPort later
  --gen-size N         generated frame length in bytes, 60..65535 (default 64)
  --gen-count N        frames to generate per queue pair, 0 = no limit (default 0)
  --gen-pps N          frames per second per queue pair, 0 = as fast as buffers allow (default 0)
  --pcap FILE          write every frame, both directions, to FILE (pcap, readable by tshark)
  --state FILE         commit the transmitq's counters and verification progress to FILE with
                       every burst, and continue from it when started again (after a SIGKILL):
                       a frame is counted once across restarts (one queue pair; delete FILE to
                       start from zero)
  --queues N           queue pairs offered (default 1)
  --workers N          datapath worker threads (default 1; pair k runs on worker k mod N)
  --verify             check every transmitted test frame (docs/test-frame.md): byte pattern,
                       loss, duplicates, order; counts in stats.verification
  --require-linear-header=stall|complete-empty
                       emulate a NIC that needs the packet headers in the first buffer with the
                       virtio-net header (seed 000's ConnectX-4 Lx); other chains are not sent
                       and count as chainShapes.linearHeaderViolations. stall: the refused chain
                       completes and the transmit queue takes no more chains (the NIC's send
                       queue in error after an error CQE; the guest's netdev watchdog reports a
                       transmit timeout) until strict mode is left through the control socket;
                       complete-empty: refused chains complete with length 0 and the queue goes
                       on (a silent drop the driver cannot see)
  --ring-reset         offer VIRTIO_F_RING_RESET, which virtio_net's AF_XDP zero-copy bind needs
                       (it resets the queue pair). QEMU forwards no queue reset to a vhost-user
                       backend: the device sees it in the ring (used.idx rewritten to 0) and
                       starts that queue over; frames in flight then are dropped (counted), and
                       a ring resize (ethtool -G) is never seen. Off by default for that reason
  --split-ring-only    withhold VIRTIO_F_RING_PACKED. It is offered by default: a frontend takes it
                       only when asked (QEMU's virtio-net-pci packed=on, DPDK virtio-user's
                       packed_vq=1), and the stats then say "layout":"packed" for each queue.
                       No inflight region (INFLIGHT_SHMFD) and no --state with packed rings
  --no-in-order        withhold VIRTIO_F_IN_ORDER. It is offered by default (the device completes
                       chains in the order they were made available anyway): a frontend takes
                       it when it can (DPDK virtio-user by default, in_order=0 declines; QEMU's
                       virtio-net-pci in_order=on), and a transmitq then marks each burst used
                       with one used element, the last chain's. The receiveq writes one per
                       chain (each buffer needs its length)
  --access-platform    offer VIRTIO_F_ACCESS_PLATFORM (with the BACKEND_REQ protocol feature QEMU
                       then requires), for QEMU's iommu_platform=on without a vIOMMU: the
                       guest's driver uses the DMA API, addresses stay guest-physical
  --tso                offer HOST_TSO4, HOST_TSO6, HOST_ECN and HOST_USO: the guest sends TCP and
                       UDP frames of up to 64 KiB with a virtio-net GSO header; the device checks
                       the header against the frame (each mismatch is an error kind, the frame
                       dropped) and cuts the frame into MSS-sized wire frames for the pcap,
                       verification and the port; counts in stats.gso. QEMU 7.2 and 10 pass
                       HOST_USO on to no guest (a vhost-user netdev has no has_uso), so a guest
                       under QEMU sends UDP GSO as separate datagrams
  --guest-tso          offer GUEST_TSO4, GUEST_TSO6 and GUEST_ECN: port tap asks its host kernel for
                       GSO frames (TUNSETOFFLOAD TSO4/TSO6/ECN, as the driver negotiated) and
                       hands them to the driver whole, up to 64 KiB over mergeable buffers;
                       counts in stats.rxGso. QEMU handles the guest's control queue itself: a
                       guest turning these offloads off (XDP attach, ethtool -K) is never seen
                       here, so start QEMU with ctrl_guest_offloads=off (zcnic run does)
  --poll               busy-poll the rings (highest rate, one core stays busy) instead of
                       sleeping on the driver's kicks
  --mac MAC            the NIC's MAC, the destination of generated frames (default 52:54:00:12:34:56)
  -v, --verbose        log every vhost-user message
  -h, --help           this text
`;

export async function deviceCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      connect: { type: 'string' },
      control: { type: 'string' },
      port: { type: 'string', default: 'sink' },
      tap: { type: 'string', default: DEFAULT_TAP },
      'wire-fds': { type: 'string' },
      'gen-size': { type: 'string', default: '64' },
      'gen-count': { type: 'string', default: '0' },
      'gen-pps': { type: 'string', default: '0' },
      pcap: { type: 'string' },
      state: { type: 'string' },
      queues: { type: 'string', default: '1' },
      workers: { type: 'string', default: '1' },
      poll: { type: 'boolean', default: false },
      verify: { type: 'boolean', default: false },
      'ring-reset': { type: 'boolean', default: false },
      'split-ring-only': { type: 'boolean', default: false },
      'no-in-order': { type: 'boolean', default: false },
      'access-platform': { type: 'boolean', default: false },
      tso: { type: 'boolean', default: false },
      'guest-tso': { type: 'boolean', default: false },
      'require-linear-header': { type: 'string' },
      mac: { type: 'string', default: '52:54:00:12:34:56' },
      verbose: { type: 'boolean', short: 'v', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(deviceHelp);
    return 0;
  }
  if (values.socket && values.connect) throw new UsageError('give --socket PATH or --connect PATH, not both');
  const socketPath = values.socket ?? values.connect;
  if (!socketPath) throw new UsageError('--socket PATH (or --connect PATH) is required');
  if (!portNames.includes(values.port as PortName)) throw new UsageError(`--port must be one of ${portNames.join(', ')}, not ${values.port}`);
  if (!TAP_NAME.test(values.tap)) throw new UsageError(`--tap must be an interface name (1..15 of [A-Za-z0-9_.-]), not ${values.tap}`);
  parseMac(values.mac);
  const gen = parseGeneratorOptions(
    { size: integerOption('--gen-size', values['gen-size']), count: integerOption('--gen-count', values['gen-count']), pps: integerOption('--gen-pps', values['gen-pps']) },
    { size: 64, count: 0, pps: 0 },
  );
  if (typeof gen === 'string') throw new UsageError(gen.replace(/^gen\./, '--gen-'));
  const queuePairs = integerOption('--queues', values.queues);
  if (queuePairs < 1 || queuePairs > 128) throw new UsageError('--queues must be 1..128');
  const workers = integerOption('--workers', values.workers);
  if (workers < 1) throw new UsageError('--workers must be at least 1');
  const wireFds = values['wire-fds'] === undefined ? undefined : parseWireFds(values['wire-fds'], queuePairs);
  if (values.port === 'wire' && wireFds === undefined) throw new UsageError('--port wire needs --wire-fds (the ends of the wire, one per queue pair)');
  if (values.state && queuePairs !== 1) throw new UsageError('--state works with one queue pair (--queues 1)');
  const refusal = values['require-linear-header'];
  if (refusal !== undefined && !linearHeaderRefusals.includes(refusal as LinearHeaderRefusal)) {
    throw new UsageError(`--require-linear-header must be one of ${linearHeaderRefusals.join(', ')}, not ${refusal}`);
  }
  const mode: DatapathMode = values.poll ? 'poll' : 'kick';
  const log = (line: string): void => void process.stderr.write(`zcnic device: ${line}\n`);

  let server: VhostUserServer | null = null;
  const firstSeen = new Set<string>();
  let failure: string | null = null;
  const device = await VirtioNet.create({
    queuePairs,
    workers,
    mode,
    port: { port: values.port as PortName, gen, mac: values.mac, tap: values.tap, ...(wireFds ? { wireFds } : {}) },
    pcapPath: values.pcap ?? null,
    verify: values.verify,
    ringReset: values['ring-reset'],
    splitRingOnly: values['split-ring-only'],
    inOrder: !values['no-in-order'],
    accessPlatform: values['access-platform'],
    tso: values.tso,
    guestTso: values['guest-tso'],
    statePath: values.state ?? null,
    onQueueError: (queue, kind, detail, fatal) => {
      if (kind === GUEST_MEMORY_TRUNCATED) {
        // Guest memory that shrank under the device cannot be trusted again: the frontend goes,
        // and the disconnect's line (one per frontend) carries the context.
        device.markNeedsReset();
        server?.signalVringError(queue);
        server?.disconnect(`queue ${queue}: ${kind}: ${detail} (device needs reset)`);
        return;
      }
      // One line per kind of error and queue; the counters carry the rest.
      const key = `${queue}:${kind}`;
      if (!firstSeen.has(key)) {
        firstSeen.add(key);
        log(`queue ${queue}: ${kind}: ${detail}${fatal ? ' (queue stopped, device needs reset)' : ''}`);
      }
      if (fatal) {
        device.markNeedsReset();
        server?.signalVringError(queue);
      }
    },
    onFailure: (reason) => {
      failure = reason;
      log(reason);
      process.kill(process.pid, 'SIGTERM');
    },
  });
  if (refusal !== undefined) await device.setTxPolicy({ requireLinearHeader: true, linearHeaderRefusal: refusal as LinearHeaderRefusal, zeroCopyMap: null });
  const vhost = new VhostUserServer({
    ...(values.connect ? { connectPath: values.connect } : { socketPath }),
    device,
    log,
    trace: values.verbose,
  });
  server = vhost;
  device.protocolErrorSource = () => vhost.protocolErrorCounts();
  const control = await ControlServer.listen(values.control ?? `${socketPath}.ctl`, device);
  log(`${vhost.description} (${queuePairs} queue pair${queuePairs > 1 ? 's' : ''}, port ${values.port}, ${mode} mode)`);

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  await control.close();
  const stats = device.stats();
  await device.close();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  return failure ? 1 : 0;
}

/**
 * The fds of --wire-fds: one per queue pair, each an open unix SOCK_SEQPACKET socket this process
 * inherited (not stdin, stdout or stderr, no fd twice).
 */
export function parseWireFds(text: string, queuePairs: number): number[] {
  const fds = text.split(',').map((part) => {
    if (!/^\d+$/.test(part)) throw new UsageError(`--wire-fds takes fd numbers separated by commas, not ${JSON.stringify(text)}`);
    return Number(part);
  });
  if (fds.length !== queuePairs) throw new UsageError(`--wire-fds gives ${fds.length} fd${fds.length > 1 ? 's' : ''} for ${queuePairs} queue pair${queuePairs > 1 ? 's' : ''} (--queues): one per queue pair`);
  for (const fd of fds) {
    if (fd < 3 || fd > 0x7fffffff) throw new UsageError(`--wire-fds: fd ${fd} cannot be an end of a wire (stdin, stdout and stderr stay what they are)`);
    if (fds.indexOf(fd) !== fds.lastIndexOf(fd)) throw new UsageError(`--wire-fds: fd ${fd} is given twice`);
    const problem = wireFdProblem(fd);
    if (problem !== null) throw new UsageError(`--wire-fds: ${problem}`);
  }
  return fds;
}
