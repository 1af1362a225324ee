import type { Readable } from 'node:stream';

/**
 * The last `maxBytes` of a run's raw output, as whole lines where they fit: what is kept of a
 * process that may print hundreds of MiB. Memory stays within about twice the bound.
 */
export class TailBuffer {
  private lines: string[] = [];
  private bytes = 0;
  private dropped = false;

  constructor(private readonly maxBytes: number) {}

  push(line: string): void {
    let text = line;
    let size = Buffer.byteLength(text) + 1;
    if (size > this.maxBytes) {
      // One line longer than the whole tail: keep its end, where a reason usually is.
      const buf = Buffer.from(text);
      text = buf.subarray(buf.length - (this.maxBytes - 1)).toString('utf8');
      size = Buffer.byteLength(text) + 1;
      this.dropped = true;
    }
    this.lines.push(text);
    this.bytes += size;
    let drop = 0;
    while (this.bytes > this.maxBytes && drop < this.lines.length - 1) {
      this.bytes -= Buffer.byteLength(this.lines[drop]!) + 1;
      drop++;
    }
    if (drop > 0) {
      this.lines = this.lines.slice(drop);
      this.dropped = true;
    }
  }

  get truncated(): boolean {
    return this.dropped;
  }

  /** The kept lines, newline-joined, marked when something was dropped before them. */
  text(): string {
    const body = this.lines.join('\n');
    return this.dropped ? '[... truncated ...]\n' + body : body;
  }
}

export interface Line {
  text: string;
  /** The line was longer than the limit: `text` is only its end. */
  cut: boolean;
  /** Its length in bytes as printed, cut or not. */
  bytes: number;
}

/**
 * Calls `onLine` for each line of `stream` as it arrives, never holding more than
 * `maxLineBytes` of one line (a longer line is kept as its end and marked cut). Resolves when
 * the stream ends, after the last line (even without a final newline).
 */
export function eachLine(
  stream: Readable,
  maxLineBytes: number,
  onLine: (line: Line) => void,
): Promise<void> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineBytes = 0;
  let cut = false;
  const emit = (last: Buffer) => {
    let buf = Buffer.concat([...pending, last]);
    if (buf.length > maxLineBytes) {
      buf = buf.subarray(buf.length - maxLineBytes);
      cut = true;
    }
    let text = buf.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    onLine({ text, cut, bytes: lineBytes + last.length });
    pending = [];
    pendingBytes = 0;
    lineBytes = 0;
    cut = false;
  };
  const keep = (part: Buffer) => {
    if (part.length === 0) return;
    pending.push(part);
    pendingBytes += part.length;
    lineBytes += part.length;
    // Compact only past twice the bound, so a long line costs linear time.
    if (pendingBytes > 2 * maxLineBytes) {
      const all = Buffer.concat(pending);
      pending = [all.subarray(all.length - maxLineBytes)];
      pendingBytes = maxLineBytes;
      cut = true;
    }
  };
  return new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer | string) => {
      let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
        emit(buf.subarray(0, nl));
        buf = buf.subarray(nl + 1);
      }
      keep(buf);
    });
    stream.once('end', () => {
      if (pendingBytes > 0) emit(Buffer.alloc(0));
      resolve();
    });
    stream.once('close', () => {
      if (pendingBytes > 0) emit(Buffer.alloc(0));
      resolve();
    });
    // A pipe torn down with its process is an end too: what arrived before it still counts.
    stream.once('error', () => resolve());
  });
}
