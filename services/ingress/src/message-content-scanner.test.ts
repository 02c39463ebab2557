import { describe, expect, it } from 'vitest';
import { MessageContentScanner, type ContentLimits } from './message-content-scanner.js';

const limits: ContentLimits = { maxLineBytes: 10, maxHeaderBytes: 30 };

function scan(chunks: string[], l = limits): ReturnType<MessageContentScanner['end']> {
  const s = new MessageContentScanner(l);
  for (const c of chunks) s.push(Buffer.from(c, 'latin1'));
  return s.end();
}

/** Every way to cut the text in two chunks gives the same verdict. */
function everySplit(text: string, l = limits): Set<ReturnType<MessageContentScanner['end']>> {
  const verdicts = new Set<ReturnType<MessageContentScanner['end']>>();
  for (let i = 0; i <= text.length; i++) verdicts.add(scan([text.slice(0, i), text.slice(i)], l));
  return verdicts;
}

describe('MessageContentScanner', () => {
  it('when the message is within every limit, then there is no fault, however it is chunked', () => {
    expect(everySplit('Subject: a\r\nX: 1234567\r\n\r\n0123456789\r\nbody\r\n')).toEqual(new Set([null]));
  });

  it('when a line is one octet over the limit, then it is too long, however it is chunked', () => {
    expect(everySplit('S: a\r\n\r\n01234567890\r\n')).toEqual(new Set(['line-too-long']));
  });

  it('when a line is exactly the limit, then it passes (the CRLF is not counted)', () => {
    expect(everySplit('S: a\r\n\r\n0123456789\r\n')).toEqual(new Set([null]));
  });

  it('when an endless line is still arriving, then it is known as too long before it ends', () => {
    const s = new MessageContentScanner(limits);
    s.push(Buffer.from('S: a\r\n\r\n'));
    s.push(Buffer.alloc(12, 'x'));
    expect(s.fault).toBe('line-too-long');
  });

  it('when the header section is over its limit, then it is too large; the empty line and the body do not count', () => {
    // 3 lines of 10 octets with CRLF: 30 octets exactly.
    expect(everySplit('A: 12345\r\nB: 12345\r\nC: 12345\r\n\r\nbody line\r\n')).toEqual(new Set([null]));
    expect(everySplit('A: 12345\r\nB: 12345\r\nC: 123456\r\n\r\nbody line\r\n')).toEqual(new Set(['header-too-large']));
    expect(everySplit('A: 1\r\n\r\n0123456789\r\n0123456789\r\n0123456789\r\n')).toEqual(new Set([null]));
  });

  it('when the message has no empty line, then all of it is header', () => {
    expect(scan(['A: 1234\r\nB: 1234\r\nC: 1234\r\nD: 1\r\n'])).toBe('header-too-large');
  });

  it('when a NUL byte is anywhere, then the fault is nul', () => {
    expect(scan(['S: a\r\n\r\nab\u0000c\r\n'])).toBe('nul');
  });

  it('when a bare LF or CR is there, then the fault is a bare line ending (also a trailing lone CR)', () => {
    expect(scan(['S: a\r\n\r\nab\ncd\r\n'])).toBe('bare-line-ending');
    expect(scan(['S: a\r\n\r\nab\r', 'cd\r\n'])).toBe('bare-line-ending');
    expect(scan(['S: a\r\n\r\nab\r'])).toBe('bare-line-ending');
  });

  it('when several faults apply, then header size wins over NUL, NUL over line endings, line endings over length', () => {
    const big = { maxLineBytes: 10, maxHeaderBytes: 5 };
    expect(scan(['Subject: abc\r\n\r\n\u0000\n0123456789012\r\n'], big)).toBe('header-too-large');
    expect(scan(['S: a\r\n\r\n\u0000\n0123456789012\r\n'])).toBe('nul');
    expect(scan(['S: a\r\n\r\n\n0123456789012\r\n'])).toBe('bare-line-ending');
  });
});
