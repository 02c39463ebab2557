import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { defaultSmtpPolicy, type SmtpPolicy } from '@moat/store';
import type { ClientRate, ClientRateLimits, ClientRateResult } from './client-rate-limits.js';
import type { DnsblResult } from './dnsbl.js';
import type { Greylist, GreylistResult } from './greylist.js';
import { classifyRecipient } from './recipient-address.js';
import { RecipientVerifier } from './recipient-verification.js';
import { replies } from './replies.js';
import { InboundChecks, type InboundRecipient } from './smtp-checks.js';

const log = pino({ level: 'silent' });
const T = '11111111-1111-4111-8111-111111111111';
const greylistingOn: SmtpPolicy = { greylisting: { ...defaultSmtpPolicy.greylisting, enabled: true } };

function recipient(address: string, over: Partial<InboundRecipient> = {}): InboundRecipient {
  const rcpt = classifyRecipient(address);
  if (!rcpt.ok) throw new Error(rcpt.reason);
  return { tenantId: T, rcpt, clientIp: '192.0.2.9', mailFrom: 'a@sender.example', firstOfTransaction: true, exempt: false, dnsbl: async () => ({ result: 'clean' }), ...over };
}

/** The checks over stand-ins; `taken` lists the rate-limit counters taken, `greylisted` the triplets asked. */
function checks(o: { mailboxes?: string[]; limited?: ClientRate; grey?: GreylistResult['result']; policy?: SmtpPolicy; lookupFails?: boolean } = {}) {
  const taken: ClientRate[] = [];
  const greylisted: string[] = [];
  const rateLimits = {
    take: async (kind: ClientRate): Promise<ClientRateResult> => {
      taken.push(kind);
      return kind === o.limited ? { result: 'limited', reply: replies.clientRate('messages', 1000), count: 9, retryAfterMs: 1000 } : { result: 'pass' };
    },
  } as unknown as ClientRateLimits;
  const greylist = {
    check: async (_t: string, _ip: string, _from: string, rcpt: string): Promise<GreylistResult> => {
      greylisted.push(rcpt);
      return o.grey === 'greylisted' ? { result: 'greylisted', verdict: 'first' } : { result: 'pass', verdict: 'whitelisted' };
    },
  } as unknown as Greylist;
  const mailboxes = o.mailboxes ?? [];
  const verifier = new RecipientVerifier(
    {
      hasMailboxes: async (_t, domains) => {
        if (o.lookupFails) throw new Error('db down');
        return mailboxes.some((m) => domains.some((d) => m.endsWith(`@${d}`)));
      },
      hasAny: async (_t, addresses) => mailboxes.some((m) => addresses.includes(m)),
    },
    { cacheMs: 0, delimiters: '+' },
    log,
  );
  const inbound = new InboundChecks({ verifier, rateLimits, greylist, smtpPolicy: async () => o.policy ?? defaultSmtpPolicy, log });
  return { inbound, taken, greylisted };
}

const listed = async (): Promise<DnsblResult> => ({ result: 'listed', zone: 'bl.example', answer: '127.0.0.2' });

describe('InboundChecks', () => {
  it('when nothing objects, then the recipient is accepted, and the first recipient counts the message', async () => {
    const c = checks();
    expect(await c.inbound.decide(recipient('alice@acme.example'))).toEqual({ accept: true });
    expect(await c.inbound.decide(recipient('bob@acme.example', { firstOfTransaction: false }))).toEqual({ accept: true });
    expect(c.taken).toEqual(['messages', 'recipients', 'recipients']);
  });

  it('when the client is DNSBL-listed, then 554 5.7.1 names the client and the zone, but postmaster is accepted', async () => {
    const c = checks();
    const refused = await c.inbound.decide(recipient('alice@acme.example', { dnsbl: listed }));
    expect(refused).toMatchObject({ accept: false, check: 'dnsbl', why: 'listed', zone: 'bl.example' });
    expect(refused.accept === false && [refused.reply.responseCode, refused.reply.message]).toEqual([554, '5.7.1 Service unavailable; client host [192.0.2.9] blocked using bl.example']);
    expect(await c.inbound.decide(recipient('Postmaster@acme.example', { dnsbl: listed }))).toEqual({ accept: true });
  });

  it('when the tenant lists mailboxes, then an unknown one gets 550 5.1.1 and a failed lookup 451 4.3.0', async () => {
    const unknown = await checks({ mailboxes: ['alice@acme.example'] }).inbound.decide(recipient('bob@acme.example'));
    expect(unknown.accept === false && [unknown.check, unknown.why, unknown.reply.message]).toEqual(['recipient-verification', 'unknown-user', '5.1.1 <bob@acme.example>: Recipient address rejected: User unknown']);
    const failed = await checks({ lookupFails: true }).inbound.decide(recipient('bob@acme.example'));
    expect(failed.accept === false && [failed.reply.responseCode, failed.reply.message]).toEqual([451, '4.3.0 Temporary failure, please try again later']);
  });

  it('when the client is over a rate limit, then the recipient gets the limiter’s 451 before any lookup', async () => {
    const c = checks({ limited: 'messages' });
    const refused = await c.inbound.decide(recipient('alice@acme.example'));
    expect(refused).toMatchObject({ accept: false, check: 'rate-limit', why: 'messages' });
  });

  it('when the tenant greylists, then a first attempt gets 451 4.7.1; when it does not, greylisting is not asked', async () => {
    const on = checks({ policy: greylistingOn, grey: 'greylisted' });
    const refused = await on.inbound.decide(recipient('alice@acme.example'));
    expect(refused.accept === false && [refused.check, refused.reply.message]).toEqual(['greylisting', '4.7.1 Greylisted, please try again later']);
    const off = checks({ grey: 'greylisted' });
    expect(await off.inbound.decide(recipient('alice@acme.example'))).toEqual({ accept: true });
    expect(off.greylisted).toEqual([]);
  });

  it('when the client is exempt, then no DNSBL, rate limit or greylisting applies, but recipient verification does', async () => {
    const c = checks({ mailboxes: ['alice@acme.example'], limited: 'messages', policy: greylistingOn, grey: 'greylisted' });
    expect(await c.inbound.decide(recipient('alice@acme.example', { exempt: true, dnsbl: listed }))).toEqual({ accept: true });
    expect(await c.inbound.decide(recipient('bob@acme.example', { exempt: true }))).toMatchObject({ accept: false, why: 'unknown-user' });
    expect(c.taken).toEqual([]);
    expect(c.greylisted).toEqual([]);
  });
});
