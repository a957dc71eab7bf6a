// KVM or TCG: decided by really booting the guest under KVM once per machine.
//
// "/dev/kvm exists" proves nothing here: on the project's machines the KVM module is kvm_pvm,
// which answers the KVM API but cannot run a stock kernel (QEMU stops with "KVM internal
// error", -cpu host fails with "failed to set MSR"). So the probe boots the caller's own
// kernel and initramfs under KVM, without a NIC, and counts as a success only once the guest's
// /init has run and printed its first KTAP lines. The verdict is cached per machine in
// .cache/accel/ (key: hostname, QEMU version, host kernel release, guest kernel key).
//
// Modes:
//   auto  use KVM when the probe (or its cached verdict) says it works, else TCG with the reason;
//   tcg   no probe;
//   kvm   KVM or an error: a cached success is trusted, a cached failure is probed again (the
//         user may have fixed something), and if the probe fails chooseAccel throws AccelError
//         with the probe's reason rather than letting the run die later with a less clear
//         QEMU message.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelCmdline, NO_ACPI, type Accel } from './qemu.js';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';

export interface ProbeResult {
  ok: boolean;
  /** Why KVM works or not, for people ("guest init ran, boot.ms=640", "KVM internal error ..."). */
  reason: string;
  durationMs: number;
  /**
   * false: do not cache this verdict. For cheap checks whose answer can change without the
   * cache key changing: /dev/kvm missing or not accessible, QEMU not installed.
   */
  cacheable?: boolean;
}

export interface CachedProbe {
  machineKey: string;
  ok: boolean;
  reason: string;
  durationMs: number;
  /** ISO time of the probe. */
  probedAt: string;
}

export interface ProbeCache {
  read(): Promise<CachedProbe | null>;
  write(p: CachedProbe): Promise<void>;
}

export interface ChooseAccelOptions {
  requested: AccelRequest;
  probe: () => Promise<ProbeResult>;
  cache: ProbeCache;
  machineKey: string;
  /** Clock for probedAt (tests). */
  now?: () => Date;
}

export interface AccelChoice {
  accel: Accel;
  reason: string;
  /** A probe ran in this call (false: cache hit, or tcg requested). */
  probed: boolean;
}

export class AccelError extends Error {
  override name = 'AccelError';
}

export async function chooseAccel(o: ChooseAccelOptions): Promise<AccelChoice> {
  if (o.requested === 'tcg') return { accel: 'tcg', reason: 'TCG requested (--accel tcg)', probed: false };
  if (o.requested !== 'auto' && o.requested !== 'kvm') {
    throw new AccelError(`unknown accel ${JSON.stringify(o.requested)}: expected auto, kvm or tcg`);
  }

  // A cache that cannot be read is a miss, not a failure: the probe answers instead.
  const cached = await o.cache.read().catch(() => null);
  const hit = cached !== null && cached.machineKey === o.machineKey ? cached : null;
  if (hit && (hit.ok || o.requested === 'auto')) {
    const when = `probed ${hit.probedAt}, cached`;
    return hit.ok
      ? { accel: 'kvm', reason: `KVM works: ${hit.reason} (${when})`, probed: false }
      : { accel: 'tcg', reason: `KVM unusable: ${hit.reason} (${when})`, probed: false };
  }

  let result: ProbeResult;
  try {
    result = await o.probe();
  } catch (err) {
    // A probe that throws is a bug or an environment problem, not a verdict about KVM.
    result = { ok: false, reason: `the KVM probe failed: ${err instanceof Error ? err.message : String(err)}`, durationMs: 0, cacheable: false };
  }
  if (result.cacheable !== false) {
    const entry: CachedProbe = {
      machineKey: o.machineKey,
      ok: result.ok,
      reason: result.reason,
      durationMs: result.durationMs,
      probedAt: (o.now?.() ?? new Date()).toISOString(),
    };
    // Losing the cache costs one probe next time; it must not fail the run.
    await o.cache.write(entry).catch(() => undefined);
  }
  if (result.ok) return { accel: 'kvm', reason: `KVM works: ${result.reason}`, probed: true };
  if (o.requested === 'kvm') throw new AccelError(`--accel kvm: KVM does not work on this machine: ${result.reason}`);
  return { accel: 'tcg', reason: `KVM unusable: ${result.reason}`, probed: true };
}

// ------------------------------------------------------------------ the cache file

function isCachedProbe(v: unknown): v is CachedProbe {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['machineKey'] === 'string' &&
    typeof r['ok'] === 'boolean' &&
    typeof r['reason'] === 'string' &&
    typeof r['durationMs'] === 'number' &&
    typeof r['probedAt'] === 'string'
  );
}

/** The project root: this file runs from dist/harness/. */
export function defaultAccelCacheDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'accel');
}

/** One JSON file per machine key under `dir` (the key itself is inside, for people). */
export function fileProbeCache(dir: string, machineKey: string): ProbeCache & { path: string } {
  const path = join(dir, `${createHash('sha256').update(machineKey).digest('hex').slice(0, 16)}.json`);
  return {
    path,
    async read() {
      try {
        const v: unknown = JSON.parse(await readFile(path, 'utf8'));
        return isCachedProbe(v) ? v : null;
      } catch {
        return null;
      }
    },
    async write(p) {
      await mkdir(dir, { recursive: true });
      // Write then rename: two runs probing at once must never leave half a file.
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(p, null, 2)}\n`);
      await rename(tmp, path);
    },
  };
}

/** First line of `qemu --version`, or why it could not be run. */
export async function qemuVersion(qemu = 'qemu-system-x86_64'): Promise<string> {
  return new Promise((resolveVersion) => {
    const child = spawn(qemu, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', (err) => resolveVersion(`unavailable (${err.message})`));
    child.on('close', () => resolveVersion(out.split('\n')[0]?.trim() || 'unknown'));
  });
}

/**
 * What a KVM verdict depends on: the machine, QEMU, the host kernel (and so its KVM module),
 * and the guest kernel (kvm_pvm fails in one kernel's decompressor, another may boot).
 * `guestKernelKey`: e.g. the image manifest's kernelKey.
 */
export async function accelMachineKey(o: { guestKernelKey: string; qemu?: string }): Promise<string> {
  return [`host=${hostname()}`, `hostKernel=${release()}`, `qemu=${await qemuVersion(o.qemu)}`, `guestKernel=${o.guestKernelKey}`].join(' ');
}

// ------------------------------------------------------------------ the real probe

export interface KvmProbeOptions {
  kernel: string;
  initramfs: string;
  qemu?: string;
  /** Firmware folders (-L) of a QEMU unpacked outside /usr. */
  firmwareDirs?: readonly string[];
  /** Give up after this long (default 20 s: a KVM boot to /init takes 1-3 s). */
  timeoutMs?: number;
  /** Default /dev/kvm (tests point it elsewhere). */
  devKvm?: string;
}

/** QEMU's words for "KVM cannot run this guest": stop at once, the VM would just sit paused. */
const KVM_FATAL = /KVM internal error[^\n]*|failed to set MSR[^\n]*|kvm_init_vcpu[^\n]*|Could not access KVM kernel module[^\n]*|failed to initialize kvm[^\n]*/i;

export function kvmProbeArgs(o: Pick<KvmProbeOptions, 'kernel' | 'initramfs' | 'firmwareDirs'>): string[] {
  return [
    ...(o.firmwareDirs ?? []).flatMap((dir) => ['-L', dir]),
    '-accel', 'kvm', '-cpu', 'max', '-smp', '1', '-m', '256M', '-machine', NO_ACPI,
    // No NIC, no virtio-serial: /init finds no KTAP port and prints KTAP on the console.
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', o.kernel, '-initrd', o.initramfs,
    // A suite that does not exist: /init reports it as one failure at once and ends the VM.
    '-append', kernelCmdline({ suite: 'accel-probe', testTimeoutSec: 5 }),
  ];
}

/** "QEMU: KVM internal error. Suberror: 1 (emulation failure at RIP=..., code c4 42 69 f7 c0)". */
export function kvmFailureReason(stderr: string): string {
  const fatal = KVM_FATAL.exec(stderr)?.[0].trim() ?? lastLine(stderr);
  const details: string[] = [];
  if (/^emulation failure$/m.test(stderr)) details.push('emulation failure');
  const rip = /\bRIP=([0-9a-f]+)/i.exec(stderr);
  if (rip) details.push(`at RIP=${rip[1]}`);
  // The bytes at RIP, which QEMU marks <xx> in its Code= line: the instruction KVM could not run.
  const code = /^Code=.*?<([0-9a-f]{2})>((?: [0-9a-f]{2}){0,4})/im.exec(stderr);
  if (code) details.push(`code ${code[1]}${code[2]}`);
  return `QEMU: ${fatal}${details.length > 0 ? ` (${details.join(' ')})` : ''}`;
}

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.replace(/\r/g, '').trim()).filter((l) => l !== '');
  return lines[lines.length - 1] ?? '';
}

/** A probe that boots `kernel` + `initramfs` under KVM (see the header). */
export function kvmBootProbe(o: KvmProbeOptions): () => Promise<ProbeResult> {
  return async () => {
    const started = Date.now();
    const elapsed = () => Date.now() - started;
    const devKvm = o.devKvm ?? '/dev/kvm';
    try {
      await access(devKvm, fsConstants.R_OK | fsConstants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? `no ${devKvm} (no KVM module loaded, or no hardware virtualisation)`
          : `${devKvm} is not accessible (${code ?? 'error'}; is this user in the kvm group?)`;
      return { ok: false, reason, durationMs: elapsed(), cacheable: false };
    }
    const timeoutMs = o.timeoutMs ?? 20_000;
    return new Promise<ProbeResult>((resolveProbe) => {
      const child = spawn(o.qemu ?? 'qemu-system-x86_64', kvmProbeArgs(o), { stdio: ['ignore', 'pipe', 'pipe'] });
      let consoleText = '';
      let stderr = '';
      let initRan = false;
      let verdict: ProbeResult | null = null;

      // Record the verdict once, stop QEMU, and answer when it has exited (no stray process).
      const decide = (r: Omit<ProbeResult, 'durationMs'>) => {
        if (verdict) return;
        verdict = { ...r, durationMs: elapsed() };
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      };
      const timer = setTimeout(() => {
        const seen = initRan ? "the guest's init started but printed no KTAP" : "no sign of the guest's init";
        const tail = lastLine(consoleText);
        decide({ ok: false, reason: `timeout: ${seen} after ${timeoutMs / 1000} s${tail ? ` (console: ${tail})` : ''}` });
      }, timeoutMs);

      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        consoleText += d;
        if (consoleText.length > 65536) consoleText = consoleText.slice(-32768);
        if (!initRan && consoleText.includes('zcnic-init:')) initRan = true;
        const boot = /# zcnic-metric boot\.ms=(\d+)/.exec(consoleText);
        if (initRan && boot) decide({ ok: true, reason: `guest init ran under KVM, boot.ms=${boot[1]}` });
      });
      let fatalSeen = false;
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (stderr.length > 65536) stderr = stderr.slice(-32768);
        if (fatalSeen || !KVM_FATAL.test(stderr)) return;
        fatalSeen = true;
        // QEMU prints the details (emulation failure, registers) right after the first line:
        // give them a moment, they say where the guest stopped.
        setTimeout(() => decide({ ok: false, reason: kvmFailureReason(stderr) }), 200);
      });
      child.on('error', (err) => {
        decide({ ok: false, reason: `cannot run ${o.qemu ?? 'qemu-system-x86_64'}: ${err.message}`, cacheable: false });
        resolveProbe(verdict!);
      });
      child.on('close', (code, signal) => {
        if (!verdict) {
          const panic = /Kernel panic[^\n]*/.exec(consoleText);
          if (initRan && code === 0) decide({ ok: true, reason: 'guest init ran under KVM and powered off' });
          else if (panic) decide({ ok: false, reason: `guest kernel panicked: ${panic[0].trim()}` });
          else {
            const why = lastLine(stderr) || lastLine(consoleText) || 'no output';
            decide({ ok: false, reason: `QEMU exited (${signal ?? `status ${code}`}) before the guest's init ran: ${why}` });
          }
        }
        resolveProbe(verdict!);
      });
    });
  };
}

// ------------------------------------------------------------------ all of it

export interface ResolveAccelOptions {
  requested: AccelRequest;
  kernel: string;
  initramfs: string;
  /** Identifies the guest kernel for the cache, e.g. the image manifest's kernelKey. */
  guestKernelKey: string;
  qemu?: string;
  firmwareDirs?: readonly string[];
  cacheDir?: string;
  timeoutMs?: number;
}

/** chooseAccel with the real probe and the file cache. */
export async function resolveAccel(o: ResolveAccelOptions): Promise<AccelChoice> {
  if (o.requested === 'tcg') return chooseAccel({ requested: 'tcg', probe: async () => ({ ok: false, reason: '', durationMs: 0 }), cache: nullCache, machineKey: '' });
  const machineKey = await accelMachineKey({ guestKernelKey: o.guestKernelKey, qemu: o.qemu });
  return chooseAccel({
    requested: o.requested,
    probe: kvmBootProbe({ kernel: o.kernel, initramfs: o.initramfs, qemu: o.qemu, firmwareDirs: o.firmwareDirs, timeoutMs: o.timeoutMs }),
    cache: fileProbeCache(o.cacheDir ?? defaultAccelCacheDir(), machineKey),
    machineKey,
  });
}

const nullCache: ProbeCache = { read: async () => null, write: async () => undefined };
