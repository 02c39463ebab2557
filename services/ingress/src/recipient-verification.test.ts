import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { classifyRecipient } from './recipient-address.js';
import { mailboxCandidates, RecipientVerifier, type Mailboxes } from './recipient-verification.js';

const log = pino({ level: 'silent' });
const T = '11111111-1111-4111-8111-111111111111';

function rcpt(address: string) {
  const r = classifyRecipient(address);
  if (!r.ok) throw new Error(r.reason);
  return r;
}

/** A mailbox list as the database holds it (lower-case addresses); `calls` records each question. */
function directory(mailboxes: string[], calls: string[][] = []): Mailboxes {
  const mine = (tenantId: string) => (tenantId === T ? mailboxes : []);
  return {
    hasMailboxes: async (tenantId, domains) => (calls.push(['domain', ...domains]), mine(tenantId).some((m) => domains.includes(m.slice(m.lastIndexOf('@') + 1)))),
    hasAny: async (tenantId, addresses) => (calls.push(['address', ...addresses]), mine(tenantId).some((m) => addresses.includes(m))),
  };
}

describe('mailboxCandidates', () => {
  it('when the address has a subaddress tag and an IDN domain, then the base address and both spellings are candidates, lower-cased', () => {
    expect(mailboxCandidates(rcpt('Alice+News@Bücher.example'), '+')).toEqual({
      domains: ['xn--bcher-kva.example', 'bücher.example'],
      addresses: ['alice+news@xn--bcher-kva.example', 'alice+news@bücher.example', 'alice@xn--bcher-kva.example', 'alice@bücher.example'],
    });
  });

  it('when no delimiter is configured, then only the address itself is a candidate', () => {
    expect(mailboxCandidates(rcpt('alice+news@x.example'), '').addresses).toEqual(['alice+news@x.example']);
  });
});

describe('RecipientVerifier', () => {
  const verifier = (mailboxes: string[], calls: string[][] = [], cacheMs = 60_000) => new RecipientVerifier(directory(mailboxes, calls), { cacheMs, delimiters: '+' }, log);

  it('when the tenant lists mailboxes in the domain, then a listed one is known whatever its case, and another is unknown', async () => {
    const v = verifier(['alice@acme.example']);
    expect(await v.verify(T, rcpt('ALICE@Acme.Example'))).toEqual({ result: 'known' });
    expect(await v.verify(T, rcpt('alice+tag@acme.example'))).toEqual({ result: 'known' });
    expect(await v.verify(T, rcpt('bob@acme.example'))).toEqual({ result: 'unknown' });
  });

  it('when the tenant lists no mailbox in the domain, then the domain is accepted whole', async () => {
    expect(await verifier(['alice@acme.example']).verify(T, rcpt('anyone@other.example'))).toEqual({ result: 'unlisted-domain' });
  });

  it('when the mailboxes were registered under the Unicode spelling, then the A-label recipient matches them', async () => {
    expect(await verifier(['anna@bücher.example']).verify(T, rcpt('anna@xn--bcher-kva.example'))).toEqual({ result: 'known' });
    expect(await verifier(['anna@bücher.example']).verify(T, rcpt('otto@xn--bcher-kva.example'))).toEqual({ result: 'unknown' });
  });

  it('when the recipient is postmaster, then it is accepted without a lookup (RFC 5321 §4.5.1)', async () => {
    const calls: string[][] = [];
    expect(await verifier(['alice@acme.example'], calls).verify(T, rcpt('PostMaster@acme.example'))).toEqual({ result: 'postmaster' });
    expect(calls).toEqual([]);
  });

  it('when recipients come again within the cache time, then the domain is asked once per domain and the address once per address', async () => {
    const calls: string[][] = [];
    const v = verifier(['alice@acme.example'], calls);
    await v.verify(T, rcpt('bob@acme.example'));
    await v.verify(T, rcpt('Bob@acme.example'));
    await v.verify(T, rcpt('carol@acme.example'));
    await v.verify(T, rcpt('x@other.example'));
    await v.verify(T, rcpt('y@other.example'));
    expect(calls).toEqual([['domain', 'acme.example'], ['address', 'bob@acme.example'], ['address', 'carol@acme.example'], ['domain', 'other.example']]);
  });

  it('when the lookup fails, then the result is an error (451, never 5xx) and it is not cached', async () => {
    let fail = true;
    const v = new RecipientVerifier(
      {
        hasMailboxes: async () => {
          if (fail) throw new Error('connection terminated');
          return true;
        },
        hasAny: async () => true,
      },
      { cacheMs: 60_000, delimiters: '+' },
      log,
    );
    expect(await v.verify(T, rcpt('alice@acme.example'))).toEqual({ result: 'error', reason: 'connection terminated' });
    fail = false;
    expect(await v.verify(T, rcpt('alice@acme.example'))).toEqual({ result: 'known' });
  });
});
