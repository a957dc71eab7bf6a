// AF_XDP's own selftest, xskxceiver (tools/testing/selftests/bpf), built alone: the bpf
// selftests' Makefile has a goal for it (`make xskxceiver`), which builds libbpf from
// tools/lib/bpf, the one BPF object it loads (xsk_xdp_progs.bpf.o, embedded in the binary as a
// skeleton) and the binary, and none of test_progs. Installed with test_xsk.sh and what it
// sources, where target bpf's own install would put them (bpf/ under the selftests tree).
//
// Two of the Makefile's prerequisites are provided instead of built its way:
// - bpftool: the Makefile would build a full bpftool (LLVM disassembler, libbfd) to generate one
//   skeleton; bpftool's bootstrap build from the same tree does that part (`gen object`, `gen
//   skeleton`) and needs only libelf and zlib.
// - vmlinux.h: every BPF object of the Makefile depends on one, generated from VMLINUX_BTF (the
//   Makefile stops at parse time without one). xsk_xdp_progs.c includes only UAPI headers
//   (linux/bpf.h, if_ether.h, ip.h from the tree's tools/include/uapi) and no kernel type, so it
//   needs no kernel's BTF: an empty vmlinux.h is given (VMLINUX_H, which the Makefile copies),
//   and VMLINUX_BTF names that same file only to satisfy the check. Nothing of the build host's
//   kernel (/sys/kernel/btf/vmlinux) gets in, and an object that did use a kernel type would not
//   compile, rather than compile against the wrong kernel's types. (The guest kernel's own BTF is
//   in its vmlinuz only compressed, extractable with scripts/extract-vmlinux; not needed here.)
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { BuildError, run, type RunOptions } from './run.js';
import type { TargetResult } from './selftests.js';

/** The build's selftests target name: one program of target bpf, not all of it. */
export const XSKXCEIVER_TARGET = 'bpf/xskxceiver';
/** Its folder in the selftests tree, as target bpf's install names it. */
export const XSKXCEIVER_INSTALL_DIR = 'bpf';
/** What the guest runs: test_xsk.sh -i IFACE, which runs ./xskxceiver. */
export const XSKXCEIVER_SCRIPT = 'test_xsk.sh';
/** Built: the binary and the BPF object its skeleton embeds (kept beside it to inspect). */
const BUILT = ['xskxceiver', 'xsk_xdp_progs.bpf.o'];
/** Copied from the source: the script and what it sources. */
const SCRIPTS = [XSKXCEIVER_SCRIPT, 'xsk_prereqs.sh'];
/**
 * Two jobs at most, at the lowest priority: `zcnic run --suite xskxceiver` builds on demand, on
 * machines where guests under TCG may be running timing-sensitive tests.
 */
const JOBS = `-j${Math.min(2, availableParallelism())}`;

/**
 * What the build reads of the source tree, under its top folder `top`: tools/ (libbpf, bpftool
 * and the bpf selftests) and scripts/bpf_doc.py (libbpf generates bpf_helper_defs.h with it).
 */
export function xskxceiverSourceMembers(top: string): string[] {
  return [`${top}/tools/*`, `${top}/scripts/bpf_doc.py`];
}

/** Builds xskxceiver in the unpacked tree `src` and installs it under `installDir`. */
export async function buildXskxceiver(src: string, installDir: string, ro: RunOptions): Promise<TargetResult> {
  const build = join(src, 'xskxceiver-build');
  const bpftoolOut = join(build, 'bpftool');
  const output = join(build, 'bpf');
  const emptyVmlinuxH = join(build, 'vmlinux.h');
  await mkdir(bpftoolOut, { recursive: true });
  await mkdir(output, { recursive: true });
  await writeFile(emptyVmlinuxH, '');
  const make = (args: string[]) => run('nice', ['-n', '19', 'make', JOBS, ...args], { ...ro, allowFailure: true });
  // bpftool's Makefile wants its OUTPUT with a trailing slash.
  const bpftool = await make(['-C', join(src, 'tools', 'bpf', 'bpftool'), `OUTPUT=${bpftoolOut}/`, 'bootstrap']);
  if (bpftool.exitCode !== 0) throw new BuildError(`bpftool bootstrap did not build:\n${tail(bpftool.stdout, bpftool.stderr)}`);
  const xsk = await make([
    '-C',
    join(src, 'tools', 'testing', 'selftests', 'bpf'),
    `OUTPUT=${output}`,
    `BPFTOOL=${join(bpftoolOut, 'bootstrap', 'bpftool')}`,
    `VMLINUX_BTF=${emptyVmlinuxH}`,
    `VMLINUX_H=${emptyVmlinuxH}`,
    'xskxceiver',
  ]);
  const dest = join(installDir, XSKXCEIVER_INSTALL_DIR);
  await mkdir(dest, { recursive: true });
  await writeFile(join(dest, 'build.log'), [bpftool.stdout, bpftool.stderr, xsk.stdout, xsk.stderr].join('\n'));
  if (xsk.exitCode !== 0) throw new BuildError(`xskxceiver did not build:\n${tail(xsk.stdout, xsk.stderr)}`);
  for (const file of BUILT) await cp(join(output, file), join(dest, file));
  const scripts = join(src, 'tools', 'testing', 'selftests', 'bpf');
  for (const file of SCRIPTS) await cp(join(scripts, file), join(dest, file));
  return { target: XSKXCEIVER_TARGET, tests: [XSKXCEIVER_SCRIPT], built: BUILT, failed: [] };
}

function tail(stdout: string, stderr: string): string {
  return `${stdout}\n${stderr}`.trim().split('\n').slice(-15).join('\n');
}
