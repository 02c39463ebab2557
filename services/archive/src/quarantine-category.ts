import type { MessageFilteredPayload } from '@moat/contracts';
import type { QuarantineCategory } from '@moat/store';

const failed = (c: { result: string }) => c.result === 'fail';

/**
 * Why the filter quarantined a message, from the checks and reasons it published. The most
 * dangerous category wins (virus, then spoofing, then spam), because the category decides who may
 * release the message: anything not recognised is `policy`, and a virus is never mistaken for
 * something an ordinary key may release.
 * - virus: a failing `virus` check, or a reason `virus: <signature>` (virus-check.ts);
 * - spoofing: a failing check whose name contains `spoof`, or a reason starting `spoof`;
 * - spam: a failing check whose name contains `spam` (the classifier, rspamd, GTUBE rules), or a
 *   reason starting `spam`;
 * - policy: everything else (block lists, tenant rules).
 */
export function quarantineCategory(p: Pick<MessageFilteredPayload, 'checks' | 'reasons'>): QuarantineCategory {
  const reasons = p.reasons.map((r) => r.trim().toLowerCase());
  if (p.checks.some((c) => c.check === 'virus' && failed(c)) || reasons.some((r) => r.startsWith('virus'))) return 'virus';
  if (p.checks.some((c) => c.check.toLowerCase().includes('spoof') && failed(c)) || reasons.some((r) => r.startsWith('spoof'))) return 'spoofing';
  if (p.checks.some((c) => c.check.toLowerCase().includes('spam') && failed(c)) || reasons.some((r) => r.startsWith('spam'))) return 'spam';
  return 'policy';
}
