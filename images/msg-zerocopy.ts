// The kernel's MSG_ZEROCOPY test program, msg_zerocopy (tools/testing/selftests/net), built
// alone: target net would build a hundred programs for this one. It includes only libc and UAPI
// headers (its MSG_ZEROCOPY constants have fallbacks), so the host's cc and headers compile it,
// with the flags of net's Makefile; no `make headers`, so only the one file is unpacked.
//
// Installed in a folder of its own at the top of the selftests tree, not under net/ where net's
// install would put it: a program target added to a cached tree replaces its top folders
// (selftests.ts addToTree), and net/ holds net/lib of the kselftest targets.
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';
import type { TargetResult } from './selftests.js';

/** The build's selftests target name: one program of target net. */
export const MSG_ZEROCOPY_TARGET = 'net/msg_zerocopy';
/** Its folder in the selftests tree. */
export const MSG_ZEROCOPY_INSTALL_DIR = 'msg_zerocopy';
const PROGRAM = 'msg_zerocopy';
const SOURCE = join('tools', 'testing', 'selftests', 'net', `${PROGRAM}.c`);

/** What the build reads of the source tree, under its top folder `top`. */
export function msgZerocopySourceMembers(top: string): string[] {
  return [`${top}/${SOURCE}`];
}

/**
 * Compiles msg_zerocopy.c of the unpacked tree `src` and installs the binary under `installDir`.
 * At the lowest priority: `zcnic run` builds on demand, on machines where guests under TCG may be
 * running timing-sensitive tests.
 */
export async function buildMsgZerocopy(src: string, installDir: string, ro: RunOptions): Promise<TargetResult> {
  const dest = join(installDir, MSG_ZEROCOPY_INSTALL_DIR);
  await mkdir(dest, { recursive: true });
  const source = join(src, SOURCE);
  const cc = await run('nice', ['-n', '19', 'cc', '-Wall', '-O2', '-g', '-o', join(dest, PROGRAM), source], { ...ro, allowFailure: true });
  await writeFile(join(dest, 'build.log'), `${cc.stdout}\n${cc.stderr}`);
  if (cc.exitCode !== 0) throw new BuildError(`${PROGRAM} did not build:\n${`${cc.stdout}\n${cc.stderr}`.trim().split('\n').slice(-15).join('\n')}`);
  // The source beside the binary, to read what this kernel's version of it checks.
  await cp(source, join(dest, `${PROGRAM}.c`));
  return { target: MSG_ZEROCOPY_TARGET, tests: [PROGRAM], built: [PROGRAM], failed: [] };
}
