// untilReady over real child processes: ready at the line that says so (and every line passed
// on, after it too), an exit before it quoted, a child that never says it timed out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execa } from 'execa';
import { untilReady } from '../../harness/child-ready.js';

const sh = (script: string) => execa('sh', ['-c', script], { stdin: 'ignore', buffer: false, reject: false, cleanup: true, all: true });

test('resolves at the ready line; lines before and after it (stderr too) reach onLine', async () => {
  const child = sh('echo starting; echo listening on 5201; echo after >&2');
  const lines: string[] = [];
  await untilReady(child, { what: 'child', isReady: (l) => l.startsWith('listening'), timeoutMs: 5000, onLine: (l) => lines.push(l) });
  await child;
  assert.equal(lines, ['starting', 'listening on 5201', 'after']);
});

test('a child that exits before it is ready: rejected with its exit status and last lines', async () => {
  const child = sh('echo cannot bind >&2; exit 3');
  try {
    await untilReady(child, { what: 'child', isReady: (l) => l.startsWith('listening'), timeoutMs: 5000, onLine: () => undefined });
    assert.unreachable('resolved');
  } catch (err) {
    assert.match((err as Error).message, 'child exited (3) before it was ready: cannot bind');
  }
});

test('a child that never says it is ready: rejected at the timeout', async () => {
  const child = sh('echo working; sleep 5');
  try {
    await untilReady(child, { what: 'child', isReady: (l) => l.startsWith('listening'), timeoutMs: 200, onLine: () => undefined });
    assert.unreachable('resolved');
  } catch (err) {
    assert.match((err as Error).message, 'child: not ready within 0.2 s');
  } finally {
    child.kill();
    await child;
  }
});

test.run();
