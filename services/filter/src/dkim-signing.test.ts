import { randomUUID } from 'node:crypto';
import { dkimVerify, type DNSResolver } from 'mailauth';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { MoatError } from '@moat/runtime';
import { dkimDnsRecord, generateDkimKeyPair, type DkimKeyPair, type DkimSigningKey } from '@moat/store';
import { domainOf, keyCandidates, OutboundSigner, signatureField } from './dkim-signing.js';

const log = pino({ level: 'silent' });
const prepended = 'Received: from client.test (client.test [127.0.0.1])\r\n by mx.moat.test with ESMTPSA id abc;\r\n Mon, 1 Jan 2024 10:00:00 +0000\r\nAuthentication-Results: mx.moat.test; dkim=none\r\nX-Moat-Verdict: deliver\r\n';
const raw = Buffer.from(
  [
    'From: Alice <alice@acme.example>',
    'To: <bob@outside.example>',
    'Subject: quarterly numbers',
    'Date: Mon, 1 Jan 2024 10:00:00 +0000',
    'Message-ID: <q1@acme.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    // Signed by Moat's list but not by mailauth's default list, and the other way round: h= shows which list was used.
    'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
    'Resent-Date: Mon, 1 Jan 2024 10:00:00 +0000',
    '',
    'The numbers are in.   ',
    '',
    '',
  ].join('\r\n'),
);

let rsa: DkimKeyPair;
let ed: DkimKeyPair;
beforeAll(async () => {
  [rsa, ed] = await Promise.all([generateDkimKeyPair('rsa-sha256'), generateDkimKeyPair('ed25519-sha256')]);
});

function key(domain: string, pair: DkimKeyPair, tenantId: string, selector = 's1'): DkimSigningKey {
  return { keyId: randomUUID(), tenantId, domainId: randomUUID(), domain, selector, algorithm: pair.algorithm, privateKeyPem: pair.privateKeyPem };
}

/** Answers the TXT records of the given keys, and nothing else (as a receiver's DNS would). */
function resolverFor(keys: Array<{ domain: string; selector: string; pair: DkimKeyPair }>): DNSResolver {
  return (async (name: string, type: string) => {
    for (const k of keys) {
      const record = dkimDnsRecord(k.domain, k.selector, k.pair.algorithm, k.pair.publicKey);
      if (type === 'TXT' && name === record.name) return [record.strings];
    }
    throw Object.assign(new Error(`${name} not found`), { code: 'ENOTFOUND' });
  }) as DNSResolver;
}

describe('key candidates', () => {
  it('when From and envelope domains are given, then From and its parents come first, then the envelope domain, each once, never a bare TLD', () => {
    expect(keyCandidates('news.acme.example', 'bounce.acme.example')).toEqual([
      { domain: 'news.acme.example', identity: 'header-from' },
      { domain: 'acme.example', identity: 'header-from' },
      { domain: 'bounce.acme.example', identity: 'envelope-from' },
    ]);
    expect(keyCandidates(null, 'x@y')).toEqual([]);
    expect(keyCandidates(null, null)).toEqual([]);
  });

  it('when an address is read, then its domain is lower-cased without a trailing dot; the null sender has none', () => {
    expect(domainOf('Alice@ACME.example.')).toBe('acme.example');
    expect(domainOf('')).toBeNull();
    expect(domainOf('postmaster')).toBeNull();
  });
});

describe('signatureField', () => {
  for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
    it(`when signed with ${algorithm}, then a verifier passes it over the prepended headers and the message, relaxed/relaxed, without Moat's trace fields in h=`, async () => {
      const pair = algorithm === 'rsa-sha256' ? rsa : ed;
      const field = await signatureField(Buffer.concat([Buffer.from(prepended), raw]), key('acme.example', pair, 't'), new Date('2024-01-01T10:00:05Z'));
      expect(field).toMatch(/^DKIM-Signature: /);
      expect(field.endsWith('\r\n')).toBe(true);
      const unfolded = field.replace(/\r\n\s+/g, ' ');
      expect(unfolded).toContain(`a=${algorithm}`);
      expect(unfolded).toContain('c=relaxed/relaxed');
      expect(unfolded).toContain('d=acme.example');
      expect(unfolded).toContain('s=s1');
      expect(unfolded).toContain(`t=${Date.parse('2024-01-01T10:00:05Z') / 1000}`);
      const h = /h=([^;]+);/.exec(unfolded)![1]!.toLowerCase().split(':').map((s) => s.trim());
      expect(h.sort()).toEqual(['content-type', 'date', 'from', 'list-unsubscribe-post', 'message-id', 'mime-version', 'subject', 'to']);

      const delivered = Buffer.concat([Buffer.from(field + prepended), raw]);
      const result = await dkimVerify(delivered, { resolver: resolverFor([{ domain: 'acme.example', selector: 's1', pair }]) });
      expect(result.results.map((r) => [r.signingDomain, r.status.result])).toEqual([['acme.example', 'pass']]);
      // The signature covers the Subject: changing it breaks the signature.
      const altered = Buffer.from(delivered.toString('utf8').replace('quarterly numbers', 'quarterly numberz'));
      expect((await dkimVerify(altered, { resolver: resolverFor([{ domain: 'acme.example', selector: 's1', pair }]) })).results[0]!.status.result).toBe('fail');
    });
  }

  it('when the message has no header section, then signing throws instead of answering an empty field', async () => {
    await expect(signatureField(Buffer.from('no headers at all'), key('acme.example', rsa, 't'), new Date())).rejects.toThrow(/no signature/);
  });
});

describe('OutboundSigner', () => {
  const tenantId = randomUUID();
  function signer(keys: Record<string, DkimSigningKey | Error>, calls: string[] = [], cacheTtlMs = 60_000) {
    return new OutboundSigner({
      keys: {
        activeSigningKey: async (domain) => {
          calls.push(domain);
          const k = keys[domain];
          if (k instanceof Error) throw k;
          return k ?? null;
        },
      },
      cacheTtlMs,
      log,
    });
  }
  const input = (overrides: Partial<{ raw: Buffer; mailFrom: string; tenantId: string }> = {}) => ({ tenantId, raw, prepended, mailFrom: 'bounces@mailer.example', signTime: new Date(), ...overrides });

  it('when the From domain has a key of the tenant, then it signs with it (aligned), even if the envelope domain has one too', async () => {
    const outcome = await signer({ 'acme.example': key('acme.example', rsa, tenantId, 'from'), 'mailer.example': key('mailer.example', rsa, tenantId, 'env') }).sign(input());
    expect(outcome).toMatchObject({ signed: true, domain: 'acme.example', selector: 'from', identity: 'header-from' });
    expect(outcome.reason).toBe('DKIM-signed d=acme.example s=from (aligned with the From domain)');
  });

  it('when only the envelope domain has a key of the tenant, then it signs with that one and says it is not aligned', async () => {
    const outcome = await signer({ 'mailer.example': key('mailer.example', rsa, tenantId, 'env') }).sign(input());
    expect(outcome).toMatchObject({ signed: true, domain: 'mailer.example', identity: 'envelope-from' });
    expect(outcome.reason).toContain('not aligned');
  });

  it('when the From domain’s key belongs to another tenant, then it is not used, and the reason does not say whose it is', async () => {
    const outcome = await signer({ 'acme.example': key('acme.example', rsa, randomUUID()) }).sign(input());
    expect(outcome).toEqual({ signed: false, reason: 'not DKIM-signed: no active DKIM key of this tenant for acme.example, mailer.example' });
  });

  it('when the From header has two addresses, then only the envelope domain is tried', async () => {
    const twoAuthors = Buffer.from(raw.toString('utf8').replace('From: Alice <alice@acme.example>', 'From: alice@acme.example, carol@other.example'));
    const calls: string[] = [];
    const outcome = await signer({ 'acme.example': key('acme.example', rsa, tenantId) }, calls).sign(input({ raw: twoAuthors }));
    expect(outcome.signed).toBe(false);
    expect(outcome.reason).toContain('several addresses');
    expect(calls).toEqual(['mailer.example']);
  });

  it('when the key cannot be opened, then the message goes unsigned with the reason; when the database fails, the error propagates (retried)', async () => {
    const broken = await signer({ 'acme.example': new MoatError('DECRYPT_FAILED', 'master key k0 is not configured', { permanent: true }) }).sign(input());
    expect(broken).toEqual({ signed: false, reason: expect.stringContaining('the active key of acme.example cannot be opened') });
    expect(broken.reason).not.toContain('k0');
    await expect(signer({ 'acme.example': new MoatError('STORE_READ_FAILED', 'connection refused') }).sign(input())).rejects.toThrow('connection refused');
  });

  it('when several messages name the same domains, then keys and their absence are read once within the TTL; with TTL 0 every time', async () => {
    const calls: string[] = [];
    const cached = signer({ 'acme.example': key('acme.example', rsa, tenantId) }, calls);
    await cached.sign(input());
    await cached.sign(input());
    expect(calls).toEqual(['acme.example']);
    const missCalls: string[] = [];
    const misses = signer({}, missCalls);
    await misses.sign(input());
    await misses.sign(input());
    expect(missCalls).toEqual(['acme.example', 'mailer.example']);
    const uncachedCalls: string[] = [];
    const uncached = signer({ 'acme.example': key('acme.example', rsa, tenantId) }, uncachedCalls, 0);
    await uncached.sign(input());
    await uncached.sign(input());
    expect(uncachedCalls).toEqual(['acme.example', 'acme.example']);
  });
});
