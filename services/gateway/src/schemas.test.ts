import { describe, expect, it } from 'vitest';
import { isDomainName, isHostOrIp, isMailboxAddress } from './schemas.js';
import { decodeCursor, encodeCursor } from './routes/messages.js';

describe('isDomainName', () => {
  it('when names follow RFC 1035/1123 label rules, then they are accepted', () => {
    for (const n of ['example.com', 'a.b.c.example', '1and1.example', 'xn--bcher-kva.example', 'EXAMPLE.com.']) expect(isDomainName(n)).toBe(true);
  });
  it('when a label is empty, too long, hyphen-edged, or the name has one label or a numeric TLD, then it is refused', () => {
    for (const n of ['', 'localhost', 'a..b', '-a.example', 'a-.example', `${'a'.repeat(64)}.example`, 'mail.123', 'bad name.example', 'x_y.example']) expect(isDomainName(n)).toBe(false);
  });
});

describe('isHostOrIp', () => {
  it('when the host is a name (one label is fine) or an IPv4/IPv6 address, then it is accepted', () => {
    for (const h of ['postfix', 'mx.example.com', '127.0.0.1', '::1', '2001:db8::25']) expect(isHostOrIp(h)).toBe(true);
  });
  it('when it is neither, then it is refused', () => {
    for (const h of ['', 'bad host', '256.1.1.1', 'mx..example', 'http://mx.example']) expect(isHostOrIp(h)).toBe(false);
  });
});

describe('isMailboxAddress', () => {
  it('when local@domain is well-formed, then it is accepted', () => {
    expect(isMailboxAddress('jane.doe+tag@acme.example')).toBe(true);
  });
  it('when the local part or the domain is malformed, then it is refused', () => {
    for (const a of ['jane', '@acme.example', 'jane@', 'ja ne@acme.example', '.jane@acme.example', 'jane@localhost', `${'x'.repeat(65)}@acme.example`]) expect(isMailboxAddress(a)).toBe(false);
  });
});

describe('message cursors', () => {
  it('when a cursor is encoded, then it decodes to the same position', () => {
    const c = { receivedAt: '2024-11-27T10:00:00.000Z', id: '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11' };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
  });
  it('when a cursor was not made by the API, then it is a 400 naming `before`', () => {
    expect(() => decodeCursor('garbage')).toThrowError(/^before: /);
  });
});
