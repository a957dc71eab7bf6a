// The kernel's network selftests (tools/testing/selftests: drivers/net, drivers/net/hw and the
// net/lib they install with), built on the host from Debian's linux-source-X.Y for the guest
// kernel's series and cached by source package version:
//   .cache/selftests/<version>/            the kselftest install tree (run_kselftest.sh,
//                                          kselftest-list.txt, drivers/net/..., net/lib/...)
//   .cache/selftests/<version>/manifest.json   what was built and what was not, and why
// The guest mounts the host's root, so it runs them from the same absolute path.
//
// Besides the kselftest targets, a program target is one program of a target, built alone
// (XSKXCEIVER_TARGET, bpf/xskxceiver: images/xskxceiver.ts; MSG_ZEROCOPY_TARGET,
// net/msg_zerocopy: images/msg-zerocopy.ts): all of tools/testing/selftests/bpf or net would be
// a long build for one test. A program target missing from a cached tree is built and
// added to it (its folder, its entry in the manifest); the tree is never rebuilt for it, so a
// guest running tests from the tree meanwhile keeps its files. A missing kselftest target
// rebuilds the tree, with every target it had.
//
// Only what the build reads is unpacked (sourceMembers): tools/, Documentation/netlink (the
// YNL specs and the schemas they are checked against), and what `make headers` needs for
// KHDR_INCLUDES (the selftests compile against the tree's own usr/include, not the host's
// 6.1 linux-libc-dev); for program targets alone, what each program's build reads.
import { cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { compareVersions, parseMadison, PrivateApt, upstreamNumbers } from './debian-archive.js';
import { ensureDeb } from './debian.js';
import { BuildError, run, type RunOptions } from './run.js';
import { buildMsgZerocopy, MSG_ZEROCOPY_TARGET, msgZerocopySourceMembers } from './msg-zerocopy.js';
import { buildXskxceiver, XSKXCEIVER_TARGET, xskxceiverSourceMembers } from './xskxceiver.js';

/** What the guest suites run by default; net/lib comes with them (the selftests Makefile adds it). */
export const DEFAULT_TARGETS: readonly string[] = ['drivers/net', 'drivers/net/hw'];
/** One program of a kselftest target, built alone. */
interface ProgramTarget {
  /** tar members of the source its build reads, under the tarball's top folder `top`. */
  readonly sourceMembers: (top: string) => string[];
  readonly build: (src: string, installDir: string, ro: RunOptions) => Promise<TargetResult>;
}
/** Targets that are one program of a kselftest target, each with its own build. */
const PROGRAM_TARGETS: Readonly<Record<string, ProgramTarget>> = {
  [XSKXCEIVER_TARGET]: { sourceMembers: xskxceiverSourceMembers, build: buildXskxceiver },
  [MSG_ZEROCOPY_TARGET]: { sourceMembers: msgZerocopySourceMembers, build: buildMsgZerocopy },
};
/** Bump when the build recipe changes for the same source version (cached trees are rebuilt). */
export const SELFTESTS_BUILD_VERSION = 1;
const MANIFEST = 'manifest.json';
/**
 * The host's own python3 and tools, not a user's pyenv shim: the YNL code generator runs at
 * build time with the python the guest will run the tests with (bookworm's 3.11, PyYAML and
 * jsonschema from Debian).
 */
const BUILD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** One selftest target: what it was meant to build and what did not build. */
export interface TargetResult {
  target: string;
  /** Test programs (TEST_PROGS and TEST_GEN_PROGS) installed for the runner. */
  tests: string[];
  /** Generated files (helpers, BPF objects, TEST_GEN_*) that built. */
  built: string[];
  /** Generated files that did not build, with the compiler's last error lines. */
  failed: { name: string; reason: string }[];
  /**
   * A program target built into an existing tree later: when, and how long it took (the
   * manifest's builtAt and buildSeconds are the tree's first build).
   */
  added?: { at: string; buildSeconds: number };
}

export interface SelftestsManifest {
  sourcePackage: string;
  sourceVersion: string;
  series: string;
  buildVersion: number;
  targets: string[];
  results: TargetResult[];
  /** The Makefiles' own warnings, e.g. tests they leave out (iou-zcrx without a zcrx liburing). */
  makeWarnings: string[];
  builtAt: string;
  buildSeconds: number;
}

export interface SelftestsBuild {
  /** The install tree: run_kselftest.sh, kselftest-list.txt and one folder per target. */
  dir: string;
  /** The linux-source-X.Y package version built from. */
  version: string;
  manifest: SelftestsManifest;
  cached: boolean;
}

export interface SelftestsOptions {
  /** The guest kernel: a series (7.3), a release (7.3.4+deb13-amd64) or `debian:7.3`. */
  kernelVersion: string;
  targets?: readonly string[];
  force?: boolean;
  /** The project's .cache/ (projectCacheDir()). */
  cacheDir: string;
  ro: RunOptions;
}

/** The kernel series (X.Y) of a series, release, package version or `debian:X.Y`. */
export function kernelSeries(kernelVersion: string): string {
  const m = /^(?:debian:)?(\d+)\.(\d+)(?:[.+~-]|$)/.exec(kernelVersion);
  if (!m) throw new BuildError(`${kernelVersion}: give a kernel series (7.3) or release (7.3.4+deb13-amd64)`);
  return `${m[1]}.${m[2]}`;
}

/** The upstream numbers a request pins: [7, 3] for a series, [7, 3, 4] for a release. */
export function requestedUpstream(kernelVersion: string): number[] {
  const upstream = /^(?:debian:)?(\d+(?:\.\d+)+)/.exec(kernelVersion)?.[1] ?? '';
  return upstream.split('.').map(Number);
}

/** Whether a package version belongs to the request (7.3 takes every 7.3.N; 7.3.4 only 7.3.4). */
export function versionMatches(version: string, wanted: readonly number[]): boolean {
  const have = upstreamNumbers(version);
  return wanted.every((n, i) => have[i] === n);
}

export function sourcePackageName(series: string): string {
  return `linux-source-${series}`;
}

/** The cache folder name of a package version (an epoch's colon is no file name character everywhere). */
export function versionDirName(version: string): string {
  return version.replace(/:/g, '_');
}

export function isProgramTarget(target: string): boolean {
  return Object.hasOwn(PROGRAM_TARGETS, target);
}

/**
 * tar member patterns (with --wildcards) of what building `targets` reads, under the tarball's
 * top folder. Program targets alone: what each one's build reads. For kselftest targets (which
 * cover what a program target reads: tools/ and scripts/),
 * measured on 7.3.4: 123 MB of the 1.6 GB tree. Besides tools/ and the specs:
 * - Documentation/netlink/*.yaml: the YNL generator validates every spec against them;
 * - MAINTAINERS: ynl_gen_c.py finds the kernel root by it and loops forever without it;
 * - Makefile, Kbuild, Kconfig, scripts/, include/uapi, include/asm-generic/Kbuild and arch/x86's
 *   uapi headers, syscall tables, Makefiles and tools: `make headers` (usr/include, which
 *   KHDR_INCLUDES points at; the selftests Makefile also includes scripts/subarch.include).
 */
export function sourceMembers(series: string, targets: readonly string[]): string[] {
  const top = `linux-source-${series}`;
  if (targets.every(isProgramTarget)) return [...new Set(targets.flatMap((t) => PROGRAM_TARGETS[t]!.sourceMembers(top)))];
  return [
    'tools/*',
    'Documentation/netlink/*',
    'MAINTAINERS',
    'Makefile',
    'Kbuild',
    'Kconfig',
    'scripts/*',
    'include/uapi/*',
    'include/asm-generic/Kbuild',
    'arch/x86/include/uapi/*',
    'arch/x86/entry/syscalls/*',
    'arch/x86/Makefile*',
    'arch/x86/tools/*',
  ].map((m) => `${top}/${m}`);
}

/** A manifest read back, or undefined when absent, unreadable or of another shape. */
export function parseManifest(text: string): SelftestsManifest | undefined {
  try {
    const m = JSON.parse(text) as Partial<SelftestsManifest>;
    if (typeof m.sourceVersion !== 'string' || !Array.isArray(m.targets) || !Array.isArray(m.results)) return undefined;
    return m as SelftestsManifest;
  } catch {
    return undefined;
  }
}

/**
 * The cached build that serves a request without asking apt: the newest of the kernel's
 * series (or of its exact upstream version), built by this recipe, with every wanted target.
 */
export function pickCached(manifests: readonly SelftestsManifest[], kernelVersion: string, targets: readonly string[]): SelftestsManifest | undefined {
  const wanted = requestedUpstream(kernelVersion);
  return manifests
    .filter((m) => m.buildVersion === SELFTESTS_BUILD_VERSION && versionMatches(m.sourceVersion, wanted))
    .filter((m) => targets.every((t) => m.targets.includes(t)))
    .sort((a, b) => compareVersions(a.sourceVersion, b.sourceVersion))
    .at(-1);
}

/** What one build makes: the kselftest targets (one make run) and the program targets (each alone). */
export interface BuildPlan {
  kselftestTargets: string[];
  programTargets: string[];
  /**
   * A new tree replaces the cached one of the same version (or there is none); otherwise the
   * program targets are added to the cached tree.
   */
  replace: boolean;
}

/**
 * How to get the wanted targets when the tree of the source version has `cachedTargets` (by this
 * recipe; undefined: no such tree): add the program targets it lacks to it, or, when it lacks a
 * kselftest target, build a new tree with its targets and the wanted ones (none lost).
 */
export function planBuild(cachedTargets: readonly string[] | undefined, wanted: readonly string[]): BuildPlan {
  const missing = wanted.filter((t) => !(cachedTargets ?? []).includes(t));
  const replace = cachedTargets === undefined || !missing.every(isProgramTarget);
  const targets = replace ? [...new Set([...(cachedTargets ?? []), ...wanted])] : missing;
  return { kselftestTargets: targets.filter((t) => !isProgramTarget(t)), programTargets: targets.filter(isProgramTarget), replace };
}

/** The manifest of a tree after program targets were added to it (or rebuilt in it: --force). */
export function withAddedTargets(manifest: SelftestsManifest, results: readonly TargetResult[], added: { at: string; buildSeconds: number }): SelftestsManifest {
  const replaced = new Set(results.map((r) => r.target));
  return {
    ...manifest,
    targets: [...manifest.targets.filter((t) => !replaced.has(t)), ...replaced],
    results: [...manifest.results.filter((r) => !replaced.has(r.target)), ...results.map((r) => ({ ...r, added }))],
  };
}

async function readManifest(dir: string): Promise<SelftestsManifest | undefined> {
  return parseManifest(await readFile(join(dir, MANIFEST), 'utf8').catch(() => ''));
}

async function cachedManifests(root: string): Promise<SelftestsManifest[]> {
  const out: SelftestsManifest[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name.startsWith('.')) continue;
    const m = await readManifest(join(root, name));
    if (m) out.push(m);
  }
  return out;
}

/** The newest linux-source-X.Y the private apt view serves for the request. */
async function resolveSource(kernelVersion: string, apt: PrivateApt, ro: RunOptions): Promise<{ name: string; version: string }> {
  const name = sourcePackageName(kernelSeries(kernelVersion));
  const served = parseMadison((await run('apt-cache', [...apt.args, 'madison', name], { ...ro, allowFailure: true })).stdout).filter((p) => p.name === name);
  const best = served
    .filter((p) => versionMatches(p.version, requestedUpstream(kernelVersion)))
    .sort((a, b) => compareVersions(a.version, b.version))
    .at(-1);
  if (!best) throw new BuildError(`${name} for ${kernelVersion} is not served on the private apt view (served: ${served.map((p) => p.version).join(', ') || 'none'})`);
  return best;
}

async function timed<T>(ro: RunOptions, what: string, step: () => Promise<T>): Promise<T> {
  const started = Date.now();
  ro.log?.(`selftests: ${what}…`);
  const result = await step();
  ro.log?.(`selftests: ${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** Unpacks `members` of the .deb's /usr/src tarball into `dest`; returns the tree's root. */
async function unpackSource(deb: string, series: string, members: readonly string[], dest: string, ro: RunOptions): Promise<string> {
  const tarball = `./usr/src/linux-source-${series}.tar.xz`;
  await mkdir(dest, { recursive: true });
  await run('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" "$3"', 'sh', deb, dest, tarball], ro);
  // The tarball is in 69 xz blocks (7.3.4), so xz can decompress on every core.
  await run('tar', ['-I', 'xz -T0', '-x', '-C', dest, '-f', join(dest, tarball), '--wildcards', ...members], ro);
  await rm(join(dest, 'usr'), { recursive: true, force: true });
  return join(dest, `linux-source-${series}`);
}

function buildEnv(): Record<string, string> {
  return { PATH: BUILD_PATH };
}

/** A make variable's value in one selftest target's Makefile (after lib.mk: full paths). */
async function makeVariable(selftests: string, target: string, output: string, name: string, ro: RunOptions): Promise<string[]> {
  const res = await run(
    'make',
    ['-s', '--no-print-directory', '-C', join(selftests, target), `OUTPUT=${output}`, '--eval', `zcnic-print-%: ; @echo $($*)`, `zcnic-print-${name}`],
    { ...ro, env: buildEnv(), verbose: false },
  );
  return res.stdout.split(/\s+/).filter((w) => w !== '');
}

/** The last error lines of `make FILE` in a target: why one generated file did not build. */
async function failureReason(selftests: string, target: string, output: string, file: string, ro: RunOptions): Promise<string> {
  const res = await run('make', ['-C', join(selftests, target), `OUTPUT=${output}`, file], { ...ro, env: buildEnv(), allowFailure: true, verbose: false });
  const lines = `${res.stdout}\n${res.stderr}`.split('\n').filter((l) => /error|Error|not found|No such|undefined reference/.test(l));
  return (lines.slice(0, 3).join('\n') || 'make failed without an error line').slice(0, 600);
}

const GENERATED = ['TEST_GEN_PROGS', 'TEST_GEN_PROGS_EXTENDED', 'TEST_GEN_FILES'] as const;

interface TargetPlan {
  target: string;
  output: string;
  /** Full paths, by variable: what the Makefile wants built. */
  wanted: Record<(typeof GENERATED)[number], string[]>;
  missing: Set<string>;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function planTarget(selftests: string, target: string, buildDir: string, ro: RunOptions): Promise<TargetPlan> {
  const output = join(buildDir, target);
  const wanted = { TEST_GEN_PROGS: [], TEST_GEN_PROGS_EXTENDED: [], TEST_GEN_FILES: [] } as TargetPlan['wanted'];
  const missing = new Set<string>();
  for (const name of GENERATED) {
    wanted[name] = await makeVariable(selftests, target, output, name, ro);
    for (const file of wanted[name]) if (!(await exists(file))) missing.add(file);
  }
  return { target, output, wanted, missing };
}

/**
 * Installs one target like the selftests Makefile's `install` does, leaving out the files that
 * did not build (a target's `install` depends on `all`, so one failed helper would otherwise
 * keep the whole target out), and appends its tests to kselftest-list.txt.
 */
async function installTarget(selftests: string, plan: TargetPlan, installDir: string, ro: RunOptions): Promise<void> {
  const overrides = GENERATED.map((name) => `${name}=${plan.wanted[name].filter((f) => !plan.missing.has(f)).join(' ')}`);
  const common = ['-C', join(selftests, plan.target), `OUTPUT=${plan.output}`, ...overrides];
  await run('make', [...common, 'install', `INSTALL_PATH=${join(installDir, plan.target)}`, `SRC_PATH=${selftests}`, `OBJ_PATH=${installDir}`], { ...ro, env: buildEnv() });
  if (plan.target === 'net/lib') return;
  const list = await run('make', ['-s', '--no-print-directory', ...common, `COLLECTION=${plan.target}`, 'emit_tests'], { ...ro, env: buildEnv() });
  const listPath = join(installDir, 'kselftest-list.txt');
  await writeFile(listPath, (await readFile(listPath, 'utf8').catch(() => '')) + list.stdout);
}

/** The runner the selftests Makefile installs beside the targets. */
async function installRunner(selftests: string, installDir: string): Promise<void> {
  await mkdir(installDir, { recursive: true });
  await cp(join(selftests, 'kselftest'), join(installDir, 'kselftest'), { recursive: true });
  await cp(join(selftests, 'run_kselftest.sh'), join(installDir, 'run_kselftest.sh'));
}

/** `Makefile:13: excluding iouring tests, ...`: what a Makefile says it left out. */
export function makeWarnings(log: string): string[] {
  return [...new Set(log.split('\n').filter((l) => /^\S*Makefile:\d+: (?!\*\*\*)/.test(l)))];
}

/** Tests of a target as kselftest-list.txt names them (`collection:test`). */
export function testsOf(list: string, target: string): string[] {
  return list
    .split('\n')
    .filter((l) => l.startsWith(`${target}:`))
    .map((l) => l.slice(target.length + 1));
}

async function buildTree(src: string, targets: readonly string[], installDir: string, ro: RunOptions): Promise<{ results: TargetResult[]; warnings: string[] }> {
  const selftests = join(src, 'tools', 'testing', 'selftests');
  const buildDir = join(src, 'kselftest-build');
  const jobs = `-j${Math.max(1, availableParallelism())}`;
  await timed(ro, 'make headers (usr/include for KHDR_INCLUDES)', () => run('make', [jobs, '-C', src, 'headers'], { ...ro, env: buildEnv() }));
  // -k: a helper that does not build must not stop the others; what is missing is found below.
  const all = await timed(ro, `building ${targets.join(', ')} (+ net/lib)`, () =>
    run('make', [jobs, '-k', '-C', selftests, `TARGETS=${targets.join(' ')}`, `BUILD=${buildDir}`, 'all'], { ...ro, env: buildEnv(), allowFailure: true }),
  );
  await writeFile(join(installDir, 'build.log'), `${all.stdout}\n${all.stderr}`);
  await installRunner(selftests, installDir);
  const results: TargetResult[] = [];
  for (const target of [...targets, 'net/lib']) {
    const plan = await planTarget(selftests, target, buildDir, ro);
    const wantedAll = GENERATED.flatMap((n) => plan.wanted[n]);
    if (wantedAll.length > 0 && plan.missing.size === wantedAll.length) {
      throw new BuildError(`selftests target ${target} built nothing; the build log ends:\n${`${all.stdout}\n${all.stderr}`.trim().split('\n').slice(-15).join('\n')}`);
    }
    const failed = [];
    for (const file of plan.missing) failed.push({ name: file.slice(plan.output.length + 1), reason: await failureReason(selftests, target, plan.output, file, ro) });
    await installTarget(selftests, plan, installDir, ro);
    const list = await readFile(join(installDir, 'kselftest-list.txt'), 'utf8').catch(() => '');
    const built = wantedAll.filter((f) => !plan.missing.has(f)).map((f) => f.slice(plan.output.length + 1));
    results.push({ target, tests: testsOf(list, target), built, failed });
  }
  return { results, warnings: makeWarnings(`${all.stdout}\n${all.stderr}`) };
}

/** Builds (or finds in .cache/selftests/) the network selftests for a guest kernel. */
export async function ensureSelftests(opts: SelftestsOptions): Promise<SelftestsBuild> {
  const { ro } = opts;
  const wanted = [...(opts.targets ?? DEFAULT_TARGETS)];
  const root = join(opts.cacheDir, 'selftests');
  const cached = opts.force ? undefined : pickCached(await cachedManifests(root), opts.kernelVersion, wanted);
  if (cached) return { dir: join(root, versionDirName(cached.sourceVersion)), version: cached.sourceVersion, manifest: cached, cached: true };

  const started = Date.now();
  const apt = await PrivateApt.open(join(opts.cacheDir, 'apt'), ro);
  const source = await resolveSource(opts.kernelVersion, apt, ro);
  const series = kernelSeries(opts.kernelVersion);
  const deb = await timed(ro, `download ${source.name} ${source.version}`, () => ensureDeb(join(opts.cacheDir, 'debs'), source.name, source.version, ro, apt.args));
  const dir = join(root, versionDirName(source.version));
  const current = await readManifest(dir);
  const tree = current?.buildVersion === SELFTESTS_BUILD_VERSION ? current : undefined;
  // --force rebuilds the wanted targets as if the tree lacked them; it keeps the others.
  const plan = planBuild(opts.force ? tree?.targets.filter((t) => !wanted.includes(t)) : tree?.targets, wanted);
  const targets = [...plan.kselftestTargets, ...plan.programTargets];
  const tmp = join(root, `.build-${process.pid}-${Date.now()}`);
  const installDir = join(tmp, 'install');
  await mkdir(installDir, { recursive: true });
  try {
    const members = sourceMembers(series, targets);
    const src = await timed(ro, `unpacking ${plan.kselftestTargets.length > 0 ? 'tools/, the netlink specs and what make headers needs' : `what ${plan.programTargets.join(', ')} read${plan.programTargets.length > 1 ? '' : 's'}`}`, () =>
      unpackSource(deb, series, members, join(tmp, 'src'), ro),
    );
    const { results, warnings } = plan.kselftestTargets.length > 0 ? await buildTree(src, plan.kselftestTargets, installDir, ro) : { results: [], warnings: [] };
    for (const target of plan.programTargets) {
      const { build } = PROGRAM_TARGETS[target]!;
      results.push(await timed(ro, `building ${target}`, () => build(src, installDir, { ...ro, env: buildEnv() })));
    }
    const buildSeconds = Math.round((Date.now() - started) / 1000);
    if (tree && !plan.replace) return { dir, version: source.version, manifest: await addToTree(dir, installDir, tree, results, buildSeconds), cached: false };
    const manifest: SelftestsManifest = {
      sourcePackage: source.name,
      sourceVersion: source.version,
      series,
      buildVersion: SELFTESTS_BUILD_VERSION,
      targets,
      results,
      makeWarnings: warnings,
      builtAt: new Date().toISOString(),
      buildSeconds,
    };
    // The manifest last: its presence says the tree is whole.
    await writeFile(join(installDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(installDir, dir);
    return { dir, version: source.version, manifest, cached: false };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Moves what a build installed into the cached tree `dir` (a folder of the same name there is
 * the leftover of an addition that never reached the manifest), then the manifest, written
 * whole and renamed over the old one.
 */
async function addToTree(dir: string, installDir: string, tree: SelftestsManifest, results: readonly TargetResult[], buildSeconds: number): Promise<SelftestsManifest> {
  for (const name of await readdir(installDir)) {
    await rm(join(dir, name), { recursive: true, force: true });
    await rename(join(installDir, name), join(dir, name));
  }
  const manifest = withAddedTargets(tree, results, { at: new Date().toISOString(), buildSeconds });
  const next = join(dir, `.${MANIFEST}.${process.pid}`);
  await writeFile(next, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(next, join(dir, MANIFEST));
  return manifest;
}
