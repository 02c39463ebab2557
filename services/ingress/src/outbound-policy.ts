import { domainToASCII, domainToUnicode } from 'node:url';
import type { MoatError } from '@moat/runtime';
import { classifyRecipient } from './recipient-address.js';
import { replies } from './replies.js';

/**
 * The outbound relay's decisions at SMTP time, as pure functions (the lookups they need are made
 * by the caller). Who may relay: a client that authenticated (submission ports) or whose address
 * lies in a tenant's registered outbound ranges (any port). Everyone else sends inbound mail on
 * the MX port, as before, and nothing on the submission ports.
 */

/** `mx`: the MX port (inbound mail, and registered ranges). `submission`: 2587 (STARTTLS) and 2465 (implicit TLS). */
export type ListenerKind = 'mx' | 'submission';

/** The envelope sender (MAIL FROM), as the relay judges it. */
export type SenderAddress =
  /** `<>`: the null reverse-path (RFC 5321 §4.5.5: DSNs, MDNs and auto-replies, RFC 3834). */
  | { kind: 'null' }
  | { kind: 'address'; address: string; domain: string }
  /** Not an address a tenant can own: no domain, an address literal, a name that is no DNS name. */
  | { kind: 'invalid'; address: string };

export function parseSender(raw: string): SenderAddress {
  const address = raw.trim();
  if (address === '') return { kind: 'null' };
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return { kind: 'invalid', address };
  const spelled = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
  if (spelled.startsWith('[') || spelled === '' || spelled.includes('..') || spelled.startsWith('.')) return { kind: 'invalid', address };
  const domain = domainToASCII(spelled);
  if (domain === '' || !isDnsName(domain)) return { kind: 'invalid', address };
  return { kind: 'address', address, domain };
}

/**
 * The names to look up for the protected domain that owns a sender domain, most specific first:
 * `mail.eu.acme.example` → itself, `eu.acme.example`, `acme.example` (at least two labels). A
 * subdomain belongs to the organisation that protects its parent (as DMARC's relaxed alignment
 * reads it), unless a more specific name is protected by someone else: the first hit decides.
 */
export function ownerCandidates(domain: string): string[] {
  const labels = domain.split('.');
  const out: string[] = [];
  for (let i = 0; i <= labels.length - 2; i++) out.push(labels.slice(i).join('.'));
  const unicode = domainToUnicode(domain);
  // A tenant may have registered the Unicode spelling (recipient-policy.ts looks up both too).
  if (unicode !== domain) return out.flatMap((d) => [d, domainToUnicode(d)]).filter((d, i, all) => all.indexOf(d) === i);
  return out;
}

/** Who the client is, as far as the relay is concerned. */
export interface RelayClient {
  listener: ListenerKind;
  /** TLS is in effect (STARTTLS done, or the implicit-TLS port). */
  secure: boolean;
  /** The tenant of the credential the client authenticated with; null without AUTH. */
  authTenantId: string | null;
  /** The tenant whose registered outbound range holds the client's address; null when none. */
  ipTenantId: string | null;
}

export type SenderDecision =
  /** The transaction relays the tenant's mail: any recipient domain, rate-limited, stored as outbound. */
  | { direction: 'outbound'; tenantId: string; via: 'auth' | 'ip' }
  /**
   * The transaction is inbound mail, as from anyone on the internet: recipients must be protected.
   * `registeredIpForeignSender`: the client is a tenant's registered server sending with a
   * sender that is not the tenant's, so a refused relay attempt can say why.
   */
  | { direction: 'inbound'; registeredIpForeignSender: boolean }
  | { direction: 'refused'; reply: MoatError; why: string };

/**
 * MAIL FROM. `owner`: the tenant that owns the sender's domain (see ownerCandidates), looked up
 * only when the client may relay; null otherwise.
 *
 * - Authenticated: the sender must be in the credential's tenant's domains, else 550 5.7.1.
 *   AUTH wins over a registered address (the credential says who is sending).
 * - Registered address, no AUTH: with the tenant's sender the transaction is outbound. With a
 *   foreign sender it is refused on a submission port (550 5.7.1) and inbound mail on the MX port:
 *   a registered host may still deliver to protected domains like anyone else, and a relay
 *   attempt gets 550 5.7.1 naming the sender as the reason.
 * - Neither: inbound on the MX port; on a submission port 530 5.7.0 (authentication required;
 *   before TLS: STARTTLS first, since AUTH is offered only under TLS).
 * - The null sender `<>` from a relaying client is the tenant's outbound mail: customer servers
 *   send their non-delivery reports and auto-replies (RFC 3834) to the internet with it, and the
 *   client is known by its credential or address. Moat sends no DSN for it (RFC 5321 §4.5.5).
 */
export function decideSender(client: RelayClient, sender: SenderAddress, owner: string | null): SenderDecision {
  const via = client.authTenantId !== null ? 'auth' : client.ipTenantId !== null ? 'ip' : null;
  const tenantId = client.authTenantId ?? client.ipTenantId;
  if (via === null || tenantId === null) {
    if (client.listener === 'mx') return { direction: 'inbound', registeredIpForeignSender: false };
    return client.secure
      ? { direction: 'refused', reply: replies.authRequired(), why: 'not-authenticated' }
      : { direction: 'refused', reply: replies.startTlsFirst(), why: 'not-authenticated-no-tls' };
  }
  if (sender.kind === 'null') return { direction: 'outbound', tenantId, via };
  if (sender.kind === 'address' && owner === tenantId) return { direction: 'outbound', tenantId, via };
  if (via === 'ip' && client.listener === 'mx') return { direction: 'inbound', registeredIpForeignSender: true };
  if (sender.kind === 'invalid') return { direction: 'refused', reply: replies.badSender(), why: 'sender-syntax' };
  return { direction: 'refused', reply: replies.senderNotYours(sender.address), why: 'foreign-sender' };
}

export type OutboundRecipientDecision = { accept: true; address: string } | { accept: false; reply: MoatError; why: string };

/**
 * RCPT TO of an outbound transaction: any domain, but an address that is one (RFC 5321 §4.1.2).
 * Source routes, address literals and the %-hack / bang path / quoted `@` forms are refused
 * (553 5.1.3): no customer's user needs them, and each makes some server on the way deliver
 * somewhere else than the address says (an address literal would even let a client make Moat's
 * senders connect to any host, internal ones included).
 */
export function decideOutboundRecipient(raw: string, tx: { accepted: readonly string[]; maxRecipients: number }): OutboundRecipientDecision {
  const rcpt = classifyRecipient(raw);
  if (!rcpt.ok) return { accept: false, reply: replies.badOutboundRecipient(rcpt.reason), why: rcpt.reason };
  // A repeated recipient replaces the earlier one (smtp-server dedupes), so it does not count.
  const repeated = tx.accepted.some((a) => a.toLowerCase() === raw.toLowerCase());
  if (!repeated && tx.accepted.length >= tx.maxRecipients) return { accept: false, reply: replies.tooManyRecipients(), why: 'too-many-recipients' };
  return { accept: true, address: rcpt.address };
}

function isDnsName(name: string): boolean {
  if (name.length > 253 || !name.includes('.')) return false;
  return name.split('.').every((label) => label.length > 0 && label.length <= 63 && /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/.test(label));
}
