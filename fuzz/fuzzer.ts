/**
 * The fuzz loop: first every generator once (so each hostile pattern is tried in every run),
 * then a seeded mix of generated, chaos and (with guidance) mutated cases until the time or
 * case budget is spent. Every case runs on a fresh connection; the backend's liveness is checked
 * after each one, and a valid frontend must move an exact frame count through it every
 * `trafficEvery` cases and at the end. A backend that dies or stops answering is a crash: it is
 * recorded with the case that did it and, when the fuzzer started it, restarted.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceStats } from '../harness/device-control.js';
import { Corpus, type Genome } from './coverage.js';
import { chaosPackedRing, chaosRing, mutateRing, ringKinds, type RingCaseKind } from './ring-cases.js';
import { messageKinds, mutateMessage, type MessageCaseKind } from './message-cases.js';
import { runMessageCase } from './message-runner.js';
import { Prng } from './prng.js';
import { emptyReport, type Finding, type FuzzReport } from './report.js';
import { PACKED_FRESH_BASE, packedGenome, RingBuilder, type RingGenome } from './ring-genome.js';
import { runRingCase, type RingOutcome } from './ring-runner.js';
import type { Target } from './target.js';

export interface FuzzOptions {
  readonly target: Target;
  readonly seed: number;
  /** Time budget in seconds (no new case starts after it). */
  readonly seconds: number;
  /** Stop after this many cases (default: no limit). */
  readonly maxCases?: number;
  /** Mutate cases that showed new behaviour (default true). */
  readonly guided?: boolean;
  /** Cases between valid-traffic checks (default 50). */
  readonly trafficEvery?: number;
  /** Progress lines (every few seconds) and findings as they happen. */
  readonly log?: (line: string) => void;
  /** Ends the run after the current case. */
  readonly signal?: AbortSignal;
}

const MAX_KEPT_FINDINGS = 20;
/** Open fds the backend may gain over a run without it being a leak (log files, worker pipes). */
const FD_SLACK = 16;
const STORMS = new Set(['byte-storm', 'header-storm']);

export type Planned =
  | { readonly category: string; readonly type: 'ring'; readonly genome: Genome & { type: 'ring' } }
  | { readonly category: string; readonly type: 'message'; readonly genome: Genome & { type: 'message' } };

function ringCategory(kind: RingCaseKind): string {
  return `${kind.layout === 'packed' ? 'packed' : 'ring'}-${kind.side}`;
}

/** A chaos or mutated ring case's category: packed rings apart from split ones. */
function layoutCategory(ring: RingGenome, what: 'chaos' | 'mutated'): string {
  return `${ring.layout === 'packed' ? 'packed' : 'ring'}-${what}`;
}

function messageCategory(kind: MessageCaseKind): string {
  return STORMS.has(kind.name) ? 'storm' : 'message';
}

/**
 * A valid frontend sends `frames` frames over a split or packed ring, negotiating IN_ORDER or
 * not; the device must count exactly those, without errors.
 */
export async function trafficCheck(target: Target, reflect: boolean, frames = 32, layout: 'split' | 'packed' = 'split', inOrder = false): Promise<string[]> {
  if (frames < 1 || frames > 128) throw new RangeError(`trafficCheck: ${frames} frames is not in 1..128`);
  const b = new RingBuilder('traffic-check', 'tx', 256);
  const heads: number[] = [];
  for (let i = 0; i < frames; i++) heads.push(b.txFrame(60 + ((i * 37) % 1400), i % 3 === 0 ? 'split' : i % 3 === 1 ? 'indirect' : 'one'));
  b.publish(...heads);
  const split: RingGenome = { ...b.build(), inOrder };
  const genome = layout === 'packed' ? packedGenome(split, 'traffic-check-packed', PACKED_FRESH_BASE) : split;
  const outcome: RingOutcome = await runRingCase(target, genome, { reflect });
  const problems = [...outcome.mismatches];
  if (outcome.expected.txFrames !== frames) problems.push(`the traffic check expected ${frames} frames, its own model says ${outcome.expected.txFrames}`);
  if (Object.keys(outcome.expected.errors).length > 0) problems.push(`the traffic check is not valid traffic: ${JSON.stringify(outcome.expected.errors)}`);
  return problems;
}

/**
 * What case `index` of a run is: first every generator once (the sweep), then a seeded mix. Case
 * k after the sweep draws from the k-th fork of the seed's generator, so any case that does not
 * mutate the corpus can be planned on its own (replayCommand) by forking up to it; a mutated case
 * depends on what earlier cases showed and is replayed from its genome instead.
 */
export class CasePlanner {
  private readonly master: Prng;
  private readonly sweep: Planned[] = [];
  /** The index whose fork the master gives next. */
  private nextFork: number;

  constructor(
    readonly seed: number,
    /** The device runs the reflect port, so receive cases can run. */
    public reflect: boolean,
    private readonly guided: boolean,
  ) {
    this.master = new Prng(seed);
    for (const kind of ringKinds) {
      if (kind.side === 'rx' && !reflect) continue;
      this.sweep.push({ category: ringCategory(kind), type: 'ring', genome: { type: 'ring', ring: kind.build(new Prng(`${seed}:${kind.name}`)) } });
    }
    for (const kind of messageKinds) {
      this.sweep.push({ category: messageCategory(kind), type: 'message', genome: { type: 'message', message: kind.build(new Prng(`${seed}:${kind.name}`)) } });
    }
    this.nextFork = this.sweep.length;
  }

  /**
   * Plans case `index` (never one before the last planned after the sweep). `corpus` is what
   * the run kept so far; null when replaying one case, which then must not be a mutation.
   */
  plan(index: number, corpus: Corpus | null): Planned {
    if (index < this.sweep.length) return this.sweep[index]!;
    if (index < this.nextFork) throw new RangeError(`case ${index} was planned already`);
    let prng = this.master.fork(`case ${this.nextFork}`);
    while (this.nextFork < index) prng = this.master.fork(`case ${++this.nextFork}`);
    this.nextFork++;
    const reflect = this.reflect;
    const usable = (layout: 'packed' | undefined): RingCaseKind[] => ringKinds.filter((k) => k.layout === layout && (reflect || k.side === 'tx'));
    // The weights do not depend on the run so far (a guided run has a corpus by the end of
    // the sweep), so a replay draws the same choice.
    const choice = prng.weighted<string>([
      [20, 'ring'],
      [12, 'packed'],
      [8, 'chaos'],
      [4, 'packed-chaos'],
      [25, 'message'],
      [8, 'storm'],
      [this.guided ? 25 : 0, 'mutate'],
    ]);
    switch (choice) {
      case 'ring':
      case 'packed': {
        const kind = prng.pick(usable(choice === 'packed' ? 'packed' : undefined));
        return { category: ringCategory(kind), type: 'ring', genome: { type: 'ring', ring: kind.build(prng) } };
      }
      case 'chaos':
      case 'packed-chaos': {
        let ring = choice === 'packed-chaos' ? chaosPackedRing(prng) : chaosRing(prng);
        if (!reflect) ring = { ...ring, side: 'tx' };
        return { category: layoutCategory(ring, 'chaos'), type: 'ring', genome: { type: 'ring', ring } };
      }
      case 'storm': {
        const kind = prng.pick(messageKinds.filter((k) => STORMS.has(k.name)));
        return { category: 'storm', type: 'message', genome: { type: 'message', message: kind.build(prng) } };
      }
      case 'mutate': {
        if (corpus === null) throw new RangeError(`case ${index} of seed ${this.seed} mutates the run's corpus: replay it from its genome`);
        const parent = corpus.pick(prng);
        if (parent === null) throw new RangeError(`case ${index}: nothing in the corpus to mutate`);
        if (parent.type === 'ring') {
          let ring = mutateRing(parent.ring, prng);
          if (!reflect) ring = { ...ring, side: 'tx' };
          return { category: layoutCategory(ring, 'mutated'), type: 'ring', genome: { type: 'ring', ring } };
        }
        return { category: 'message-mutated', type: 'message', genome: { type: 'message', message: mutateMessage(parent.message, prng) } };
      }
      default: {
        const kind = prng.pick(messageKinds.filter((k) => !STORMS.has(k.name)));
        return { category: messageCategory(kind), type: 'message', genome: { type: 'message', message: kind.build(prng) } };
      }
    }
  }
}

/**
 * The command that runs one case of a run again, on its own: by seed and index when the case
 * can be planned alone, else from its genome, written to a file under the system's temp dir.
 */
export function replayCommand(seed: number, guided: boolean, finding: Finding): string {
  const zcnic = 'node dist/cli/zcnic.js fuzz';
  if (finding.genome === null) return `${zcnic} --seed ${seed}${guided ? '' : ' --no-guide'} (a traffic or resource check: rerun the seed)`;
  if (!finding.category.endsWith('-mutated')) return `${zcnic} --seed ${seed}${guided ? '' : ' --no-guide'} --case ${finding.index}`;
  const file = join(tmpdir(), `zcnic-fuzz-${seed}-case-${finding.index}.json`);
  writeFileSync(file, `${JSON.stringify(finding.genome)}\n`);
  return `${zcnic} --replay ${file}`;
}

/** What running one case on its own showed (see runOneCase). */
export interface CaseResult {
  readonly name: string;
  readonly mismatches: string[];
  /** Null while the backend is alive after the case, else why it is not. */
  readonly crash: string | null;
  /** Error kinds the backend showed. */
  readonly kinds: string[];
}

/** Runs one planned case against the target and checks the backend is still alive after it. */
export async function runOneCase(target: Target, planned: Planned, reflect: boolean): Promise<CaseResult> {
  const name = planned.type === 'ring' ? planned.genome.ring.name : planned.genome.message.name;
  try {
    const outcome = planned.type === 'ring' ? await runRingCase(target, planned.genome.ring, { reflect }) : await runMessageCase(target, planned.genome.message);
    return { name, mismatches: outcome.mismatches, crash: await target.check(), kinds: outcome.kinds };
  } catch (error) {
    const dead = await target.check();
    if (dead === null) throw error;
    return { name, mismatches: [], crash: `${dead}: ${(error as Error).message}`, kinds: [] };
  }
}

/** The genome a replay file holds (what replayCommand writes, or a `case:` line of a report). */
export function plannedFromGenome(genome: Genome): Planned {
  if (genome.type === 'ring') return { category: 'replay', type: 'ring', genome };
  if (genome.type === 'message') return { category: 'replay', type: 'message', genome };
  throw new Error('not a fuzz case: expected {"type":"ring",...} or {"type":"message",...}');
}

/** Which case to run alone: case `index` of seed `seed`'s run, or a genome. */
export type ReplaySource = { readonly seed: number; readonly index: number; readonly guided: boolean } | { readonly genome: Genome };

/**
 * Runs one case of a run on its own, as the run did: on the reflect port when the target has
 * a control socket (put back to what it was afterwards).
 */
export async function replayCase(target: Target, source: ReplaySource): Promise<{ planned: Planned; result: CaseResult }> {
  let originalPort: string | null = null;
  let reflect = false;
  if (target.hasControl) {
    originalPort = (await target.stats()).port;
    reflect = ((await target.request({ cmd: 'setPort', port: 'reflect' })) as { ok?: boolean }).ok === true;
  }
  try {
    const planned = 'genome' in source ? plannedFromGenome(source.genome) : new CasePlanner(source.seed, reflect, source.guided).plan(source.index, null);
    return { planned, result: await runOneCase(target, planned, reflect) };
  } finally {
    if (originalPort && originalPort !== 'reflect' && (await target.check()) === null) await target.request({ cmd: 'setPort', port: originalPort });
  }
}

export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { target } = options;
  const log = options.log ?? (() => {});
  const report = emptyReport(options.seed);
  const guided = options.guided ?? true;
  const trafficEvery = options.trafficEvery ?? 50;
  const corpus = new Corpus();
  const kinds = new Set<string>();
  const packedKinds = new Set<string>();
  const inOrderKinds = new Set<string>();
  const started = Date.now();
  const deadline = started + options.seconds * 1000;
  const maxCases = options.maxCases ?? Infinity;
  let lastProgress = started;

  // Receive cases need frames coming back: run the reflect port while fuzzing, then put back
  // whatever port the device had.
  let originalPort: string | null = null;
  const useReflect = async (): Promise<boolean> => {
    if (!target.hasControl) return false;
    const stats: DeviceStats = await target.stats();
    originalPort ??= stats.port;
    const answer = (await target.request({ cmd: 'setPort', port: 'reflect' })) as { ok?: boolean };
    return answer.ok === true;
  };
  let reflect = await useReflect();

  /** The backend's fds once it has settled (our last disconnect handled), and its heap. */
  const measure = async (): Promise<{ fds: number | null; heap: number | null }> => {
    let fds = target.openFds();
    for (let i = 0; i < 20 && fds !== null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const again = target.openFds();
      if (again === fds) break;
      fds = again;
    }
    const heap = target.hasControl ? (await target.stats()).heap.usedBytes : null;
    return { fds, heap };
  };
  const before = await measure();
  report.resources.fdsBefore = before.fds;
  report.resources.heapBefore = before.heap;

  const planner = new CasePlanner(options.seed, reflect, guided);
  const plan = (index: number): Planned => {
    planner.reflect = reflect;
    return planner.plan(index, corpus);
  };

  const keep = (list: Finding[], finding: Finding): void => {
    if (list.length < MAX_KEPT_FINDINGS) list.push(finding);
  };

  /** After a failure: is the backend dead? Records the crash and restarts it if so. */
  const checkCrash = async (index: number, name: string, category: string, genome: Genome | null, why: string): Promise<'alive' | 'restarted' | 'gone'> => {
    const dead = await target.check();
    if (!dead) return 'alive';
    // Ctrl-C reaches the whole process group: a backend we started ends with us, no crash.
    if (options.signal?.aborted) return 'gone';
    const crash = { index, name, category, details: [dead, why], genome, output: target.lastOutput() };
    const replay = replayCommand(options.seed, guided, crash);
    report.crashes.push({ ...crash, replay });
    log(`CRASH at case ${index} (${name}): ${dead}; replay it alone: ${replay}`);
    if (!target.canRestart) return 'gone';
    await target.restart();
    report.restarts++;
    reflect = await useReflect();
    return 'restarted';
  };

  const runTraffic = async (index: number): Promise<boolean> => {
    try {
      // Every other check over a packed ring, every other two with IN_ORDER.
      const check = report.traffic.passed + report.traffic.failed;
      const problems = await trafficCheck(target, reflect, 32, check % 2 === 1 ? 'packed' : 'split', check % 4 >= 2);
      if (problems.length === 0) {
        report.traffic.passed++;
        return true;
      }
      report.traffic.failed++;
      keep(report.mismatches, { index, name: 'traffic-check', category: 'traffic', details: problems, genome: null });
      report.mismatchCount++;
      log(`traffic check failed after case ${index}: ${problems.join('; ')}`);
      return true;
    } catch (error) {
      report.traffic.failed++;
      const state = await checkCrash(index, 'traffic-check', 'traffic', null, `valid traffic failed: ${(error as Error).message}`);
      if (state === 'alive') keep(report.harnessErrors, { index, name: 'traffic-check', category: 'traffic', details: [(error as Error).message], genome: null });
      return state !== 'gone';
    }
  };

  let index = 0;
  let ran = 0;
  try {
    for (; index < maxCases && Date.now() < deadline && !options.signal?.aborted; index++) {
      const planned = plan(index);
      const name = planned.type === 'ring' ? planned.genome.ring.name : planned.genome.message.name;
      ran++;
      report.categories[planned.category] = (report.categories[planned.category] ?? 0) + 1;
      report.generators[name] = (report.generators[name] ?? 0) + 1;
      let mismatches: string[] = [];
      let signal: string[] = [];
      try {
        if (planned.type === 'ring') {
          const outcome = await runRingCase(target, planned.genome.ring, { reflect });
          mismatches = outcome.mismatches;
          for (const k of outcome.kinds) kinds.add(k);
          if (planned.genome.ring.layout === 'packed') {
            report.packed.cases++;
            for (const k of outcome.kinds) packedKinds.add(k);
          }
          if (outcome.expected.inOrder) {
            report.inOrder[outcome.expected.layout]++;
            for (const k of outcome.kinds) inOrderKinds.add(k);
          }
          signal = [...outcome.kinds, `needsReset:${outcome.actual?.needsReset ?? outcome.expected.needsReset}`, `frames:${Math.sign(outcome.expected.txFrames)}:${Math.sign(outcome.expected.rxFrames)}`];
        } else {
          const outcome = await runMessageCase(target, planned.genome.message);
          mismatches = outcome.mismatches;
          for (const k of outcome.kinds) kinds.add(k);
          signal = [...outcome.kinds, ...outcome.signature];
        }
      } catch (error) {
        if (options.signal?.aborted) break;
        const state = await checkCrash(index, name, planned.category, planned.genome, (error as Error).stack ?? String(error));
        if (state === 'gone') break;
        if (state === 'alive') keep(report.harnessErrors, { index, name, category: planned.category, details: [(error as Error).message], genome: planned.genome });
        continue;
      }
      if (mismatches.length > 0) {
        report.mismatchCount++;
        const finding = { index, name, category: planned.category, details: mismatches, genome: planned.genome };
        const replay = replayCommand(options.seed, guided, finding);
        keep(report.mismatches, { ...finding, replay });
        log(`mismatch at case ${index} (${name}): ${mismatches.join('; ')}; replay it alone: ${replay}`);
      }
      // A backend that died right after answering still counts against this case.
      const state = await checkCrash(index, name, planned.category, planned.genome, 'found dead after the case');
      if (state === 'gone') break;
      if (guided) corpus.add(planned.genome, signal);
      if ((index + 1) % trafficEvery === 0 && !(await runTraffic(index))) break;
      if (Date.now() - lastProgress >= 10_000) {
        lastProgress = Date.now();
        log(`${index + 1} cases, ${kinds.size} error kinds, ${report.crashes.length} crashes, ${report.mismatchCount} mismatches`);
      }
    }
    if (!options.signal?.aborted && (report.crashes.length === 0 || target.canRestart)) await runTraffic(index);
    if ((await target.check()) === null) {
      const after = await measure();
      report.resources.fdsAfter = after.fds;
      report.resources.heapAfter = after.heap;
      // Every connection closes all it was given; a backend that keeps fds will run out of them.
      if (report.restarts === 0 && before.fds !== null && after.fds !== null && after.fds > before.fds + FD_SLACK) {
        report.mismatchCount++;
        keep(report.mismatches, { index, name: 'fd-leak', category: 'resources', details: [`the backend has ${after.fds} fds open after the run, ${before.fds} before`], genome: null });
      }
    }
  } finally {
    if (originalPort && originalPort !== 'reflect' && (await target.check()) === null) {
      await target.request({ cmd: 'setPort', port: originalPort });
    }
  }
  report.cases = ran;
  report.seconds = (Date.now() - started) / 1000;
  report.casesPerSecond = report.seconds > 0 ? ran / report.seconds : 0;
  report.kinds = [...kinds].sort();
  report.packed.kinds = [...packedKinds].sort();
  report.inOrder.kinds = [...inOrderKinds].sort();
  report.corpus = corpus.size;
  report.coverageFeatures = corpus.features;
  return report;
}
