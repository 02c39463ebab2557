import { describe, expect, it } from 'vitest';
import { mimeStructureCheck, multipartBoundary, scanMimeStructure } from './mime-structure.js';

const crlf = (lines: string[]) => Buffer.from(lines.join('\r\n'));

/** A message whose multiparts nest `depth` levels (each level one part holding the next). */
function nested(depth: number, closed = true): Buffer {
  const head = ['From: a@b.example', 'Subject: nest', 'MIME-Version: 1.0'];
  const open: string[] = [];
  for (let i = 0; i < depth; i++) open.push(`Content-Type: multipart/mixed; boundary="b${i}"`, '', `--b${i}`);
  const close: string[] = [];
  if (closed) for (let i = depth - 1; i >= 0; i--) close.push(`--b${i}--`);
  return crlf([...head, ...open, 'Content-Type: text/plain', '', 'hello', ...close, '']);
}

describe('MIME structure', () => {
  it('when the boundary parameter is quoted, bare, escaped or missing, then it is read as RFC 2045 says', () => {
    expect(multipartBoundary('multipart/mixed; boundary="a b;c"')).toBe('a b;c');
    expect(multipartBoundary(' Multipart/Alternative;\tBOUNDARY=xyz; charset=x')).toBe('xyz');
    expect(multipartBoundary('multipart/mixed; boundary="q\\"x"')).toBe('q"x');
    expect(multipartBoundary('multipart/mixed')).toBeNull();
    expect(multipartBoundary('text/plain; boundary=x')).toBeNull();
  });

  it('when a message is single-part, or an ordinary multipart/alternative with an attachment, then depth and parts are counted', () => {
    expect(scanMimeStructure(crlf(['Subject: x', '', 'hello', '--not-a-boundary', '']))).toEqual({ depth: 0, parts: 0 });
    const msg = crlf([
      'Subject: x',
      'Content-Type: multipart/mixed;',
      '\tboundary="outer"',
      '',
      'preamble',
      '--outer',
      'Content-Type: multipart/alternative; boundary=inner',
      '',
      '--inner',
      'Content-Type: text/plain',
      '',
      'text',
      '--inner',
      'Content-Type: text/html',
      '',
      '<p>html</p>',
      '--inner--',
      '--outer  ',
      'Content-Type: application/pdf',
      '',
      'JVBERi0=',
      '--outer--',
      'epilogue',
      '',
    ]);
    expect(scanMimeStructure(msg)).toEqual({ depth: 2, parts: 4 });
    expect(mimeStructureCheck(msg)).toEqual({ check: 'mime', result: 'pass', reason: '4 parts, nested 2 levels deep' });
  });

  it('when a message is attached inside a message (message/rfc822), then its multiparts count one level deeper', () => {
    const msg = crlf([
      'Content-Type: multipart/mixed; boundary=o',
      '',
      '--o',
      'Content-Type: message/rfc822',
      '',
      'Subject: forwarded',
      'Content-Type: multipart/mixed; boundary=i',
      '',
      '--i',
      'Content-Type: text/plain',
      '',
      'inner',
      '--i--',
      '--o--',
      '',
    ]);
    expect(scanMimeStructure(msg)).toEqual({ depth: 3, parts: 2 });
  });

  it('when multiparts nest beyond the limit, closed or left open, then the check fails with the reason and stops counting', () => {
    expect(scanMimeStructure(nested(10))).toEqual({ depth: 10, parts: 10 });
    expect(mimeStructureCheck(nested(40), { maxDepth: 40, maxParts: 1000 }).result).toBe('pass');
    expect(mimeStructureCheck(nested(41), { maxDepth: 40, maxParts: 1000 })).toEqual({ check: 'mime', result: 'fail', reason: 'mime: parts nested more than 40 levels deep' });
    expect(mimeStructureCheck(nested(5000, false)).result).toBe('fail');
    expect(scanMimeStructure(nested(5000)).depth).toBe(41);
  });

  it('when a delimiter of an outer multipart appears, then the inner ones left open end there (depth does not keep growing)', () => {
    const lines = ['Content-Type: multipart/mixed; boundary=o', ''];
    for (let i = 0; i < 100; i++) lines.push('--o', `Content-Type: multipart/mixed; boundary=i${i}`, '', `--i${i}`, 'Content-Type: text/plain', '', 'x');
    lines.push('--o--', '');
    expect(scanMimeStructure(crlf(lines))).toEqual({ depth: 2, parts: 200 });
  });

  it('when a message has more parts than the limit, then the check fails', () => {
    const lines = ['Content-Type: multipart/mixed; boundary=p', ''];
    for (let i = 0; i < 12; i++) lines.push('--p', 'Content-Type: text/plain', '', `part ${i}`);
    lines.push('--p--', '');
    expect(mimeStructureCheck(crlf(lines), { maxDepth: 40, maxParts: 10 })).toEqual({ check: 'mime', result: 'fail', reason: 'mime: more than 10 body parts' });
    expect(mimeStructureCheck(crlf(lines), { maxDepth: 40, maxParts: 12 }).result).toBe('pass');
  });

  it('when lines end in bare LF, then the structure is read the same', () => {
    const lf = Buffer.from(nested(3).toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    expect(scanMimeStructure(lf)).toEqual({ depth: 3, parts: 3 });
  });
});
