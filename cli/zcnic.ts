#!/usr/bin/env node
/** zcnic's command line: one subcommand per job. */
import { deviceCommand } from './device-command.js';
import { fuzzCommand } from './fuzz-command.js';
import { UsageError } from './options.js';
import { runCommand, shellCommand } from './run-command.js';
import { selftestsCommand } from './selftests-command.js';
import { BuildError } from '../images/run.js';

const help = `Usage: zcnic <command> [options]

Commands:
  run       boot the guest on the zcnic device, run test suites, report
  shell     boot the guest on the zcnic device with an interactive shell
  selftests the kernel's own network selftests on two zcnic NICs, beside QEMU's virtio-net
  device    run the virtio-net device behind a vhost-user socket
  fuzz      feed a vhost-user backend hostile rings and messages, check it survives and counts

Run 'zcnic <command> --help' for a command's options.
`;

const commands: Record<string, (argv: string[]) => Promise<number>> = { run: runCommand, shell: shellCommand, selftests: selftestsCommand, device: deviceCommand, fuzz: fuzzCommand };

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') {
    process.stdout.write(help);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`zcnic: ${error.message}\nTry 'zcnic ${process.argv[2] ?? ''} --help'.\n`);
      process.exitCode = 2;
    } else if (error instanceof BuildError) {
      // An image, kernel or selftests build that could not be done: its message says why.
      process.stderr.write(`zcnic: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`zcnic: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
