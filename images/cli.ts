#!/usr/bin/env node
// `node dist/images/cli.js [--kernel debian:X.Y | --kernel BZIMAGE --modules DIR] [--force] [--verbose] [--json]`
import { buildImage } from './build.js';
import { COMMON_OPTIONS, parseCliOptions, runCliMain } from './cli-main.js';

const USAGE = `usage: node dist/images/cli.js [--kernel debian:X.Y | --kernel BZIMAGE --modules DIR] [--force] [--verbose] [--json]

Builds (or finds in .cache/images/) the guest kernel and initramfs.
  --kernel debian:X.Y  Debian's newest X.Y kernel (debian:latest: the newest served) instead
                     of the pinned one, through private apt lists under .cache/apt
  --kernel BZIMAGE   bring your own kernel instead of the pinned Debian one
  --modules DIR      its modules tree (lib/modules/<release>)
  --force            rebuild the kernel stage and the image even when cached
  --verbose          print every command run
  --json             print the result as one JSON line on stdout`;

async function main(): Promise<number> {
  const values = parseCliOptions(
    {
      kernel: { type: 'string' },
      modules: { type: 'string' },
      ...COMMON_OPTIONS,
    },
    USAGE,
  );
  if (typeof values === 'number') return values;
  const img = await buildImage({
    kernel: values.kernel,
    modules: values.modules,
    force: values.force,
    verbose: values.verbose,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(img)}\n`);
  } else {
    process.stdout.write(`kernel:    ${img.kernel}\ninitramfs: ${img.initramfs}\nrelease:   ${img.kernelRelease}\nkey:       ${img.cacheKey}\n`);
  }
  return 0;
}

runCliMain('images', main);
