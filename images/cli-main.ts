// What the image builders' command lines share: options parsed strictly with the usage on an
// error, --help, and BuildError printed as a message (anything else with its stack).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BuildError } from './run.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The options every builder takes: rebuild, print commands, JSON output, help. */
export const COMMON_OPTIONS = {
  force: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** The parsed option values, or an exit code (2: bad options, 0: --help printed). */
export function parseCliOptions<O extends Options>(options: O, usage: string): ReturnType<typeof parseArgs<{ options: O; strict: true }>>['values'] | number {
  try {
    const { values } = parseArgs({ options, strict: true });
    if ((values as { help?: boolean }).help) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    return values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
}

/** Runs a command's main and exits with its code; `name` prefixes error messages. */
export function runCliMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof BuildError) process.stderr.write(`${name}: ${err.message}\n`);
      else process.stderr.write(`${name}: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
