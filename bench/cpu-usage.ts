// How much CPU other processes (and the hypervisor, as steal time) took during a measured
// window. Both pollers are pinned to the machine's two cores, so anything else that runs steals
// cycles from them; the report says so instead of presenting a disturbed number as clean.

import { readdirSync, readFileSync } from 'node:fs';

export interface CpuSample {
  /** Jiffies summed over all CPUs (user..steal). */
  total: number;
  idle: number;
  steal: number;
  /** utime+stime per watched PID (jiffies, all threads). */
  procs: Map<number, number>;
  ncpu: number;
}

export interface Contention {
  /** CPUs' worth of time used by processes other than the watched ones. */
  otherCores: number;
  /** CPUs' worth of time the hypervisor took (steal). */
  stealCores: number;
}

/**
 * utime+stime of a process; with `reaped`, also cutime+cstime: the children it waited for, whose
 * time would otherwise be lost when they end between two samples.
 */
function procJiffies(pid: number, reaped: boolean): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and ')'; fields after the last ')' are fixed.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime, stime, cutime and cstime are fields 14 to 17.
    return Number(fields[11]) + Number(fields[12]) + (reaped ? Number(fields[13]) + Number(fields[14]) : 0);
  } catch {
    return 0;
  }
}

/** The PID and all its descendants (a device may run helpers; they count as its CPU use). */
function withDescendants(pid: number, seen = new Set<number>()): Set<number> {
  if (seen.has(pid)) return seen;
  seen.add(pid);
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return seen;
  }
  for (const tid of tids) {
    try {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const k of kids ? kids.split(/\s+/) : []) withDescendants(Number(k), seen);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return seen;
}

/**
 * Reads /proc; returns undefined where there is no procfs (the report then omits it). With
 * `reaped`, the watched processes' time includes their children that ended and were waited for
 * (a bench whose QEMU and device come and go between the samples).
 */
export function sampleCpu(pids: readonly number[], reaped = false): CpuSample | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const lines = stat.split('\n');
  const all = lines[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  if (all.length < 8) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = all as [
    number, number, number, number, number, number, number, number,
  ];
  const ncpu = lines.filter((l) => /^cpu\d+ /.test(l)).length;
  const procs = new Map<number, number>();
  const watched = new Set<number>();
  for (const pid of pids) withDescendants(pid, watched);
  for (const pid of watched) procs.set(pid, procJiffies(pid, reaped));
  return {
    total: user + nice + system + idle + iowait + irq + softirq + steal,
    idle: idle + iowait,
    steal,
    procs,
    ncpu,
  };
}

export function contention(a: CpuSample, b: CpuSample): Contention {
  const total = b.total - a.total;
  if (total <= 0) return { otherCores: 0, stealCores: 0 };
  let ours = 0;
  for (const [pid, j] of b.procs) ours += j - (a.procs.get(pid) ?? j);
  const steal = b.steal - a.steal;
  const busy = total - (b.idle - a.idle) - steal;
  const toCores = (j: number): number => (Math.max(0, j) / total) * b.ncpu;
  return { otherCores: toCores(busy - ours), stealCores: toCores(steal) };
}
