/** Runs iproute2's `ip` for the harness's namespaces, taps and bridges; its stderr becomes the error. */
import { execFileSync } from 'node:child_process';

export function ip(...args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`ip ${args.join(' ')}: ${stderr || (err as Error).message}`);
  }
}
