/**
 * Splits what an SMTP server sends into replies (RFC 5321 §4.2): lines `NNN-text` continue a
 * reply, `NNN text` (or a bare `NNN`) ends it. Pure: it is fed decoded text and hands back
 * complete replies, so the probe can read replies from a socket and tests can feed it anything.
 *
 * It also bounds what a hostile or broken server can make us hold: RFC 5321 §4.5.3.1.5 limits a
 * reply line to 512 octets; we allow far more (some servers are sloppy) but not without end.
 */
export interface RawReply {
  code: number;
  /** Every line as sent, without CRLF. */
  lines: string[];
}

export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

export const maxReplyLineChars = 4_096;
export const maxReplyLines = 200;

const replyLine = /^([2-5]\d\d)([ -]|$)/;

export class ReplyReader {
  private buffer = '';
  private lines: string[] = [];
  private code: number | null = null;
  private readonly ready: RawReply[] = [];
  private violation: ProtocolViolation | null = null;

  /** Feeds decoded text; complete replies become available through next(). */
  push(text: string): void {
    if (this.violation) return;
    this.buffer += text;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
      if (this.violation) return;
    }
    if (this.buffer.length > maxReplyLineChars) this.fail(`a reply line longer than ${maxReplyLineChars} characters`);
  }

  private line(line: string): void {
    const m = replyLine.exec(line);
    if (!m) return this.fail(`not an SMTP reply line: ${JSON.stringify(line.slice(0, 80))}`);
    const code = Number(m[1]);
    // RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
    if (this.code !== null && code !== this.code) return this.fail(`reply code changed from ${this.code} to ${code} inside one reply`);
    this.code = code;
    this.lines.push(line);
    if (this.lines.length > maxReplyLines) return this.fail(`a reply of more than ${maxReplyLines} lines`);
    if (m[2] !== '-') {
      this.ready.push({ code, lines: this.lines });
      this.lines = [];
      this.code = null;
    }
  }

  private fail(why: string): void {
    this.violation = new ProtocolViolation(why);
  }

  /** The next complete reply; throws the ProtocolViolation once the stream broke the rules. */
  next(): RawReply | null {
    const reply = this.ready.shift();
    if (reply) return reply;
    if (this.violation) throw this.violation;
    return null;
  }
}

/**
 * Text from the network made safe to store and show: control characters (a NUL byte would be
 * refused by Postgres' jsonb, an escape sequence would reach a terminal) become `\xNN`, and
 * very long lines are cut.
 */
export function printable(text: string, max = 1_000): string {
  const clean = text.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return clean.length > max ? `${clean.slice(0, max)}… (${clean.length - max} more characters)` : clean;
}
