import { createHash } from 'node:crypto';
import type { CheckResult } from '@moat/contracts';
import type { DmarcHandling } from '@moat/store';
import type { AuthEvidence } from './auth-checks.js';
import { isWithinDomain } from './filter-lists.js';

/**
 * Tenant policy on sender authentication (issue 5, "Authentication"): anti-spoofing of the
 * tenant's own domains, and DMARC policies honoured when the tenant asks. Pure.
 */

const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');

/**
 * The `spoofing` check of an inbound message, or null when its From header claims none of the
 * tenant's own domains (nothing to protect, no record).
 *
 * A From domain that is one of the tenant's protected domains, or a subdomain of one, must be
 * authenticated, or the message is a spoof of the tenant itself (the classic "CEO fraud"):
 * - DMARC pass → pass; DMARC fail → fail (the domain's own record says so);
 * - otherwise (no DMARC record, or a record that does not parse): pass when SPF passed for a
 *   domain under the same protected domain, or a DKIM signature of such a domain verified
 *   (alignment without a record to tell strict from relaxed: the tenant's own tree, which needs
 *   no public-suffix list); fail when neither did (SPF pass for some other domain proves only
 *   that the *envelope* is genuine, which a spoofer controls);
 * - a DNS failure that leaves the answer open (DMARC, SPF or DKIM temperror, nothing aligned
 *   passed) → temperror: the caller applies the scanner-unavailable policy, never a silent pass.
 * Several From addresses: each claimed own domain must pass.
 */
export function spoofingCheck(headerFrom: readonly string[], ownDomains: readonly string[], auth: AuthEvidence): CheckResult | null {
  const claimed = headerFrom.map(domainOf).flatMap((d) => {
    const own = ownDomains.find((o) => isWithinDomain(d, o));
    return own ? [{ domain: d, own }] : [];
  });
  if (claimed.length === 0) return null;
  const outcomes = claimed.map(({ domain, own }) => {
    if (auth.dmarc.result === 'pass') return { result: 'pass' as const, reason: `${domain}: DMARC pass` };
    if (auth.dmarc.result === 'fail') return { result: 'fail' as const, reason: `${domain} is the tenant's own domain and the message fails its DMARC policy` };
    const spfAligned = auth.spf?.result === 'pass' && auth.spf.domain !== null && isWithinDomain(auth.spf.domain, own);
    const dkimAligned = (auth.dkimPass ?? []).find((d) => isWithinDomain(d, own));
    if (spfAligned) return { result: 'pass' as const, reason: `${domain}: SPF pass for ${auth.spf!.domain}` };
    if (dkimAligned) return { result: 'pass' as const, reason: `${domain}: DKIM pass for d=${dkimAligned}` };
    const unsettled = auth.dmarc.result === 'temperror' || auth.spf === null || auth.spf.result === 'temperror' || auth.dkimPass === null;
    if (unsettled) return { result: 'temperror' as const, reason: `${domain} is the tenant's own domain and its authentication could not be completed (DNS)` };
    return {
      result: 'fail' as const,
      reason: `${domain} is the tenant's own domain, has no usable DMARC record, SPF did not pass for it (spf=${auth.spf?.result ?? 'none'}) and no DKIM signature of it verified`,
    };
  });
  const worst = outcomes.find((o) => o.result === 'fail') ?? outcomes.find((o) => o.result === 'temperror') ?? outcomes[0]!;
  return { check: 'spoofing', result: worst.result, reason: worst.reason };
}

export interface DmarcAction {
  action: 'none' | 'quarantine' | 'reject';
  /** Set when the action is not none: the reason line. */
  reason: string | null;
}

/**
 * Where a message falls in DMARC's pct= sample: 0–99, from a hash of its Moat message id. The
 * same message always lands in the same place (a redelivered or re-filtered message gets the same
 * verdict), and message ids are random, so the share selected is pct % of the failing mail.
 */
export function dmarcSampleBucket(messageId: string): number {
  return createHash('sha256').update(messageId).digest().readUInt32BE(0) % 100;
}

/**
 * What a DMARC failure means for the message under the tenant's handling. `tag`: nothing (the
 * result is in Authentication-Results and the checks). `honour`: the domain's policy
 * (RFC 7489 §6.3: p=, or sp= for a subdomain) — quarantine or reject. A pct= below 100 applies
 * the policy to that share of the failing mail (RFC 7489 §6.6.4), sampled by message id
 * (`dmarcSampleBucket`: deterministic, never a coin thrown again on a retry); the rest gets the
 * next milder policy (reject → quarantine, quarantine → none), as the RFC prescribes.
 */
export function dmarcAction(handling: DmarcHandling, auth: AuthEvidence, messageId: string): DmarcAction {
  if (handling !== 'honour' || auth.dmarc.result !== 'fail') return { action: 'none', reason: null };
  const asked = auth.dmarc.policy;
  const pct = auth.dmarc.pct;
  const sampledOut = pct !== null && pct < 100 && dmarcSampleBucket(messageId) >= pct;
  const policy = sampledOut ? (asked === 'reject' ? 'quarantine' : 'none') : asked;
  if (policy !== 'quarantine' && policy !== 'reject') return { action: 'none', reason: null };
  const note = pct === null || pct >= 100 ? '' : sampledOut ? ` (pct=${pct}, not sampled: the milder policy)` : ` (pct=${pct}, sampled)`;
  return { action: policy, reason: `dmarc: the message fails DMARC and the sender domain's policy is ${policy}${note}` };
}
