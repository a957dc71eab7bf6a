/**
 * Suites that run a program built on this host from the guest kernel's source, from the host's
 * root file system: before the guest boots, `zcnic run` builds (or finds cached) what they need
 * and tells the guest where it is on the kernel command line, as `zcnic selftests` does for the
 * kernel's network selftests.
 */
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunOptions } from './run.js';
import { buildImage, projectCacheDir } from '../images/build.js';
import { ensureSelftests } from '../images/selftests.js';
import { XSKXCEIVER_INSTALL_DIR, XSKXCEIVER_TARGET } from '../images/xskxceiver.js';

/** guest/suites/xskxceiver.sh: AF_XDP's own test (test_xsk.sh -i IFACE) on the reflect port. */
export const XSKXCEIVER_SUITE = 'xskxceiver';

/** The run's options with what its suites need built, and the host's root for them to run from. */
export async function withSuiteBuilds(o: RunOptions): Promise<RunOptions> {
  if (!o.suites.includes(XSKXCEIVER_SUITE)) return o;
  const log = (line: string): void => o.progress(`  ${line}`);
  // The build is for the kernel's exact release: the image knows it (a cached image in well under a second).
  const image = await buildImage({ kernel: o.kernel, modules: o.modules, log });
  o.progress(`xskxceiver for ${image.kernelRelease}`);
  const build = await ensureSelftests({ kernelVersion: image.kernelRelease, targets: [XSKXCEIVER_TARGET], cacheDir: projectCacheDir(), ro: { verbose: o.verbose, log } });
  // Where the host's root has it: a cache reached through a symlink under /tmp (a worktree's)
  // would not resolve in the guest, whose /tmp is its own.
  const dir = await realpath(join(build.dir, XSKXCEIVER_INSTALL_DIR));
  o.progress(`xskxceiver: ${build.cached ? 'cached' : 'built'} from linux-source ${build.version}, ${dir}`);
  const append = [`zcnic.xskxceiver_dir=${dir}`, o.append ?? ''].join(' ').trim();
  return { ...o, hostRoot: true, append };
}
