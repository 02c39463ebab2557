import { describe, expect, it } from 'vitest';
import { addressLiteral, buildReceivedHeader, rfc5322Date } from './received-header.js';

const base = {
  helo: 'mail.sender.example',
  ptr: 'out1.sender.example',
  ip: '192.0.2.25',
  hostname: 'mx1.moat.example',
  esmtp: true,
  tls: false,
  messageId: '6f1c1a2e-0b7d-4c55-9a43-5f0e2d3c4b5a',
  recipients: ['alice@example.com'],
  date: new Date('2024-11-21T09:05:03Z'),
};

describe('buildReceivedHeader', () => {
  it('when there is one recipient, then the header names it in a for clause and is folded with CRLF TAB', () => {
    expect(buildReceivedHeader(base)).toBe(
      'Received: from mail.sender.example (out1.sender.example [192.0.2.25])\r\n' +
        '\tby mx1.moat.example (Moat) with ESMTP id 6f1c1a2e-0b7d-4c55-9a43-5f0e2d3c4b5a\r\n' +
        '\tfor <alice@example.com>;\r\n' +
        '\tThu, 21 Nov 2024 09:05:03 +0000\r\n',
    );
  });

  it('when there are several recipients, then none is disclosed and the date follows the id', () => {
    const header = buildReceivedHeader({ ...base, recipients: ['alice@example.com', 'bob@example.com'] });
    expect(header).not.toContain('for <');
    expect(header).toContain('id 6f1c1a2e-0b7d-4c55-9a43-5f0e2d3c4b5a;\r\n\tThu, 21 Nov 2024 09:05:03 +0000\r\n');
  });

  it('when the client has no confirmed name, then it shows as unknown with its address literal', () => {
    expect(buildReceivedHeader({ ...base, ptr: null })).toMatch(/^Received: from mail\.sender\.example \(unknown \[192\.0\.2\.25\]\)\r\n/);
  });

  it('when STARTTLS was used, then the protocol is ESMTPS; after HELO it is SMTP (RFC 3848)', () => {
    expect(buildReceivedHeader({ ...base, tls: true })).toContain(' with ESMTPS id ');
    expect(buildReceivedHeader({ ...base, esmtp: false })).toContain(' with SMTP id ');
  });

  it('when the client authenticated, then the protocol is ESMTPSA under TLS and ESMTPA without (RFC 3848)', () => {
    expect(buildReceivedHeader({ ...base, tls: true, authenticated: true })).toContain(' with ESMTPSA id ');
    expect(buildReceivedHeader({ ...base, tls: false, authenticated: true })).toContain(' with ESMTPA id ');
  });

  it('when the client is on IPv6, then its address literal carries the IPv6 tag (RFC 5321 §4.1.3)', () => {
    expect(addressLiteral('2001:db8::25')).toBe('[IPv6:2001:db8::25]');
    expect(buildReceivedHeader({ ...base, ip: '2001:db8::25' })).toContain('(out1.sender.example [IPv6:2001:db8::25])');
  });

  it('when the HELO name carries comment or control characters, then they cannot break the header', () => {
    const header = buildReceivedHeader({ ...base, helo: 'evil) (x\r\nX-Injected: 1' });
    expect(header.split('\r\n').filter(Boolean)).toHaveLength(4);
    expect(header).not.toContain('\r\nX-Injected');
    expect(header.split('\r\n')[0]).toBe('Received: from evil___x__X-Injected:_1 (out1.sender.example [192.0.2.25])');
  });

  it('when the header is built, then every line ends in CRLF and stays under 998 octets (RFC 5322 §2.1.1)', () => {
    const header = buildReceivedHeader({ ...base, helo: 'h'.repeat(300) });
    expect(header.endsWith('\r\n')).toBe(true);
    expect(header.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    for (const line of header.split('\r\n')) expect(line.length).toBeLessThan(998);
  });
});

describe('rfc5322Date', () => {
  it('when formatting, then it uses a numeric UTC zone and no leading zero on the day', () => {
    expect(rfc5322Date(new Date('2025-01-05T23:59:59Z'))).toBe('Sun, 5 Jan 2025 23:59:59 +0000');
  });
});
