/**
 * The guest's console as whole lines. QEMU hands stdout over in chunks that cut lines anywhere
 * (the firmware writes one character per write), so a line is kept until its newline arrives.
 * Terminal control sequences are dropped: they would reach whatever shows the lines.
 */
/** The firmware's and the kernel's terminal resets and cursor moves (ESC c, ESC [ ... letter). */
const TERMINAL_CONTROL = /\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z])/g;

export class ConsoleLines {
  readonly lines: string[] = [];
  private partial = '';

  /** Takes a chunk; calls onLine for each line it completed, without its line ending. */
  push(chunk: string, onLine?: (line: string) => void): void {
    const pieces = (this.partial + chunk).split('\n');
    this.partial = pieces.pop()!;
    for (const piece of pieces) this.add(piece, onLine);
  }

  /** The console ended: a last line without a newline still counts. */
  end(onLine?: (line: string) => void): void {
    if (this.partial !== '') this.add(this.partial, onLine);
    this.partial = '';
  }

  /** The last n lines, one string. */
  tail(n: number): string {
    return this.lines.slice(-n).join('\n');
  }

  includes(text: string): boolean {
    return this.lines.some((line) => line.includes(text));
  }

  private add(piece: string, onLine?: (line: string) => void): void {
    const line = piece.replace(TERMINAL_CONTROL, '').replace(/\r+$/, '');
    if (line === '') return;
    this.lines.push(line);
    onLine?.(line);
  }
}
