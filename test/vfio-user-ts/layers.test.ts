/**
 * The package's folders are its layers, and imports go one way only: core/ knows no transport,
 * vhost-user/ knows core/ but not the test frontend, and device/ never imports the test frontend. A later vfio-user transport is one more folder
 * beside vhost-user/. Checked on the sources, so a wrong import fails here, not in a review.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const packageSource = join(root, 'packages/vfio-user-ts/src');

function typeScriptFiles(folder: string): string[] {
  return readdirSync(folder, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
    .map((name) => join(folder, name));
}

/** Every module specifier a file imports or re-exports from. */
function importsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'([^']+)'/gms)].map((match) => match[1]!);
}

function offenders(folder: string, forbidden: (specifier: string) => boolean): string[] {
  return typeScriptFiles(folder).flatMap((file) => importsOf(file).filter(forbidden).map((specifier) => `${file.slice(root.length)}: ${specifier}`));
}

test('core/ imports no transport and not the test frontend', () => {
  assert.equal(offenders(join(packageSource, 'core'), (s) => /^\.\.\//.test(s)), []);
});

test('vhost-user/ imports core/ and itself, not the test frontend', () => {
  assert.equal(offenders(join(packageSource, 'vhost-user'), (s) => s.startsWith('../') && !s.startsWith('../core/')), []);
});

test('device/ never imports the test frontend', () => {
  assert.equal(offenders(join(root, 'device'), (s) => s.includes('vhost-user-frontend')), []);
});

test('the frontend is not part of the package index', () => {
  assert.equal(importsOf(join(packageSource, 'index.ts')).filter((s) => s.includes('vhost-user-frontend')), []);
});

test.run();
