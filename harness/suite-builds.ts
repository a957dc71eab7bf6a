/**
 * Suites that run a program built on this host from the guest kernel's source, from the host's
 * root file system: before the guest boots, `zcnic run` builds (or finds cached) what they need
 * and tells the guest where it is on the kernel command line, as `zcnic selftests` does for the
 * kernel's network selftests.
 */
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Network } from './guest-nics.js';
import type { RunOptions } from './run.js';
import { buildImage, projectCacheDir } from '../images/build.js';
import { MSG_ZEROCOPY_INSTALL_DIR, MSG_ZEROCOPY_TARGET } from '../images/msg-zerocopy.js';
import { ensureSelftests } from '../images/selftests.js';
import { XSKXCEIVER_INSTALL_DIR, XSKXCEIVER_TARGET } from '../images/xskxceiver.js';

/** guest/suites/xskxceiver.sh: AF_XDP's own test (test_xsk.sh -i IFACE) on the reflect port. */
export const XSKXCEIVER_SUITE = 'xskxceiver';
/** guest/suites/kernel-msg-zerocopy.sh: the kernel's msg_zerocopy between two zcnic NICs. */
export const KERNEL_MSG_ZEROCOPY_SUITE = 'kernel-msg-zerocopy';

/** What one such suite needs of the run. */
export interface SuiteBuild {
  readonly suite: string;
  /** The program target of images/selftests.ts. */
  readonly target: string;
  /** Its folder in the selftests tree. */
  readonly installDir: string;
  /** The kernel command line key the guest finds the folder by (ZCNIC_<KEY> in the suite). */
  readonly dirKey: string;
  /** More kernel command line. */
  readonly append?: string;
  /** NICs other than the one zcnic NIC; such a suite runs alone, the others' tests need one NIC. */
  readonly network?: Network;
}

export const SUITE_BUILDS: readonly SuiteBuild[] = [
  { suite: XSKXCEIVER_SUITE, target: XSKXCEIVER_TARGET, installDir: XSKXCEIVER_INSTALL_DIR, dirKey: 'zcnic.xskxceiver_dir' },
  // The NIC pair of zcnic selftests, with IPv6 on: msg_zerocopy runs over IPv4 and IPv6.
  { suite: KERNEL_MSG_ZEROCOPY_SUITE, target: MSG_ZEROCOPY_TARGET, installDir: MSG_ZEROCOPY_INSTALL_DIR, dirKey: 'zcnic.msg_zerocopy_dir', append: 'zcnic.ipv6=1', network: 'zcnic-pair' },
];

/** Why these suites cannot run in one boot, or undefined when they can. */
export function suiteConflict(suites: readonly string[]): string | undefined {
  const own = SUITE_BUILDS.find((b) => b.network !== undefined && suites.includes(b.suite));
  if (own === undefined || suites.every((s) => s === own.suite)) return undefined;
  return `suite ${own.suite} runs on its own NICs (${own.network}): run it alone, not with ${suites.filter((s) => s !== own.suite).join(', ')}`;
}

/** The run's options with what its suites need built, and the host's root for them to run from. */
export async function withSuiteBuilds(o: RunOptions): Promise<RunOptions> {
  const builds = SUITE_BUILDS.filter((b) => o.suites.includes(b.suite));
  if (builds.length === 0) return o;
  const log = (line: string): void => o.progress(`  ${line}`);
  // The build is for the kernel's exact release: the image knows it (a cached image in well under a second).
  const image = await buildImage({ kernel: o.kernel, modules: o.modules, log });
  const targets = builds.map((b) => b.target);
  o.progress(`${targets.join(', ')} for ${image.kernelRelease}`);
  const build = await ensureSelftests({ kernelVersion: image.kernelRelease, targets, cacheDir: projectCacheDir(), ro: { verbose: o.verbose, log } });
  const words: string[] = [];
  for (const b of builds) {
    // Where the host's root has it: a cache reached through a symlink under /tmp (a worktree's)
    // would not resolve in the guest, whose /tmp is its own.
    const dir = await realpath(join(build.dir, b.installDir));
    o.progress(`${b.target}: ${build.cached ? 'cached' : 'built'} from linux-source ${build.version}, ${dir}`);
    words.push(`${b.dirKey}=${dir}`, b.append ?? '');
  }
  const append = [...words, o.append ?? ''].join(' ').replace(/\s+/g, ' ').trim();
  const network = builds.find((b) => b.network !== undefined)?.network ?? o.network;
  return { ...o, hostRoot: true, append, network };
}
