import { describe, expect, it } from 'vitest';
import { LineEndingScanner } from './line-ending-scanner.js';

function scan(...chunks: string[]): boolean {
  const scanner = new LineEndingScanner();
  for (const chunk of chunks) scanner.push(Buffer.from(chunk, 'latin1'));
  return scanner.end();
}

describe('LineEndingScanner', () => {
  it('when every line ends with CRLF, then nothing bare is found', () => {
    expect(scan('Subject: a\r\n\r\n.dot\r\nbody\r\n')).toBe(false);
    expect(scan()).toBe(false);
    expect(scan('', 'no line ending at all')).toBe(false);
  });

  it('when a CRLF is split across chunks, then it is still one CRLF', () => {
    expect(scan('Subject: a\r', '\nbody\r', '\n')).toBe(false);
    expect(scan('a\r', '', '\nb\r\n')).toBe(false);
  });

  it('when an LF has no CR before it, then it is bare, also at the start of a chunk', () => {
    expect(scan('a\nb\r\n')).toBe(true);
    expect(scan('\n')).toBe(true);
    expect(scan('a\r\n', '\nb\r\n')).toBe(true);
    expect(scan('body\r\n', '\n.\n', 'MAIL FROM:<x@y>\r\n')).toBe(true);
  });

  it('when a CR has no LF after it, then it is bare, also when the next chunk starts with something else', () => {
    expect(scan('a\rb\r\n')).toBe(true);
    expect(scan('a\r\r\n')).toBe(true);
    expect(scan('a\r', 'b\r\n')).toBe(true);
    expect(scan('a\r', '\r\n')).toBe(true);
    expect(scan('body\r\n\r.\r', 'MAIL FROM:<x@y>\r\n')).toBe(true);
  });

  it('when the stream ends with a lone CR, then that CR is bare', () => {
    const scanner = new LineEndingScanner();
    scanner.push(Buffer.from('body\r\nlast\r'));
    expect(scanner.foundBare).toBe(false);
    expect(scanner.end()).toBe(true);
  });

  it('when the data smuggles an end of data with LF.CRLF, then the LF is bare', () => {
    expect(scan('body\n.\r\nMAIL FROM:<x@y>\r\n')).toBe(true);
  });
});
