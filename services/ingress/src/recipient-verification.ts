import type { Logger } from '@moat/runtime';
import { TtlCache } from '@moat/store';

/** The recipient as RCPT classified it (recipient-address.ts). */
export interface VerifiedRecipient {
  localPart: string;
  /** A-label spelling. */
  domain: string;
  /** U-label spelling (a tenant may have registered its domain and mailboxes in either). */
  unicodeDomain: string;
}

export type VerificationResult =
  /** The address (or its base address without the subaddress tag) is one of the tenant's mailboxes. */
  | { result: 'known' }
  /** The tenant lists mailboxes in this domain and this is none of them: 550 5.1.1. */
  | { result: 'unknown' }
  /** No mailbox list for this domain: the domain is accepted as a whole (as before verification existed). */
  | { result: 'unlisted-domain' }
  /** postmaster@ is always accepted (RFC 5321 §4.5.1), list or no list. */
  | { result: 'postmaster' }
  /** The lookup failed: 451 4.3.0, never a 5xx for a question we could not ask. */
  | { result: 'error'; reason: string };

/** The two questions asked of the tenant's mailboxes (MailboxDirectory in the store). */
export interface Mailboxes {
  /** Whether the tenant lists any mailbox in the domain (its spellings). */
  hasMailboxes(tenantId: string, domains: readonly string[]): Promise<boolean>;
  /** Whether one of the candidate addresses is a mailbox of the tenant. */
  hasAny(tenantId: string, addresses: readonly string[]): Promise<boolean>;
}

/**
 * The addresses that would make the recipient known, lower-cased as Moat stores mailboxes (the
 * gateway lower-cases them; tracking and digests compare case-insensitively): the address, and
 * the address without its subaddress tag (`alice+news@` → `alice@`, RFC 5233) for each
 * delimiter character configured — the customer's server delivers those to the base mailbox, so
 * refusing them would lose mail. Both domain spellings.
 */
export function mailboxCandidates(rcpt: VerifiedRecipient, delimiters: string): { domains: string[]; addresses: string[] } {
  const local = rcpt.localPart.toLowerCase();
  const locals = [local];
  for (const d of delimiters) {
    const cut = local.indexOf(d);
    if (cut > 0 && !locals.includes(local.slice(0, cut))) locals.push(local.slice(0, cut));
  }
  const domains = rcpt.unicodeDomain === rcpt.domain ? [rcpt.domain] : [rcpt.domain, rcpt.unicodeDomain];
  return { domains, addresses: locals.flatMap((l) => domains.map((d) => `${l}@${d}`)) };
}

/**
 * Recipient verification against the tenant's mailbox list (the mailboxes added through the
 * API). A domain with no mailbox at all is accepted whole, so turning verification on for a
 * domain is adding its mailboxes — all of them: from the first one on, every other address in
 * that domain gets 550 5.1.1. Lookups are cached for `cacheMs` (answers, not failures), so a
 * mailbox added or removed takes effect within that bound.
 */
export class RecipientVerifier {
  /** Per tenant and domain: a domain without a list costs one lookup per cache period, whatever the recipient. */
  private readonly listed: TtlCache<boolean>;
  private readonly known: TtlCache<boolean>;

  constructor(
    private readonly mailboxes: Mailboxes,
    private readonly opts: { cacheMs: number; delimiters: string },
    private readonly log: Logger,
  ) {
    this.listed = new TtlCache<boolean>(opts.cacheMs, 100_000);
    this.known = new TtlCache<boolean>(opts.cacheMs, 100_000);
  }

  async verify(tenantId: string, rcpt: VerifiedRecipient): Promise<VerificationResult> {
    if (isPostmaster(rcpt.localPart)) return { result: 'postmaster' };
    const { domains, addresses } = mailboxCandidates(rcpt, this.opts.delimiters);
    try {
      const listed = await this.listed.get(`${tenantId}\u0000${rcpt.domain}`, () => this.mailboxes.hasMailboxes(tenantId, domains));
      if (!listed) return { result: 'unlisted-domain' };
      const known = await this.known.get(`${tenantId}\u0000${addresses.join('\u0000')}`, () => this.mailboxes.hasAny(tenantId, addresses));
      return known ? { result: 'known' } : { result: 'unknown' };
    } catch (err) {
      this.log.warn({ err: (err as Error).message, tenantId, domain: rcpt.domain }, 'mailbox lookup failed');
      return { result: 'error', reason: (err as Error).message };
    }
  }
}

/** RFC 5321 §4.5.1: `postmaster` is case-insensitive, and must be accepted for every domain served. */
export function isPostmaster(localPart: string): boolean {
  return localPart.toLowerCase() === 'postmaster';
}
