// Child processes for the image builder, with errors that say what to install.
import { execa } from 'execa';

/** Debian package that provides each host tool, for "not installed" messages. */
const PROVIDERS: Record<string, string> = {
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  'dpkg-query': 'dpkg',
  xz: 'xz-utils',
  zstd: 'zstd',
  gcc: 'gcc',
  ldd: 'libc-bin',
  'dpkg-source': 'dpkg-dev',
  make: 'make',
  clang: 'clang',
  bpftool: 'bpftool',
  m4: 'm4',
  strip: 'binutils',
};

export class BuildError extends Error {
  override name = 'BuildError';
}

export interface RunOptions {
  cwd?: string;
  input?: string | Uint8Array;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Binary stdout (decompression, compression). */
  binary?: boolean;
  verbose?: boolean;
  log?: (line: string) => void;
  /** Variables added to the environment (the rest is inherited). */
  env?: Record<string, string>;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stdoutBuffer: Uint8Array;
  stderr: string;
}

export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (opts.verbose) opts.log?.(`  $ ${[file, ...args].join(' ')}${opts.cwd ? `   (in ${opts.cwd})` : ''}`);
  const res = await execa(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    input: opts.input,
    reject: false,
    stripFinalNewline: false,
    encoding: opts.binary ? 'buffer' : 'utf8',
    // Large enough for a decompressed kernel module or a whole initramfs.
    maxBuffer: 512 * 1024 * 1024,
  });
  if (res.exitCode === undefined) {
    // The program never ran (not installed, bad cwd, killed by a signal).
    // The builder creates every cwd it passes, so ENOENT means the program is missing.
    if (res.code === 'ENOENT') {
      throw new BuildError(`${file} is not installed (apt-get install -y ${PROVIDERS[file] ?? file})`);
    }
    throw new BuildError(`${file} ${args.join(' ')} failed: ${res.shortMessage}`);
  }
  const stdoutBuffer = opts.binary ? (res.stdout as unknown as Uint8Array) : new Uint8Array();
  const stdout = opts.binary ? '' : String(res.stdout);
  const stderr = String(res.stderr);
  const exitCode = res.exitCode;
  if (opts.verbose && stderr.trim() !== '') opts.log?.(stderr.trimEnd().replace(/^/gm, '    '));
  if (exitCode !== 0 && !opts.allowFailure) {
    const detail = (stderr.trim() || stdout.trim()).split('\n').slice(-15).join('\n');
    throw new BuildError(`${file} ${args.join(' ')} failed (exit ${exitCode}):\n${detail}`);
  }
  return { exitCode, stdout, stdoutBuffer, stderr };
}
