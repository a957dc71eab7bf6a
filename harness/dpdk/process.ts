// Escalating shutdown of a child process, by PID. Shared by the testpmd driver and the bench's
// zcnic device runner: both ask politely first (a command or SIGINT), then escalate, because a
// busy-polling process that ignores the polite request must still never outlive the caller.

import { setTimeout as sleep } from 'node:timers/promises';

export interface ExitInfo {
  exitCode: number | undefined;
  signal: string | undefined;
}

/** How the process ended: on its own after the polite request, or by which signal. */
export type EndedBy = 'request' | 'SIGTERM' | 'SIGKILL' | 'already-exited';

export interface TerminateOptions {
  /** Time allowed for the polite request the caller already made. */
  graceMs: number;
  /** Time allowed after SIGTERM before SIGKILL. */
  termMs: number;
  /** Time allowed after SIGKILL (a process in D state may take a moment). */
  killMs?: number;
}

/** True if a process with this PID exists (EPERM still means it exists). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    // ESRCH: it exited between our check and the kill, which is what we wanted.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
  } finally {
    ac.abort();
  }
}

/**
 * Waits for `exited` (which must settle when the child is reaped), escalating to SIGTERM and
 * then SIGKILL. Throws only if even SIGKILL did not end it in time.
 */
export async function terminate(
  pid: number,
  exited: Promise<ExitInfo>,
  opts: TerminateOptions,
): Promise<{ exit: ExitInfo; endedBy: EndedBy }> {
  let exit = await within(exited, opts.graceMs);
  if (exit) return { exit, endedBy: 'request' };
  signal(pid, 'SIGTERM');
  exit = await within(exited, opts.termMs);
  if (exit) return { exit, endedBy: 'SIGTERM' };
  signal(pid, 'SIGKILL');
  exit = await within(exited, opts.killMs ?? 5000);
  if (exit) return { exit, endedBy: 'SIGKILL' };
  throw new Error(`process ${pid} survived SIGKILL for ${opts.killMs ?? 5000} ms`);
}
