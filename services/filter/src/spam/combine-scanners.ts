import type { ScannerOutcome } from '../spam-scanners.js';
import { describe, statusFor, type SpamThresholds } from './classify.js';
import type { SpamCheckOutcome } from './spam-check.js';

/**
 * The built-in spam score combined with the external engines' (rspamd, spamd), as one number
 * compared with the same thresholds:
 *
 *   total = built-in score + Σ engine score × engine weight
 *   an engine that would reject (rspamd `reject`) → total is at least the quarantine score
 *
 * The weights put each engine's scale on ours: rspamd rejects at 15 by default, and 15 × 0.35
 * (the default MOAT_RSPAMD_WEIGHT) = 5.25, about the default quarantine score (5.3) on its own
 * (and rspamd's `reject` quarantines in any case); its
 * `add header` at 6 adds 2.1 points, enough to tip an unsure message. SpamAssassin calls mail
 * spam from 5 and its ham often scores 1–3; at 0.5 (MOAT_SPAMD_WEIGHT) its own spam threshold adds
 * 2.5 points (tips an unsure message, not a clear ham) and GTUBE's 1000 quarantines on its own.
 * A negative engine score
 * (rspamd's bonuses for authenticated, known-good mail) lowers the total. An engine that gave
 * no verdict adds nothing, and the message says so in X-Moat-Spam-Status (`rspamd=unavailable`):
 * it reaches this point only when the scanner-unavailable policy is `deliver`.
 *
 * With no engine configured the built-in outcome is returned unchanged.
 */
export function combineSpamScores(own: SpamCheckOutcome, scanners: readonly ScannerOutcome[], thresholds: SpamThresholds): SpamCheckOutcome {
  if (scanners.length === 0) return own;
  let points = own.score;
  let forced = false;
  const parts: string[] = [];
  const unavailable: string[] = [];
  for (const s of scanners) {
    if (!s.verdict) {
      parts.push(`${s.scanner}=unavailable`);
      unavailable.push(`${s.scanner} unavailable: scored without it (policy: deliver)`);
      continue;
    }
    points += s.verdict.score * s.verdict.weight;
    forced ||= s.verdict.forcesQuarantine;
    // rspamd=15.00x0.35(reject): one word, so the header stays easy to read by a rule.
    parts.push(`${s.scanner}=${s.verdict.score.toFixed(2)}x${s.verdict.weight}(${s.verdict.action.replace(/\s+/g, '_')})`);
  }
  let score = Math.round(points * 100) / 100;
  if (forced) score = Math.max(score, thresholds.quarantine);
  const status = statusFor(score, thresholds);
  const own_ = own.outcome ? `builtin=${own.score.toFixed(2)} ${describe(own.outcome)}` : 'builtin=error';
  const basis = `${own_} ${parts.join(' ')}`;
  const reasons = status === 'ham' ? [] : [`${status === 'spam' ? 'spam' : 'spam unsure'}: score ${score} (${basis})`];
  // A classifier failure stays visible in the reasons even when the engines carried the verdict.
  if (!own.outcome) reasons.push(...own.reasons);
  reasons.push(...unavailable);
  return {
    check: own.check,
    verdict: status === 'spam' ? 'quarantine' : 'deliver',
    score,
    reasons,
    headers: { score: score.toFixed(2), status: `${status} score=${score.toFixed(2)} quarantine=${thresholds.quarantine} unsure=${thresholds.unsure} ${basis}` },
    outcome: own.outcome,
    basis,
  };
}
