#!/usr/bin/env node
// `node dist/images/selftests-cli.js --kernel-version 7.3 [--targets drivers/net,drivers/net/hw] [--force] [--verbose] [--json]`
import { projectCacheDir } from './build.js';
import { COMMON_OPTIONS, parseCliOptions, runCliMain } from './cli-main.js';
import { DEFAULT_TARGETS, ensureSelftests } from './selftests.js';
import { MSG_ZEROCOPY_TARGET } from './msg-zerocopy.js';
import { XSKXCEIVER_TARGET } from './xskxceiver.js';

const USAGE = `usage: node dist/images/selftests-cli.js --kernel-version X.Y|RELEASE [--targets T,...] [--force] [--verbose] [--json]

Builds (or finds in .cache/selftests/) the kernel's network selftests from Debian's
linux-source-X.Y and prints the install folder (run_kselftest.sh, kselftest-list.txt).
  --kernel-version  the guest kernel: 7.3, 6.12, 7.3.4+deb13-amd64 or debian:7.3
  --targets         selftest targets, comma-separated (default ${DEFAULT_TARGETS.join(',')}; net/lib comes along;
                    ${XSKXCEIVER_TARGET}: xskxceiver alone, with test_xsk.sh; ${MSG_ZEROCOPY_TARGET}:
                    msg_zerocopy alone)
  --force           rebuild even when cached
  --verbose         print every command run
  --json            print the result as one JSON line instead of the folder`;

async function main(): Promise<number> {
  const values = parseCliOptions(
    {
      'kernel-version': { type: 'string' },
      targets: { type: 'string' },
      ...COMMON_OPTIONS,
    },
    USAGE,
  );
  if (typeof values === 'number') return values;
  const kernelVersion = values['kernel-version'];
  if (kernelVersion === undefined) {
    process.stderr.write(`--kernel-version is required\n${USAGE}\n`);
    return 2;
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const build = await ensureSelftests({
    kernelVersion,
    targets: values.targets?.split(',').filter((t) => t !== ''),
    force: values.force,
    cacheDir: projectCacheDir(),
    ro: { verbose: values.verbose, log },
  });
  for (const r of build.manifest.results) {
    log(`${r.target}: ${r.tests.length} tests, ${r.built.length} files built${r.failed.length ? `, not built: ${r.failed.map((f) => f.name).join(', ')}` : ''}`);
  }
  process.stdout.write(values.json ? `${JSON.stringify(build)}\n` : `${build.dir}\n`);
  return 0;
}

runCliMain('selftests', main);
