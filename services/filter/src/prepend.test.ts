import { describe, expect, it } from 'vitest';
import { composePrependHeaders, foldHeader } from './prepend.js';

const unfold = (header: string) => header.replace(/\r\n(?=[ \t])/g, '');

describe('foldHeader', () => {
  it('when the value is short, then it is one CRLF-terminated line', () => {
    expect(foldHeader('X-Moat-Verdict', 'deliver')).toBe('X-Moat-Verdict: deliver\r\n');
  });

  it('when the value is long, then lines stay within 78 characters and unfold to the original', () => {
    const value = 'mx.moat.test; dkim=pass header.i=@example.com header.s=sel header.a=rsa-sha256 header.b=abcdefgh; spf=pass (mx.moat.test: domain of a@example.com designates 127.0.0.1 as permitted sender) smtp.mailfrom=a@example.com smtp.helo=client.test';
    const folded = foldHeader('Authentication-Results', value);
    expect(folded.endsWith('\r\n')).toBe(true);
    const lines = folded.slice(0, -2).split('\r\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(78);
    for (const line of lines.slice(1)) expect(line.startsWith(' ')).toBe(true);
    expect(unfold(folded)).toBe(`Authentication-Results: ${value}\r\n`);
  });

  it('when a word is longer than a line, then it stays whole on its own line', () => {
    const word = 'x'.repeat(120);
    const folded = foldHeader('X-Test', `a ${word} b`);
    expect(folded).toBe(`X-Test: a\r\n ${word}\r\n b\r\n`);
  });

  it('when the value contains line breaks, then they cannot start a header of their own', () => {
    const folded = foldHeader('X-Test', 'a\r\nBcc: victim@example.com');
    expect(folded).toBe('X-Test: a Bcc: victim@example.com\r\n');
  });
});

describe('composePrependHeaders', () => {
  const received = 'Received: from client.test ([127.0.0.1])\r\n by mx.moat.test with ESMTP id abc;\r\n Mon, 1 Jan 2024 00:00:00 +0000\r\n';

  it('when composed, then it is the accepted block, then Authentication-Results, then X-Moat-Verdict', () => {
    const out = composePrependHeaders({ accepted: received, authResults: 'mx.moat.test; dkim=none; spf=pass smtp.mailfrom=a@example.com', verdict: 'deliver' });
    expect(out).toBe(`${received}Authentication-Results: mx.moat.test; dkim=none; spf=pass\r\n smtp.mailfrom=a@example.com\r\nX-Moat-Verdict: deliver\r\n`);
  });

  it('when composed, then every line ends in CRLF and no bare LF or CR remains', () => {
    const out = composePrependHeaders({ accepted: received, authResults: `mx.moat.test; ${'spf=pass '.repeat(30).trim()}`, verdict: 'quarantine' });
    expect(out.endsWith('\r\n')).toBe(true);
    expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('when the accepted block lacks its final CRLF, then one is added before our fields', () => {
    const out = composePrependHeaders({ accepted: 'Received: by x; Mon, 1 Jan 2024 00:00:00 +0000', authResults: 'mx; none', verdict: 'deliver' });
    expect(out).toBe('Received: by x; Mon, 1 Jan 2024 00:00:00 +0000\r\nAuthentication-Results: mx; none\r\nX-Moat-Verdict: deliver\r\n');
  });

  it('when there are no results to report (outbound mail), then no Authentication-Results field is written', () => {
    expect(composePrependHeaders({ accepted: received, authResults: null, verdict: 'deliver' })).toBe(`${received}X-Moat-Verdict: deliver\r\n`);
  });

  it('when nothing was prepended before, then only the filter fields are there', () => {
    expect(composePrependHeaders({ accepted: '', authResults: 'mx; none', verdict: 'deliver' })).toBe('Authentication-Results: mx; none\r\nX-Moat-Verdict: deliver\r\n');
  });
});
