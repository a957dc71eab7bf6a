// One bench case = one backend (DPDK's vhost PMD or zcnic) facing the same DPDK virtio-user
// frontend, one forwarding core each. Rates come from the frontend's exact counters, read at the
// start and end of the measured window (after a warm-up), so both backends are measured by the
// same meter; the backend's own counters are recorded as a cross-check.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { Testpmd, type PortStats, type StatsSnapshot } from '../harness/dpdk/testpmd.js';
import type { DeviceStats } from '../harness/device-control.js';
import { contention, sampleCpu, type Contention } from './cpu-usage.js';
import { ZcnicDevice } from '../harness/device-process.js';
import { disturbed, rates } from './report.js';
import { copyShortfall, perFrameWork, sessionPlan, type CaseSpec, type Direction, type Peer, type SessionPlan, type SinkWork } from './plan.js';

export type { CaseSpec, Direction, Peer, SinkWork } from './plan.js';

export interface BenchSettings {
  warmupSec: number;
  seconds: number;
  /** dist/cli/zcnic.js */
  zcnicEntry: string;
  /** taskset CPU list for the zcnic process (the backend's forwarding core). */
  zcnicCpus: string | undefined;
  /** What zcnic's sink does with each transmitq frame (see plan.ts). */
  sinkWork: SinkWork;
  /** The frontend asks for packed rings (virtio-user packed_vq=1). */
  packedRing: boolean;
  /** The frontend takes VIRTIO_F_IN_ORDER (virtio-user's default in_order=1), or declines it (in_order=0). */
  inOrder: boolean;
  log: (msg: string) => void;
  verbose: boolean;
  /** Aborts waits when the bench is interrupted. */
  signal: AbortSignal | undefined;
}

/** A sleep that ends early (throwing) when the bench is interrupted. */
export function pause(settings: BenchSettings, seconds: number): Promise<void> {
  return sleep(seconds * 1000, undefined, settings.signal ? { signal: settings.signal } : {});
}

export interface Measurement {
  peer: Peer;
  direction: Direction;
  frameSize: number;
  /** Length of the measured window, from the frontend's stats timestamps. */
  seconds: number;
  /** Frontend packets (TX for transmitq, RX for receiveq) in the window. */
  packets: number;
  bytes: number;
  mpps: number;
  /** Ethernet frame bytes (no CRC, no virtio-net header) per second, in Gbit/s. */
  gbps: number;
  /** What the backend did per frame (see plan.ts perFrameWork). */
  work: string;
  /** The backend's own packet count over the same window, if it could be read. */
  peerPackets: number | null;
  /** Totals after both sides stopped (and the receiver drained): frontend vs backend. */
  finalFrontendPackets: number;
  finalPeerPackets: number | null;
  /** CPU taken by other processes / the hypervisor during the window, if procfs exists. */
  contention: Contention | null;
  notes: string[];
}

/** What a case needs from a backend, whichever it is. */
interface Backend {
  /** Starts the backend's side of the traffic (DPDK: `start`; zcnic serves from the start). */
  startTraffic(): Promise<void>;
  /** Stops it; returns the backend's final count if it is final now (DPDK), else null. */
  stopTraffic(): Promise<number | null>;
  /** The backend's counter for this direction. */
  packets(): Promise<number>;
  /** PID, for CPU accounting. */
  pid: number;
  /** Stops the process (idempotent); returns the final counter if known, and any problems. */
  close(): Promise<BackendEnd>;
}

interface BackendEnd {
  final: number | null;
  problems: string[];
  /** A copying sink that did not copy every frame: why (the measurement is then void). */
  notCopied?: string;
  /** Rings that ran otherwise than the bench asked (another layout, IN_ORDER or not): the measurement is then void. */
  wrongRings?: string;
}

/** How the device's rings ran otherwise than `layout` and `inOrder` ask, as a sentence; null when as asked. */
function ringMismatch(final: DeviceStats, layout: 'split' | 'packed', inOrder: boolean): string | null {
  const others = final.queues.filter((q) => q.layout !== layout);
  if (others.length > 0) return `asked for ${layout} rings, but queue(s) ${others.map((q) => `${q.index} ran ${q.layout}`).join(', ')}`;
  if (final.features.includes('IN_ORDER') !== inOrder) return `asked for ${inOrder ? '' : 'no '}IN_ORDER, negotiated ${final.features.join(' ')}`;
  return null;
}

/** virtio-user's --vdev arguments for the rings the bench asks for (none: split rings with IN_ORDER, its defaults). */
function frontendVdevArgs(settings: BenchSettings): string | undefined {
  const args = [...(settings.packedRing ? ['packed_vq=1'] : []), ...(settings.inOrder ? [] : ['in_order=0'])];
  return args.length === 0 ? undefined : args.join(',');
}

function frontendPackets(s: PortStats, d: Direction): number {
  return d === 'transmitq' ? s.txPackets : s.rxPackets;
}

function frontendBytes(s: PortStats, d: Direction): number {
  return d === 'transmitq' ? s.txBytes : s.rxBytes;
}

function port0(snap: StatsSnapshot): PortStats {
  const p = snap.ports.find((x) => x.port === 0);
  if (!p) throw new Error('testpmd reported no port 0');
  return p;
}

function outputLogger(
  settings: BenchSettings,
  tag: string,
): ((line: string, stream: 'stdout' | 'stderr') => void) | undefined {
  return settings.verbose ? (line, stream) => settings.log(`[${tag} ${stream}] ${line}`) : undefined;
}

async function startDpdkBackend(plan: NonNullable<SessionPlan['dpdk']>, socket: string, settings: BenchSettings): Promise<Testpmd> {
  return Testpmd.start({
    role: 'backend',
    socket,
    forwardMode: plan.mode,
    ...(plan.txPktLen !== undefined ? { txPktLen: plan.txPktLen } : {}),
    onOutput: outputLogger(settings, 'vhost'),
  });
}

function dpdkBackend(spec: CaseSpec, testpmd: Testpmd): Backend {
  const counter = async (): Promise<number> => {
    const s = await testpmd.portStats();
    return spec.direction === 'transmitq' ? s.rxPackets : s.txPackets;
  };
  let final: number | null = null;
  let closing: Promise<BackendEnd> | undefined;
  return {
    pid: testpmd.pid,
    startTraffic: () => testpmd.startForwarding(),
    stopTraffic: async () => {
      await testpmd.stopForwarding();
      final = await counter();
      return final;
    },
    packets: counter,
    close: () =>
      (closing ??= testpmd.stop().then((e) => ({
        final,
        problems:
          e.exitCode === 0 ? [] : [`DPDK backend exit: code ${e.exitCode} signal ${e.signal} (${e.endedBy})`],
      }))),
  };
}

async function startZcnic(plan: NonNullable<SessionPlan['zcnic']>, socket: string, settings: BenchSettings): Promise<ZcnicDevice> {
  return ZcnicDevice.start({
    entry: settings.zcnicEntry,
    socket,
    port: plan.port,
    ...(plan.genSize !== undefined ? { genSize: plan.genSize } : {}),
    verify: plan.verify,
    poll: true,
    cpus: settings.zcnicCpus,
    onOutput: outputLogger(settings, 'zcnic'),
  });
}

function zcnicBackend(spec: CaseSpec, device: ZcnicDevice, mustCopy: boolean, layout: 'split' | 'packed', inOrder: boolean): Backend {
  const pick = (s: DeviceStats): number =>
    spec.direction === 'transmitq' ? s.transmitq.frames : s.receiveq.frames;
  let closing: Promise<BackendEnd> | undefined;
  return {
    pid: device.pid,
    startTraffic: async () => undefined,
    // The generator has no stop command: it runs until the device exits.
    stopTraffic: async () => null,
    packets: async () => pick(await device.stats()),
    close: () =>
      (closing ??= device.stop().then((exit) => {
        const problems: string[] = [];
        if (exit.exitCode !== 0 || exit.endedBy !== 'request') {
          problems.push(`zcnic device exit: code ${exit.exitCode} signal ${exit.signal} (${exit.endedBy})`);
        }
        if (!exit.final) problems.push(`zcnic final stats missing: ${exit.finalError}`);
        // A copying sink proves it copied: every frame it took went through the verifier.
        const shortfall = mustCopy && exit.final ? copyShortfall(exit.final) : null;
        const wrongRings = exit.final ? ringMismatch(exit.final, layout, inOrder) : null;
        return { final: exit.final ? pick(exit.final) : null, problems, ...(shortfall ? { notCopied: shortfall } : {}), ...(wrongRings ? { wrongRings } : {}) };
      })),
  };
}

/**
 * After the sender stopped, the receiver may still be taking the last descriptors off the
 * ring. Wait until its counter reaches the sender's final count, or stops moving.
 */
async function drain(read: () => Promise<number>, target: number | null): Promise<void> {
  const deadline = performance.now() + 2000;
  let prev = -1;
  let stable = 0;
  while (performance.now() < deadline) {
    let n: number;
    try {
      n = await read();
    } catch {
      // Only a cross-check depends on draining; a broken counter must not fail the case.
      return;
    }
    if (target !== null && n >= target) return;
    if (n === prev) {
      if (++stable >= 3) return;
    } else {
      stable = 0;
      prev = n;
    }
    await sleep(20);
  }
}

export interface Session {
  frontend: Testpmd;
  backend: Backend;
  /** Only for zcnic backends: the device, e.g. for heap samples. */
  device: ZcnicDevice | undefined;
}

/**
 * Brings up backend + frontend on a fresh socket, starts traffic (receiver first, then sender),
 * runs `body`, stops the sender, drains, stops the receiver, and tears everything down whatever
 * happens. Returns body's result and the final counts.
 */
export async function withSession<T>(
  spec: CaseSpec,
  peer: Peer,
  settings: BenchSettings,
  body: (s: Session) => Promise<T>,
): Promise<{ result: T; finalFrontend: number; end: BackendEnd }> {
  const dir = mkdtempSync(join(tmpdir(), 'zcnic-bench-'));
  const socket = join(dir, 'vhost.sock');
  let backend: Backend | undefined;
  let frontend: Testpmd | undefined;
  let device: ZcnicDevice | undefined;
  let vhost: Testpmd | undefined;
  const plan = sessionPlan(spec, peer, settings.sinkWork);
  try {
    if (plan.dpdk) {
      vhost = await startDpdkBackend(plan.dpdk, socket, settings);
      backend = dpdkBackend(spec, vhost);
    } else if (plan.zcnic) {
      device = await startZcnic(plan.zcnic, socket, settings);
      backend = zcnicBackend(spec, device, plan.zcnic.port === 'sink' && plan.zcnic.verify, settings.packedRing ? 'packed' : 'split', settings.inOrder);
    } else {
      throw new Error(`internal: no backend planned for ${peer}`);
    }
    frontend = await Testpmd.start({
      role: 'frontend',
      socket,
      forwardMode: plan.frontend.mode,
      ...(plan.frontend.txPktLen !== undefined ? { txPktLen: plan.frontend.txPktLen } : {}),
      vdevArgs: frontendVdevArgs(settings),
      onOutput: outputLogger(settings, 'virtio-user'),
    });
    // The vhost PMD's link comes up only once the frontend has set DRIVER_OK; forwarding
    // started before that polls a queue that is not enabled yet.
    if (vhost) await vhost.waitLinkUp(15_000);

    const fe = frontend;
    const be = backend;
    const feCount = async (): Promise<number> => frontendPackets(await fe.portStats(), spec.direction);
    const bursts = plan.frontend.txFirstBursts;
    if (bursts !== undefined) {
      // A loop: the frontend sends the seed bursts, then returns every frame it receives.
      await be.startTraffic();
      await fe.command(`start tx_first ${bursts}`);
    } else if (spec.direction === 'transmitq') {
      await be.startTraffic();
      await fe.startForwarding();
    } else {
      await fe.startForwarding();
      await be.startTraffic();
    }
    const result = await body({ frontend: fe, backend: be, device });
    if (spec.direction === 'transmitq') {
      await fe.stopForwarding();
      await drain(() => be.packets(), await feCount());
      await be.stopTraffic();
    } else {
      const sent = await be.stopTraffic();
      // zcnic's generator keeps refilling the ring, so there is nothing to drain against.
      if (sent !== null) await drain(feCount, sent);
      await fe.stopForwarding();
    }
    const finalFrontend = await feCount();
    await fe.close();
    const end = await be.close();
    return { result, finalFrontend, end };
  } finally {
    // Driver side first, so the backend sees an orderly disconnect.
    await frontend?.close().catch((e: unknown) => settings.log(`closing frontend: ${String(e)}`));
    await backend?.close().catch((e: unknown) => settings.log(`closing backend: ${String(e)}`));
    await device?.close().catch(() => undefined);
    await vhost?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads the backend counter without failing the case: it is only a cross-check. */
async function tryPackets(b: Backend, notes: string[]): Promise<number | null> {
  try {
    return await b.packets();
  } catch (err) {
    notes.push(`backend counter unreadable: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}

export async function runCase(spec: CaseSpec, peer: Peer, settings: BenchSettings): Promise<Measurement> {
  if (spec.reflect) throw new Error('internal: reflect is a heap-check load, not a bench case');
  const notes: string[] = [];
  const { result: w, finalFrontend, end } = await withSession(spec, peer, settings, async ({ frontend, backend }) => {
    await pause(settings, settings.warmupSec);
    const pids = [process.pid, frontend.pid, backend.pid];
    const c0 = sampleCpu(pids);
    const s0 = await frontend.readStats();
    const p0 = await tryPackets(backend, notes);
    await pause(settings, settings.seconds);
    const s1 = await frontend.readStats();
    const p1 = await tryPackets(backend, notes);
    const c1 = sampleCpu(pids);
    return { s0, s1, p0, p1, cpu: c0 && c1 ? contention(c0, c1) : null };
  });
  notes.push(...end.problems);

  const a = port0(w.s0);
  const b = port0(w.s1);
  const seconds = (w.s1.atMs - w.s0.atMs) / 1000;
  const packets = frontendPackets(b, spec.direction) - frontendPackets(a, spec.direction);
  const bytes = frontendBytes(b, spec.direction) - frontendBytes(a, spec.direction);
  if (packets <= 0) {
    throw new Error(`no ${spec.direction} traffic in the measured window (${packets} packets)`);
  }
  // A copying sink that did not copy measured the wrong work: that is no result.
  if (end.notCopied) throw new Error(end.notCopied);
  if (end.wrongRings) throw new Error(end.wrongRings);
  if (end.final !== null && end.final !== finalFrontend) {
    const why =
      peer === 'zcnic' && spec.direction === 'receiveq'
        ? ' (expected: the generator fills the ring until the device exits)'
        : '';
    notes.push(`final counts differ: frontend ${finalFrontend}, backend ${end.final}${why}`);
  }
  if (w.cpu && disturbed({ contention: w.cpu })) {
    notes.push(
      `disturbed: other processes used ${w.cpu.otherCores.toFixed(2)} CPUs and steal ` +
        `${w.cpu.stealCores.toFixed(2)} CPUs during the window`,
    );
  }
  return {
    peer,
    direction: spec.direction,
    frameSize: spec.frameSize,
    seconds,
    packets,
    bytes,
    ...rates(packets, bytes, seconds),
    work: perFrameWork(spec.direction, peer, settings.sinkWork),
    peerPackets: w.p0 !== null && w.p1 !== null ? w.p1 - w.p0 : null,
    finalFrontendPackets: finalFrontend,
    finalPeerPackets: end.final,
    contention: w.cpu,
    notes,
  };
}
