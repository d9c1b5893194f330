// Container output as log lines: split on newlines with a bounded line length, prefixed by their source for the log view.

export interface LogLine {
  /** `namespace/pod/container`. */
  source: string;
  stream: 'stdout' | 'stderr';
  text: string;
  /** The line was longer than the limit; the rest of it was dropped. */
  truncated: boolean;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024;

/** Splits a byte stream into lines. Holds at most `maxLineBytes` of an unfinished line. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private held = 0;
  /** Inside an overlong line whose head was already emitted: skip to its newline. */
  private skipping = false;

  constructor(
    private readonly onLine: (text: string, truncated: boolean) => void,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (!this.skipping) {
        const room = this.maxLineBytes - this.held;
        const piece = chunk.subarray(start, Math.min(end, start + room));
        if (piece.length > 0) {
          this.parts.push(piece);
          this.held += piece.length;
        }
        if (end - start > room) {
          this.emit(true);
          this.skipping = true;
        }
      }
      if (nl < 0) return;
      if (this.skipping) this.skipping = false;
      else this.emit(false);
      start = nl + 1;
    }
  }

  /** The stream ended: a last line without a newline is still a line. */
  end(): void {
    if (!this.skipping && this.held > 0) this.emit(false);
    this.skipping = false;
  }

  private emit(truncated: boolean): void {
    let text = Buffer.concat(this.parts, this.held).toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    this.parts = [];
    this.held = 0;
    this.onLine(text, truncated);
  }
}

const COLORS = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

function colorOf(source: string): number {
  let h = 0;
  for (let i = 0; i < source.length; i++) h = (Math.imul(h, 31) + source.charCodeAt(i)) >>> 0;
  return COLORS[h % COLORS.length] ?? 36;
}

/** `[source] text`, the prefix coloured per source on a terminal; stderr is marked on plain output. */
export function formatLogLine(line: LogLine, opts: { color: boolean }): string {
  const tail = line.truncated ? ' …[line truncated]' : '';
  if (!opts.color) return `[${line.source}]${line.stream === 'stderr' ? ' (stderr)' : ''} ${line.text}${tail}`;
  return `\x1b[${colorOf(line.source)}m[${line.source}]\x1b[0m ${line.text}${tail}`;
}
