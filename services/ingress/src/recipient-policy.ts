import type { Logger, MoatError } from '@moat/runtime';
import { classifyRecipient } from './recipient-address.js';
import { replies } from './replies.js';

/** What the policy needs to know about a protected domain. */
export interface ProtectedDomain {
  tenantId: string;
}

/** Finds the protected domain by its normalised name (cached by the caller); null when not protected. */
export type FindProtectedDomain = (name: string) => Promise<ProtectedDomain | null>;

/** The transaction so far, as the policy sees it. */
export interface TransactionSoFar {
  /** Tenant fixed by the first accepted recipient; null before. */
  tenantId: string | null;
  /** Addresses accepted so far (as given by the client). */
  accepted: readonly string[];
}

export type RecipientDecision = { accept: true; tenantId: string; address: string } | { accept: false; reply: MoatError; why: string };

/**
 * The recipient policy at RCPT time (RFC 5321 §3.6.2): refuse at SMTP time whatever would have
 * to bounce later. Order matters only for cost: the free checks run before the lookup.
 */
export class RecipientPolicy {
  constructor(
    private readonly findDomain: FindProtectedDomain,
    private readonly maxRecipients: number,
    private readonly log: Logger,
  ) {}

  async decide(rawAddress: string, tx: TransactionSoFar): Promise<RecipientDecision> {
    const rcpt = classifyRecipient(rawAddress);
    if (!rcpt.ok) return { accept: false, reply: replies.relayDenied(), why: rcpt.reason };
    // A repeated recipient replaces the earlier one (smtp-server dedupes), so it does not count.
    const repeated = tx.accepted.some((a) => a.toLowerCase() === rawAddress.toLowerCase());
    if (!repeated && tx.accepted.length >= this.maxRecipients) return { accept: false, reply: replies.tooManyRecipients(), why: 'too-many-recipients' };
    let domain: ProtectedDomain | null;
    try {
      domain = await this.findDomain(rcpt.domain);
      if (!domain && rcpt.unicodeDomain !== rcpt.domain) domain = await this.findDomain(rcpt.unicodeDomain);
    } catch (err) {
      // Fail soft (STYLE.md habit 8): a lookup we could not make is never a 5xx.
      this.log.warn({ err: (err as Error).message, domain: rcpt.domain }, 'protected-domain lookup failed');
      return { accept: false, reply: replies.tempFail(), why: 'lookup-failed' };
    }
    if (!domain) return { accept: false, reply: replies.relayDenied(), why: 'not-protected' };
    if (tx.tenantId !== null && tx.accepted.length > 0 && domain.tenantId !== tx.tenantId) {
      return { accept: false, reply: replies.otherTenant(), why: 'other-tenant' };
    }
    return { accept: true, tenantId: domain.tenantId, address: rcpt.address };
  }
}
