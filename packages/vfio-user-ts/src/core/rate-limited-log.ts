/**
 * A log that cannot be flooded: at most `perSecond` lines a second, then one line saying how
 * many were suppressed. Hostile input can produce an error per message; the disk must not pay.
 */
export type LogSink = (line: string) => void;

export class RateLimitedLog {
  private windowStart = 0;
  private linesInWindow = 0;
  private suppressed = 0;

  constructor(private readonly sink: LogSink, private readonly perSecond = 20, private readonly now: () => number = () => performance.now()) {}

  log(line: string): void {
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) this.sink(`(${this.suppressed} more log lines suppressed)`);
      this.windowStart = now;
      this.linesInWindow = 0;
      this.suppressed = 0;
    }
    if (this.linesInWindow < this.perSecond) {
      this.linesInWindow++;
      this.sink(line);
    } else {
      this.suppressed++;
    }
  }
}
