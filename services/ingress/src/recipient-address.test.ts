import { describe, expect, it } from 'vitest';
import { classifyRecipient } from './recipient-address.js';

describe('classifyRecipient', () => {
  it('when the address is a plain mailbox, then it is accepted with its domain normalised', () => {
    expect(classifyRecipient('Alice.Smith@example.com')).toEqual({
      ok: true,
      localPart: 'Alice.Smith',
      domain: 'example.com',
      unicodeDomain: 'example.com',
      address: 'Alice.Smith@example.com',
    });
  });

  it('when the domain is upper-case with a trailing dot, then it is the same protected domain', () => {
    const rcpt = classifyRecipient('bob@EXAMPLE.Com.');
    expect(rcpt).toMatchObject({ ok: true, domain: 'example.com', address: 'bob@example.com' });
  });

  it('when the local part is upper-case, then it is kept as given (RFC 5321 §2.4)', () => {
    expect(classifyRecipient('BOB@example.com')).toMatchObject({ ok: true, localPart: 'BOB' });
  });

  it('when the domain is Unicode, then it compares in its A-label form', () => {
    expect(classifyRecipient('anna@Bücher.example')).toMatchObject({ ok: true, domain: 'xn--bcher-kva.example', unicodeDomain: 'bücher.example' });
  });

  it.each([
    ['user%other.example@example.com', 'percent-hack'],
    ['user%other.example', 'unqualified'],
    ['@relay.example:user@example.com', 'source-route'],
    ['@a.example,@b.example:user@example.com', 'source-route'],
    ['other.example!user@example.com', 'bang-path'],
    ['"user@other.example"@example.com', 'at-in-local-part'],
    ['"user%other"@example.com', 'percent-hack'],
    ['user@[192.0.2.1]', 'ip-literal'],
    ['user@[IPv6:2001:db8::1]', 'ip-literal'],
    ['postmaster', 'unqualified'],
    ['user', 'unqualified'],
    ['user@', 'unqualified'],
    ['@example.com', 'unqualified'],
    ['user@exa..mple.com', 'bad-domain'],
    ['user@.', 'bad-domain'],
    ['user@exa mple.com', 'bad-domain'],
  ])('when the recipient is %s, then it is refused as %s', (address, reason) => {
    expect(classifyRecipient(address)).toEqual({ ok: false, reason });
  });
});
