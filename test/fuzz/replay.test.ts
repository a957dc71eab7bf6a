/**
 * Replaying one case of a fuzz run on its own: a case that does not mutate the run's corpus is
 * planned from the seed and its index alone, exactly as the run planned it; a mutated one is
 * replayed from its genome. What a mismatch or crash prints must run that one case.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Corpus } from '../../fuzz/coverage.js';
import { CasePlanner, replayCommand, type Planned } from '../../fuzz/fuzzer.js';
import { messageKinds } from '../../fuzz/message-cases.js';
import { ringKinds } from '../../fuzz/ring-cases.js';
import { ZCNIC_ENTRY } from '../../fuzz/target.js';

const SEED = 156198693;

/** A run's plans for cases 0..count-1, with a corpus that keeps every case (as a run keeps the new ones). */
function runPlans(count: number): Planned[] {
  const planner = new CasePlanner(SEED, true, true);
  const corpus = new Corpus();
  const plans: Planned[] = [];
  for (let i = 0; i < count; i++) {
    const planned = planner.plan(i, corpus);
    corpus.add(planned.genome, [`case ${i}`]);
    plans.push(planned);
  }
  return plans;
}

test('a case that mutates nothing is planned alone exactly as the run planned it', () => {
  const plans = runPlans(400);
  let checked = 0;
  for (let i = 0; i < plans.length; i++) {
    if (plans[i]!.category.endsWith('-mutated')) continue;
    assert.equal(new CasePlanner(SEED, true, true).plan(i, null), plans[i], `case ${i}`);
    checked++;
  }
  assert.ok(checked > 250, `${checked} cases checked`);
  const mutated = plans.findIndex((p) => p.category.endsWith('-mutated'));
  assert.throws(() => new CasePlanner(SEED, true, true).plan(mutated, null), /replay it from its genome/);
});

test('the replay command: --seed S --case N, or --replay FILE holding the genome of a mutated case', () => {
  const plans = runPlans(400);
  const generated = plans.findIndex((p, i) => i > 100 && p.category === 'ring-chaos');
  const finding = { index: generated, name: 'x', category: plans[generated]!.category, details: [], genome: plans[generated]!.genome };
  assert.is(replayCommand(SEED, true, finding), `node dist/cli/zcnic.js fuzz --seed ${SEED} --case ${generated}`);
  assert.is(replayCommand(SEED, false, finding), `node dist/cli/zcnic.js fuzz --seed ${SEED} --no-guide --case ${generated}`);
  const mutated = plans.findIndex((p) => p.category === 'ring-mutated');
  const command = replayCommand(SEED, true, { index: mutated, name: 'x', category: 'ring-mutated', details: [], genome: plans[mutated]!.genome });
  const file = /--replay (\S+)$/.exec(command)?.[1];
  assert.ok(file, command);
  try {
    assert.equal(JSON.parse(readFileSync(file, 'utf8')), plans[mutated]!.genome);
  } finally {
    rmSync(file, { force: true });
  }
});

test('zcnic fuzz --seed S --case N runs that one case against a device of its own', () => {
  // A case after the sweep (every generator once), which the seed alone plans.
  const sweep = ringKinds.length + messageKinds.length;
  const plans = runPlans(sweep + 40);
  const index = plans.findIndex((p, i) => i >= sweep && p.type === 'ring' && !p.category.endsWith('-mutated'));
  assert.ok(index >= 0, 'a generated ring case after the sweep');
  const run = spawnSync(process.execPath, [ZCNIC_ENTRY, 'fuzz', '--seed', String(SEED), '--case', String(index)], { encoding: 'utf8', timeout: 30_000 });
  assert.is(run.status, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, new RegExp(`case ${index} of seed ${SEED} \\(${plans[index]!.category}, `));
  assert.ok(run.stdout.includes(`case: ${JSON.stringify(plans[index]!.genome)}`), run.stdout);
  assert.match(run.stdout, /mismatches: none/);
});

test.run();
