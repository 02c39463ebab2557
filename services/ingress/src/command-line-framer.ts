const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

/**
 * Why a command line is refused before smtp-server may read it:
 * - `too-long`: longer than the limit (RFC 5321 §4.5.3.1.4 allows 512 octets with CRLF, extensions more);
 * - `bare-line-ending`: ended by a bare LF, or holding a bare CR (RFC 5321 §2.3.8: CR and LF only as
 *   CRLF). smtp-server would take `\n` as a line end, so `MAIL FROM:<a>\nRCPT TO:<b>` would be two
 *   commands to it and one line to a stricter server: the same ambiguity SMTP smuggling uses;
 * - `nul`: a NUL byte, which ends a C string in logs and in servers behind us.
 */
export type LineFault = 'too-long' | 'bare-line-ending' | 'nul';

/** One command line (CRLF removed), or the fault it was refused for (its bytes are dropped). */
export type FramedLine = { line: Buffer; fault: null } | { line: null; fault: LineFault };

/**
 * Cuts the bytes a client sends in command mode into lines, judging how each line is framed.
 * Incremental (a line may arrive in any number of chunks) and bounded: it holds at most the
 * limit plus one octet of an unfinished line, and the rest of an over-long line is skipped up
 * to its LF without being kept.
 */
export class CommandLineFramer {
  private parts: Buffer[] = [];
  private held = 0;
  private overlong = false;

  /** @param maxLineBytes longest line accepted, CRLF not counted. */
  constructor(private readonly maxLineBytes: number) {}

  /** Whether part of a line has arrived but not its LF. */
  get midLine(): boolean {
    return this.held > 0 || this.overlong;
  }

  /**
   * Frames the next line of `chunk` from `offset`: the line and the offset after its LF, or null
   * when the chunk ends first (its bytes are kept for the next call).
   */
  next(chunk: Buffer, offset: number): { framed: FramedLine; end: number } | null {
    const lf = chunk.indexOf(LF, offset);
    if (lf === -1) {
      this.hold(chunk.subarray(offset));
      return null;
    }
    const tail = chunk.subarray(offset, lf);
    const framed = this.frame(tail);
    this.parts = [];
    this.held = 0;
    this.overlong = false;
    return { framed, end: lf + 1 };
  }

  private hold(bytes: Buffer): void {
    if (this.overlong || bytes.length === 0) return;
    // One more than the limit: the line's own CR may be the last byte before its LF.
    if (this.held + bytes.length > this.maxLineBytes + 1) {
      this.overlong = true;
      this.parts = [];
      this.held = 0;
      return;
    }
    // A copy: a slice would keep the socket's whole read buffer alive while the client dawdles.
    this.parts.push(Buffer.from(bytes));
    this.held += bytes.length;
  }

  private frame(tail: Buffer): FramedLine {
    if (this.overlong) return { line: null, fault: 'too-long' };
    const raw = this.parts.length === 0 ? tail : Buffer.concat([...this.parts, tail], this.held + tail.length);
    const crlf = raw.length > 0 && raw[raw.length - 1] === CR;
    const line = crlf ? raw.subarray(0, raw.length - 1) : raw;
    if (line.length > this.maxLineBytes) return { line: null, fault: 'too-long' };
    if (!crlf || line.includes(CR)) return { line: null, fault: 'bare-line-ending' };
    if (line.includes(NUL)) return { line: null, fault: 'nul' };
    return { line, fault: null };
  }
}
