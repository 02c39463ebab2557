import { describe, expect, it } from 'vitest';
import { maxReplyLineChars, printable, ProtocolViolation, ReplyReader } from './reply-reader.js';

describe('ReplyReader', () => {
  it('when a multiline reply arrives in pieces, then it comes out whole once its last line is in', () => {
    const r = new ReplyReader();
    r.push('250-mx.example Hello\r\n250-PIPE');
    expect(r.next()).toBeNull();
    r.push('LINING\r\n250 STARTTLS\r\n220 next');
    expect(r.next()).toEqual({ code: 250, lines: ['250-mx.example Hello', '250-PIPELINING', '250 STARTTLS'] });
    expect(r.next()).toBeNull();
    r.push('\n');
    expect(r.next()).toEqual({ code: 220, lines: ['220 next'] });
  });

  it('when a line is a bare code, or ends with LF only, then it still ends the reply', () => {
    const r = new ReplyReader();
    r.push('250\n554 5.7.1 go away\n');
    expect(r.next()).toEqual({ code: 250, lines: ['250'] });
    expect(r.next()).toEqual({ code: 554, lines: ['554 5.7.1 go away'] });
  });

  it('when the server sends something that is not a reply line, then next() throws a ProtocolViolation', () => {
    const r = new ReplyReader();
    r.push('HTTP/1.1 400 Bad Request\r\n');
    expect(() => r.next()).toThrow(ProtocolViolation);
  });

  it('when the code changes inside a multiline reply, then it is a violation (RFC 5321 §4.2.1)', () => {
    const r = new ReplyReader();
    r.push('250-a\r\n550 b\r\n');
    expect(() => r.next()).toThrow(/changed from 250 to 550/);
  });

  it('when a line grows past the limit without an end, then it is a violation (a hostile server cannot make us hold it all)', () => {
    const r = new ReplyReader();
    r.push(`220 ${'x'.repeat(maxReplyLineChars)}`);
    expect(() => r.next()).toThrow(/longer than/);
  });

  it('when replies come before a violation, then they are still handed out first', () => {
    const r = new ReplyReader();
    r.push('220 hi\r\ngarbage\r\n');
    expect(r.next()).toEqual({ code: 220, lines: ['220 hi'] });
    expect(() => r.next()).toThrow(ProtocolViolation);
  });
});

describe('printable', () => {
  it('when text holds control characters, then they are escaped and long text is cut', () => {
    expect(printable('550 no\u0000\u001b[31m')).toBe('550 no\\x00\\x1b[31m');
    expect(printable('tab\tstays')).toBe('tab\tstays');
    expect(printable('a'.repeat(20), 5)).toBe('aaaaa… (15 more characters)');
  });
});
