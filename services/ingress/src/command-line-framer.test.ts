import { describe, expect, it } from 'vitest';
import { CommandLineFramer, type FramedLine } from './command-line-framer.js';

/** Feeds the chunks in order and returns every framed line (as text or fault). */
function frame(max: number, ...chunks: string[]): Array<string | { fault: string }> {
  const framer = new CommandLineFramer(max);
  const out: Array<string | { fault: string }> = [];
  const show = (f: FramedLine) => (f.fault === null ? f.line.toString('latin1') : { fault: f.fault });
  for (const text of chunks) {
    const chunk = Buffer.from(text, 'latin1');
    for (let offset = 0; ; ) {
      const r = framer.next(chunk, offset);
      if (!r) break;
      out.push(show(r.framed));
      offset = r.end;
    }
  }
  return out;
}

describe('CommandLineFramer', () => {
  it('when lines end with CRLF, then each comes out without it, also when split across chunks', () => {
    expect(frame(100, 'EHLO a\r\nMAIL FROM:<x@y>\r\nRC', 'PT TO:<z@w>\r', '\n')).toEqual(['EHLO a', 'MAIL FROM:<x@y>', 'RCPT TO:<z@w>']);
  });

  it('when a line ends with a bare LF, then it is refused and the next line is judged on its own', () => {
    expect(frame(100, 'MAIL FROM:<x@y>\nRCPT TO:<z@w>\r\n')).toEqual([{ fault: 'bare-line-ending' }, 'RCPT TO:<z@w>']);
  });

  it('when a line holds a bare CR, then it is refused', () => {
    expect(frame(100, 'NOOP\rRSET\r\n')).toEqual([{ fault: 'bare-line-ending' }]);
  });

  it('when a line holds a NUL byte, then it is refused', () => {
    expect(frame(100, 'MAIL FROM:<a\u0000b@y>\r\nNOOP\r\n')).toEqual([{ fault: 'nul' }, 'NOOP']);
  });

  it('when a line is exactly the limit, then it passes; one octet more, and it is too long', () => {
    expect(frame(4, 'NOOP\r\n', 'NOOPS\r\n', 'QUIT\r\n')).toEqual(['NOOP', { fault: 'too-long' }, 'QUIT']);
  });

  it('when an over-long line streams in over many chunks, then nothing of it is kept and it is refused at its LF', () => {
    const framer = new CommandLineFramer(8);
    const chunk = Buffer.alloc(1_000, 'x');
    for (let i = 0; i < 100; i++) expect(framer.next(chunk, 0)).toBeNull();
    expect(framer.midLine).toBe(true);
    expect(framer.next(Buffer.from('\r\nNOOP\r\n'), 0)).toEqual({ framed: { line: null, fault: 'too-long' }, end: 2 });
    expect(framer.midLine).toBe(false);
  });

  it('when a line is too long and also has a bare LF, then too long is the fault', () => {
    expect(frame(4, 'NOOPNOOP\n')).toEqual([{ fault: 'too-long' }]);
  });

  it('when the limit-plus-one octet is the CR of CRLF split across chunks, then the line passes', () => {
    expect(frame(4, 'NOOP\r', '\n')).toEqual(['NOOP']);
  });

  it('when an empty line arrives, then it is an empty command', () => {
    expect(frame(4, '\r\n')).toEqual(['']);
  });

  it('when a chunk ends in mid-line, then the framer says so', () => {
    const framer = new CommandLineFramer(100);
    expect(framer.midLine).toBe(false);
    expect(framer.next(Buffer.from('NO'), 0)).toBeNull();
    expect(framer.midLine).toBe(true);
  });
});
