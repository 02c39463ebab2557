import { LineEndingScanner } from './line-ending-scanner.js';

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/**
 * Why a message's bytes are refused, in the order the verdict picks when several apply:
 * - `header-too-large`: the header section (up to the empty line) is over its limit;
 * - `nul`: a NUL byte (RFC 5322 §3.5, RFC 2045 §2.8);
 * - `bare-line-ending`: a bare CR or LF (RFC 5321 §2.3.8, SMTP smuggling: line-ending-scanner.ts);
 * - `line-too-long`: a line over its limit (RFC 5322 §2.1.1 says 998; the limit is configurable).
 */
export type ContentFault = 'header-too-large' | 'nul' | 'bare-line-ending' | 'line-too-long';

export interface ContentLimits {
  /** Longest line, CRLF not counted. */
  maxLineBytes: number;
  /** Largest header section: its lines with their CRLFs, the empty line that ends it not counted. */
  maxHeaderBytes: number;
}

/**
 * Judges a message (after dot-unstuffing) chunk by chunk as DATA streams in, so that the verdict
 * is ready at the final dot without a second pass and memory stays constant: it keeps counters,
 * never bytes. Once it has found a fault the caller may stop keeping the message.
 */
export class MessageContentScanner {
  private readonly lineEndings = new LineEndingScanner();
  /** Bytes of the line under way (its CR included). */
  private lineBytes = 0;
  /** The last byte of the previous chunk (a CR there belongs to a line ending in this chunk). */
  private lastByte = -1;
  private inHeader = true;
  private headerBytes = 0;
  private readonly found = new Set<ContentFault>();

  constructor(private readonly limits: ContentLimits) {}

  /** The fault the verdict would give so far (one still possible at the end: a trailing lone CR). */
  get fault(): ContentFault | null {
    return this.verdict();
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.lineEndings.push(chunk);
    if (this.lineEndings.foundBare) this.found.add('bare-line-ending');
    if (chunk.includes(NUL)) this.found.add('nul');
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf > 0 ? chunk[lf - 1] : this.lastByte;
      this.endLine(this.lineBytes + (lf - start), before === CR);
      this.lineBytes = 0;
      start = lf + 1;
    }
    this.lineBytes += chunk.length - start;
    // A line still arriving is judged now (its CR may be the one extra byte), so a single
    // endless line is known as too long long before it ends.
    if (this.lineBytes > this.limits.maxLineBytes + 1) this.found.add('line-too-long');
    this.lastByte = chunk[chunk.length - 1]!;
  }

  /** The stream is over: the verdict, or null when the message may be kept. */
  end(): ContentFault | null {
    if (this.lineEndings.end()) this.found.add('bare-line-ending');
    if (this.lineBytes > 0) this.endLine(this.lineBytes, false);
    this.lineBytes = 0;
    return this.verdict();
  }

  /** One line ended: `bytes` before its LF, `cr` when the last of them is its CR. */
  private endLine(bytes: number, cr: boolean): void {
    const content = cr ? bytes - 1 : bytes;
    if (content > this.limits.maxLineBytes) this.found.add('line-too-long');
    if (!this.inHeader) return;
    if (content === 0) {
      this.inHeader = false;
      return;
    }
    this.headerBytes += bytes + 1;
    if (this.headerBytes > this.limits.maxHeaderBytes) this.found.add('header-too-large');
  }

  private verdict(): ContentFault | null {
    for (const fault of ['header-too-large', 'nul', 'bare-line-ending', 'line-too-long'] as const) if (this.found.has(fault)) return fault;
    return null;
  }
}
