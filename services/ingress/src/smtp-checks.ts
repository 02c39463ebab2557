import type { Logger, MoatError } from '@moat/runtime';
import type { SmtpPolicy } from '@moat/store';
import type { ClientRateLimits } from './client-rate-limits.js';
import type { DnsblResult } from './dnsbl.js';
import type { Greylist } from './greylist.js';
import type { SmtpCheck } from './rejection-tracker.js';
import { replies } from './replies.js';
import { isPostmaster, type RecipientVerifier, type VerifiedRecipient } from './recipient-verification.js';

/** One RCPT of an inbound transaction whose domain the recipient policy found protected. */
export interface InboundRecipient {
  tenantId: string;
  rcpt: VerifiedRecipient & { address: string };
  clientIp: string;
  mailFrom: string;
  /** The first recipient of the transaction to reach the checks: it counts the message. */
  firstOfTransaction: boolean;
  /**
   * An operator-exempt range (MOAT_INGRESS_EXEMPT_CIDRS), a tenant's registered outbound range,
   * or an authenticated client: no rate limit, DNSBL or greylisting.
   */
  exempt: boolean;
  /** The DNSBL lookup of the client (started at connect, so RCPT rarely waits for it). */
  dnsbl: () => Promise<DnsblResult>;
}

export type InboundCheckDecision = { accept: true } | { accept: false; check: SmtpCheck; why: string; reply: MoatError; zone?: string };

export interface InboundChecksDeps {
  verifier: RecipientVerifier;
  /** null: per-client rate limits off (MOAT_INGRESS_RATE_LIMITS=false). */
  rateLimits: ClientRateLimits | null;
  greylist: Greylist;
  smtpPolicy: (tenantId: string) => Promise<SmtpPolicy>;
  log: Logger;
}

/**
 * The SMTP-time checks of an inbound recipient, after the recipient policy (protected domain,
 * relay rules) accepted it, cheapest and most decisive first:
 * 1. DNSBL: a listed client gets 554 5.7.1 for every recipient but postmaster@ (RFC 5321 §4.5.1:
 *    a listed sender must still be able to reach the postmaster to get delisted);
 * 2. per-client rate limits: the message (at its first recipient) and each recipient, 451 4.7.1;
 *    a refused recipient counts too, so a dictionary attack is throttled;
 * 3. recipient verification against the tenant's mailbox list: 550 5.1.1, a failed lookup 451 4.3.0;
 * 4. greylisting, when the tenant turned it on: 451 4.7.1 for a first attempt.
 * Each check fails soft: an error never refuses permanently (DNSBL, rate limits and greylisting
 * pass on error; recipient verification answers 451).
 */
export class InboundChecks {
  constructor(private readonly deps: InboundChecksDeps) {}

  async decide(r: InboundRecipient): Promise<InboundCheckDecision> {
    if (!r.exempt && !isPostmaster(r.rcpt.localPart)) {
      const listed = await r.dnsbl();
      if (listed.result === 'listed') return { accept: false, check: 'dnsbl', why: 'listed', zone: listed.zone, reply: replies.dnsblListed(r.clientIp, listed.zone) };
    }
    const limits = this.deps.rateLimits;
    if (!r.exempt && limits) {
      for (const kind of r.firstOfTransaction ? (['messages', 'recipients'] as const) : (['recipients'] as const)) {
        const taken = await limits.take(kind, r.clientIp);
        if (taken.result === 'limited') return { accept: false, check: 'rate-limit', why: kind, reply: taken.reply };
      }
    }
    const verified = await this.deps.verifier.verify(r.tenantId, r.rcpt);
    if (verified.result === 'unknown') return { accept: false, check: 'recipient-verification', why: 'unknown-user', reply: replies.userUnknown(r.rcpt.address) };
    if (verified.result === 'error') return { accept: false, check: 'recipient-verification', why: 'lookup-failed', reply: replies.tempFail() };
    if (r.exempt) return { accept: true };
    const policy = await this.deps.smtpPolicy(r.tenantId).catch((err: unknown) => {
      // The policy is the tenant's choice to delay mail; not knowing it, we do not delay.
      this.deps.log.warn({ err: (err as Error).message, tenantId: r.tenantId }, 'smtp policy lookup failed: not greylisting');
      return null;
    });
    if (policy?.greylisting.enabled) {
      const grey = await this.deps.greylist.check(r.tenantId, r.clientIp, r.mailFrom, r.rcpt.address, policy.greylisting);
      if (grey.result === 'greylisted') return { accept: false, check: 'greylisting', why: grey.verdict, reply: replies.greylisted() };
    }
    return { accept: true };
  }
}
