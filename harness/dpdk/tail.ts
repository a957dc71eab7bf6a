// The last N lines a child printed, kept so that errors can say what the process was doing
// without holding its whole (possibly endless) output in memory.

export class LineTail {
  private readonly lines: string[] = [];
  private partial = '';

  constructor(private readonly max = 200) {}

  /** Feeds a chunk of text; calls `onLine` for each completed line. */
  push(chunk: string, onLine?: (line: string) => void): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      this.lines.push(line);
      onLine?.(line);
    }
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }

  /** The last `n` lines, including an unterminated last line (e.g. a prompt). */
  last(n = 40): string[] {
    const all = this.partial === '' ? this.lines : [...this.lines, this.partial];
    return all.slice(-n);
  }

  /** `last(n)` formatted for an error message. */
  format(n = 40): string {
    const lines = this.last(n);
    return lines.length === 0 ? '  (no output)' : lines.map((l) => `  | ${l}`).join('\n');
  }
}
