import { StringDecoder } from 'node:string_decoder';

/**
 * Output of many processes on one terminal: every line gets the name of the process that
 * wrote it, padded so the `|` columns line up (`ingress    | …`, `sender:default@127.0.0.1 | …`).
 */

/** Splits a byte stream into lines; a partial last line waits for the next chunk or `flush`. */
export class LineSplitter {
  private partial = '';

  /** Returns the complete lines in `chunk` (without their line endings). */
  push(chunk: string): string[] {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    return parts.map(stripCarriageReturn);
  }

  /** The unterminated rest, when the stream ends (null when there is none). */
  flush(): string | null {
    const rest = this.partial;
    this.partial = '';
    return rest === '' ? null : stripCarriageReturn(rest);
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** `name` padded to `width`, then ` | `. */
export function linePrefix(name: string, width: number): string {
  return `${name.padEnd(width)} | `;
}

/** The width that aligns every name in the list. */
export function prefixWidth(names: readonly string[]): number {
  return names.reduce((w, n) => Math.max(w, n.length), 0);
}

const levelNames: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every pino line carries that the prefix or the layout already shows. */
const shownElsewhere = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service', 'v']);

/**
 * Renders one pino JSON line for a terminal: `12:00:01.123 INFO  started port=2525`. A line
 * that is not a pino object comes back unchanged. Multi-line values (stack traces) follow on
 * their own lines, so one input line may give several output lines.
 */
export function prettyLogLine(line: string): string[] {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') || !trimmed.endsWith('}')) return [line];
  let record: unknown;
  try {
    record = JSON.parse(trimmed);
  } catch {
    return [line];
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return [line];
  const fields = record as Record<string, unknown>;
  if (typeof fields.level !== 'number') return [line];
  const level = (levelNames[fields.level] ?? `L${fields.level}`).padEnd(5);
  const time = formatTime(fields.time);
  const msg = typeof fields.msg === 'string' ? fields.msg : '';
  const extras: string[] = [];
  const blocks: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (shownElsewhere.has(key) || value === undefined) continue;
    if (typeof value === 'string' && value.includes('\n')) {
      blocks.push(...value.split('\n').map((l) => `    ${l}`));
      extras.push(`${key}=↓`);
    } else {
      extras.push(`${key}=${formatValue(value)}`);
    }
  }
  const head = [time, level, msg, ...extras].filter((p) => p !== '').join(' ');
  return [head, ...blocks];
}

function formatTime(time: unknown): string {
  let date: Date | null = null;
  if (typeof time === 'number') date = new Date(time);
  else if (typeof time === 'string') date = new Date(time);
  if (!date || Number.isNaN(date.getTime())) return '';
  // Local wall-clock time: this is for a person watching a terminal.
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value);
}

/** How child lines are rendered: pretty (pino lines made readable) or raw (unchanged). */
export type OutputMode = 'pretty' | 'raw';

/** Something lines can be written to (process.stdout, a test buffer). */
export interface TextSink {
  write(text: string): unknown;
}

/** Writes prefixed lines for named sources to a sink. */
export class PrefixedOutput {
  private width: number;

  constructor(
    private readonly sink: TextSink,
    names: readonly string[],
    private readonly mode: OutputMode,
  ) {
    this.width = prefixWidth(names);
  }

  /** Widens the column for a name that joins later. */
  addName(name: string): void {
    this.width = Math.max(this.width, name.length);
  }

  line(name: string, line: string): void {
    const rendered = this.mode === 'pretty' ? prettyLogLine(line) : [line];
    const prefix = linePrefix(name, this.width);
    this.sink.write(rendered.map((l) => `${prefix}${l}\n`).join(''));
  }

  /**
   * A stream for a named source: feed it chunks, end it when the source closes. `onLine` sees
   * every complete line as written by the source (before rendering).
   */
  stream(name: string, onLine: (line: string) => void = () => {}): { write(chunk: string | Buffer): void; end(): void } {
    const splitter = new LineSplitter();
    // A multi-byte UTF-8 character can straddle two chunks: decode with a stateful decoder.
    const decoder = new StringDecoder('utf8');
    const emit = (l: string) => {
      onLine(l);
      this.line(name, l);
    };
    return {
      write: (chunk) => {
        const text = typeof chunk === 'string' ? chunk : decoder.write(chunk);
        for (const l of splitter.push(text)) emit(l);
      },
      end: () => {
        for (const l of splitter.push(decoder.end())) emit(l);
        const rest = splitter.flush();
        if (rest !== null) emit(rest);
      },
    };
  }
}
