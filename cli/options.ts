/** Command-line helpers shared by the zcnic subcommands. */

/** A mistake in how the command was called: printed with a hint to --help, exit status 2. */
export class UsageError extends Error {}

export function integerOption(name: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`${name} takes a whole number, not ${JSON.stringify(text)}`);
  return value;
}
