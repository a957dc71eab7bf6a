import { mkdtemp, mkdir, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalJson, hashTree, imageKey, kernelKey, type ImageKeyInputs } from '../../images/cache-key.js';

const debian = { kind: 'debian', package: 'linux-image-6.12.117+deb12-amd64-unsigned', version: '6.12.117-1~deb12u1' } as const;

const baseImage: ImageKeyInputs = {
  kernelKey: 'k',
  busyboxVersion: '1:1.35.0-4',
  libxdpVersion: '1.3.1-1',
  toolchain: 'gcc=4:12.2.0-3',
  guestHash: 'g',
  builderVersion: 1,
};

test('canonicalJson sorts keys at every level and drops undefined', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: undefined } }), '{"a":{"d":[2,{"e":0,"f":1}]},"b":1}');
});

test('kernelKey is stable, short hex, and ignores module order', () => {
  const a = kernelKey({ source: debian, modules: ['virtio_net', 'tun'], builderVersion: 1 });
  const b = kernelKey({ source: debian, modules: ['tun', 'virtio_net'], builderVersion: 1 });
  assert.is(a, b);
  assert.match(a, /^[0-9a-f]{16}$/);
});

test('kernelKey changes with the pinned version, the module list and the builder', () => {
  const a = kernelKey({ source: debian, modules: ['virtio_net'], builderVersion: 1 });
  assert.is.not(a, kernelKey({ source: { ...debian, version: '6.12.115-2~deb12u1' }, modules: ['virtio_net'], builderVersion: 1 }));
  assert.is.not(a, kernelKey({ source: debian, modules: ['virtio_net', 'veth'], builderVersion: 1 }));
  assert.is.not(a, kernelKey({ source: debian, modules: ['virtio_net'], builderVersion: 2 }));
});

test('a bring-your-own kernel is keyed by its hashes', () => {
  const byo = (k: string, m: string) =>
    kernelKey({ source: { kind: 'byo', kernelSha256: k, modulesTreeSha256: m }, modules: ['virtio_net'], builderVersion: 1 });
  assert.is(byo('a', 'b'), byo('a', 'b'));
  assert.is.not(byo('a', 'b'), byo('a', 'c'));
  assert.is.not(byo('a', 'b'), byo('x', 'b'));
});

test('imageKey depends on every input', () => {
  const k = imageKey(baseImage);
  assert.is(k, imageKey({ ...baseImage }));
  for (const field of Object.keys(baseImage) as (keyof ImageKeyInputs)[]) {
    const changed = { ...baseImage, [field]: typeof baseImage[field] === 'number' ? 99 : 'other' };
    assert.is.not(imageKey(changed), k, `imageKey ignores ${field}`);
  }
});

test('kernel and image keys never collide for the same JSON', () => {
  assert.is.not(kernelKey({ source: debian, modules: [], builderVersion: 1 }), imageKey(baseImage));
});

test('hashTree: content, names, exec bit and symlinks count; mtime and dotfiles do not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'zcnic-hash-'));
  try {
    await mkdir(join(dir, 'suites'));
    await writeFile(join(dir, 'init'), '#!/bin/sh\n');
    await writeFile(join(dir, 'suites', 'smoke.sh'), 'ZCNIC_TESTS=a\n');
    const h0 = await hashTree(dir);
    assert.match(h0, /^[0-9a-f]{64}$/);

    await writeFile(join(dir, 'init'), '#!/bin/sh\n'); // same bytes, new mtime
    await writeFile(join(dir, '.init.swp'), 'editor state');
    assert.is(await hashTree(dir), h0);

    await chmod(join(dir, 'init'), 0o755);
    const h1 = await hashTree(dir);
    assert.is.not(h1, h0);

    await writeFile(join(dir, 'suites', 'smoke.sh'), 'ZCNIC_TESTS=b\n');
    const h2 = await hashTree(dir);
    assert.is.not(h2, h1);

    await symlink('smoke.sh', join(dir, 'suites', 'alias.sh'));
    const h3 = await hashTree(dir);
    assert.is.not(h3, h2);

    await mkdir(join(dir, 'empty'));
    assert.is.not(await hashTree(dir), h3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('hashTree: moving a file to another folder changes the hash', async () => {
  const a = await mkdtemp(join(tmpdir(), 'zcnic-hash-'));
  const b = await mkdtemp(join(tmpdir(), 'zcnic-hash-'));
  try {
    await mkdir(join(a, 'x'));
    await writeFile(join(a, 'x', 'f'), 'data');
    await mkdir(join(b, 'y'));
    await writeFile(join(b, 'y', 'f'), 'data');
    assert.is.not(await hashTree(a), await hashTree(b));
  } finally {
    await rm(a, { recursive: true, force: true });
    await rm(b, { recursive: true, force: true });
  }
});

test.run();
