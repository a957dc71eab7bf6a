#!/usr/bin/env node
// `node dist/images/cli.js [--kernel debian:X.Y | --kernel BZIMAGE --modules DIR] [--force] [--verbose] [--json]`
import { parseArgs } from 'node:util';
import { buildImage, BuildError } from './build.js';

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
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        kernel: { type: 'string' },
        modules: { type: 'string' },
        force: { type: 'boolean', default: false },
        verbose: { type: 'boolean', short: 'v', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
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

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof BuildError) process.stderr.write(`images: ${err.message}\n`);
    else process.stderr.write(`images: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
