/**
 * The harness's long-running helpers (the netns peer, iperf3's server) say on their output when
 * they are ready. This follows a child's output (stdout and stderr, execa's `all`) line by line
 * for its whole life, and resolves at the first line that says it is ready; it rejects when the
 * child exits first, quoting its last lines, or when the timeout passes.
 */
import type { ResultPromise } from 'execa';

/** Lines of the child's output quoted when it exits before it is ready. */
const QUOTED_LINES = 4;

export interface ReadyOptions {
  /** Names the child in errors ("iperf3 server"). */
  readonly what: string;
  /** Whether this line says the child is ready. */
  readonly isReady: (line: string) => boolean;
  readonly timeoutMs: number;
  /** Every line, before and after the ready one. */
  readonly onLine: (line: string) => void;
}

/** `child` must have been started with `all: true`. */
export function untilReady(child: ResultPromise, o: ReadyOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${o.what}: not ready within ${o.timeoutMs / 1000} s`)), o.timeoutMs);
    const last: string[] = [];
    let pending = '';
    child.all?.setEncoding('utf8');
    child.all?.on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (o.isReady(line)) {
          clearTimeout(timer);
          resolve();
        }
        if (line.trim() === '') continue;
        last.push(line);
        if (last.length > QUOTED_LINES) last.shift();
        o.onLine(line);
      }
    });
    void child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`${o.what} exited (${r.exitCode ?? r.signal}) before it was ready: ${[...last, pending.trim()].filter((l) => l !== '').join(' | ')}`));
    });
  });
}
