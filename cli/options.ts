/** Command-line helpers shared by the zcnic subcommands. */

/** A mistake in how the command was called: printed with a hint to --help, exit status 2. */
export class UsageError extends Error {}

export function integerOption(name: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`${name} takes a whole number, not ${JSON.stringify(text)}`);
  return value;
}

/** What a long-running command hands its steps: timed progress lines, and Ctrl-C as an abort. */
export interface CommandContext {
  readonly progress: (line: string) => void;
  readonly signal: AbortSignal;
}

/**
 * Runs a command's body with progress lines stamped from its start and SIGINT/SIGTERM turned
 * into an abort, so the body stops its children and removes its files before the process ends.
 * `on`, not `once`: a second Ctrl-C (or execa's cleanup re-sending one) must not end the process
 * before that is done.
 */
export async function withCommandContext(stopping: string, body: (ctx: CommandContext) => Promise<number>): Promise<number> {
  const abort = new AbortController();
  const onSignal = (): void => {
    if (abort.signal.aborted) return;
    process.stderr.write(`\nzcnic: interrupted, stopping ${stopping}…\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = Date.now();
  const progress = (line: string): void => void process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}\n`);
  try {
    return await body({ progress, signal: abort.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
