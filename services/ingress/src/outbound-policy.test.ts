import { describe, expect, it } from 'vitest';
import { decideOutboundRecipient, decideSender, ownerCandidates, parseSender, type RelayClient, type SenderDecision } from './outbound-policy.js';

const T = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';

const mx: RelayClient = { listener: 'mx', secure: false, authTenantId: null, ipTenantId: null };
const submission: RelayClient = { listener: 'submission', secure: true, authTenantId: null, ipTenantId: null };

/** The decision as a short string: `outbound:<via>`, `inbound`, `inbound:foreign`, or the reply. */
function judge(client: RelayClient, mailFrom: string, owner: string | null): string {
  const d: SenderDecision = decideSender(client, parseSender(mailFrom), owner);
  if (d.direction === 'outbound') return `outbound:${d.via}:${d.tenantId === T ? 'T' : d.tenantId}`;
  if (d.direction === 'inbound') return d.registeredIpForeignSender ? 'inbound:foreign' : 'inbound';
  return `${d.reply.responseCode} ${d.reply.message}`;
}

describe('parseSender', () => {
  it('when MAIL FROM is <>, then it is the null sender; an address gives its A-label domain; no domain or a literal is invalid', () => {
    expect(parseSender('')).toEqual({ kind: 'null' });
    expect(parseSender('Alice@Acme.Example.')).toEqual({ kind: 'address', address: 'Alice@Acme.Example.', domain: 'acme.example' });
    expect(parseSender('jörg@bücher.example')).toMatchObject({ kind: 'address', domain: 'xn--bcher-kva.example' });
    expect(parseSender('postmaster')).toMatchObject({ kind: 'invalid' });
    expect(parseSender('user@[192.0.2.1]')).toMatchObject({ kind: 'invalid' });
    expect(parseSender('user@localhost')).toMatchObject({ kind: 'invalid' });
    expect(parseSender('user@bad..example')).toMatchObject({ kind: 'invalid' });
  });
});

describe('ownerCandidates', () => {
  it('when a sender domain has subdomains, then the most specific name comes first, down to two labels', () => {
    expect(ownerCandidates('mail.eu.acme.example')).toEqual(['mail.eu.acme.example', 'eu.acme.example', 'acme.example']);
    expect(ownerCandidates('acme.example')).toEqual(['acme.example']);
  });

  it('when the domain has IDN labels, then the Unicode spellings are asked too', () => {
    expect(ownerCandidates('xn--bcher-kva.example')).toEqual(['xn--bcher-kva.example', 'bücher.example']);
  });
});

describe('decideSender', () => {
  it('when a client is neither authenticated nor registered, then the MX port takes it as inbound mail and a submission port asks for AUTH (STARTTLS first without TLS)', () => {
    expect(judge(mx, 'anyone@outside.example', null)).toBe('inbound');
    expect(judge(submission, 'alice@acme.example', null)).toBe('530 5.7.0 Authentication required');
    expect(judge({ ...submission, secure: false }, 'alice@acme.example', null)).toBe('530 5.7.0 Must issue a STARTTLS command first');
  });

  it('when an authenticated client sends as its tenant, then the transaction is outbound for that tenant; as anyone else, 550 5.7.1 naming the sender', () => {
    const authed = { ...submission, authTenantId: T };
    expect(judge(authed, 'alice@acme.example', T)).toBe('outbound:auth:T');
    expect(judge(authed, 'ceo@bank.example', null)).toBe('550 5.7.1 Sender address <ceo@bank.example> is not in a domain of your organisation');
    expect(judge(authed, 'bob@other-tenant.example', OTHER)).toMatch(/^550 5\.7\.1 Sender address <bob@other-tenant\.example>/);
    expect(judge(authed, 'postmaster', null)).toBe('553 5.1.7 Sender address is not a valid mailbox in a domain');
  });

  it('when the sender is <> from a relaying client, then it is the tenant’s outbound mail (its server’s bounces and auto-replies)', () => {
    expect(judge({ ...submission, authTenantId: T }, '', null)).toBe('outbound:auth:T');
    expect(judge({ ...mx, ipTenantId: T }, '', null)).toBe('outbound:ip:T');
    // Not relaying: a bounce from the internet to a protected domain, as before.
    expect(judge(mx, '', null)).toBe('inbound');
  });

  it('when a registered address sends as its tenant on the MX port, then it relays without AUTH; with a foreign sender it is inbound mail (and told why if it tries to relay)', () => {
    const registered = { ...mx, ipTenantId: T };
    expect(judge(registered, 'alice@acme.example', T)).toBe('outbound:ip:T');
    expect(judge(registered, 'someone@elsewhere.example', null)).toBe('inbound:foreign');
    expect(judge(registered, 'someone@other-tenant.example', OTHER)).toBe('inbound:foreign');
  });

  it('when a registered address uses a submission port, then it relays its tenant’s senders without AUTH and is refused others', () => {
    const registered = { ...submission, ipTenantId: T };
    expect(judge(registered, 'alice@acme.example', T)).toBe('outbound:ip:T');
    expect(judge({ ...registered, secure: false }, 'alice@acme.example', T)).toBe('outbound:ip:T');
    expect(judge(registered, 'someone@elsewhere.example', null)).toMatch(/^550 5\.7\.1 /);
  });

  it('when a client is both authenticated and registered for different tenants, then the credential decides', () => {
    expect(judge({ ...submission, authTenantId: T, ipTenantId: OTHER }, 'alice@acme.example', T)).toBe('outbound:auth:T');
    expect(judge({ ...submission, authTenantId: T, ipTenantId: OTHER }, 'x@other-tenant.example', OTHER)).toMatch(/^550 5\.7\.1 /);
  });
});

describe('decideOutboundRecipient', () => {
  const tx = { accepted: [] as string[], maxRecipients: 3 };

  it('when the recipient is at any domain, then it is accepted with its domain normalised', () => {
    expect(decideOutboundRecipient('Bob@Remote.Example', tx)).toEqual({ accept: true, address: 'Bob@remote.example' });
  });

  it('when the recipient hides another route (literal, source route, %-hack, bang path) or has no domain, then 553 5.1.3 with the reason', () => {
    for (const [raw, why] of [
      ['user@[127.0.0.1]', 'ip-literal'],
      ['@relay.example:user@far.example', 'source-route'],
      ['user%far.example@remote.example', 'percent-hack'],
      ['far!user@remote.example', 'bang-path'],
      ['postmaster', 'unqualified'],
    ] as const) {
      const d = decideOutboundRecipient(raw, tx);
      expect(d, raw).toMatchObject({ accept: false, why });
      if (!d.accept) expect(`${d.reply.responseCode} ${d.reply.message}`).toBe(`553 5.1.3 Recipient address not accepted for relaying (${why})`);
    }
  });

  it('when the recipient limit is reached, then 452 4.5.3, but a repeated recipient still passes', () => {
    const full = { accepted: ['a@x.example', 'b@x.example', 'c@x.example'], maxRecipients: 3 };
    const d = decideOutboundRecipient('d@x.example', full);
    expect(d.accept ? 'accepted' : `${d.reply.responseCode} ${d.reply.message}`).toBe('452 4.5.3 Too many recipients');
    expect(decideOutboundRecipient('A@x.example', full)).toMatchObject({ accept: true });
  });
});
