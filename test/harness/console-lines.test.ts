import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConsoleLines } from '../../harness/console-lines.js';

test('one character per chunk (the firmware) still gives whole lines', () => {
  const c = new ConsoleLines();
  const seen: string[] = [];
  for (const ch of '\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)\r\nBooting from ROM...\r\n') c.push(ch, (line) => seen.push(line));
  // Split per chunk, as before, this was one "line" per character.
  assert.equal(seen, ['SeaBIOS (version 1.16)', 'Booting from ROM...']);
  assert.equal(c.lines, seen);
});

test('a line cut across chunks, blank lines dropped, the last line kept at the end', () => {
  const c = new ConsoleLines();
  c.push('[    0.000000] Linux ver');
  c.push('sion 6.12\n\n[    1.0');
  assert.equal(c.lines, ['[    0.000000] Linux version 6.12']);
  const seen: string[] = [];
  c.end((line) => seen.push(line));
  assert.equal(seen, ['[    1.0']);
  assert.is(c.tail(1), '[    1.0');
  assert.ok(c.includes('Linux version'));
});

test.run();
