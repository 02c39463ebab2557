import type { CheckResult } from '@moat/contracts';
import { score as bayesScore, type BayesScore } from './bayes.js';
import type { SpamModel } from './model.js';
import { parseForSpam, type SpamInput } from './parse.js';
import { evaluateRules, type RuleHit } from './rules.js';
import { tokenize } from './tokenize.js';

/**
 * The built-in spam check: the Bayesian probability (0–1) scaled to 0–10 points, plus the rules'
 * weights. One number a person can read in X-Moat-Spam-Score, compared with two thresholds:
 *
 *   score ≥ quarantine  → spam: quarantined
 *   score ≥ unsure      → unsure: delivered, tagged (X-Moat-Spam-Status: unsure)
 *   below               → ham: delivered
 *
 * The unsure band is where chi-square combining puts messages with mixed or little evidence;
 * delivering them (tagged) rather than quarantining is what keeps false positives down.
 */

export interface SpamThresholds {
  /** At or above: spam, quarantined. */
  quarantine: number;
  /** At or above (and below quarantine): unsure, delivered tagged. */
  unsure: number;
}

/**
 * Chosen from the 10-fold cross-validation on the SpamAssassin train split (README): below a
 * Bayesian probability of 0.52 false positives climb steeply, above it recall falls.
 */
export const defaultSpamThresholds: SpamThresholds = { quarantine: 5.2, unsure: 4 };

export type SpamStatus = 'ham' | 'unsure' | 'spam';

export interface SpamOutcome {
  status: SpamStatus;
  /** Total points, two decimals. */
  score: number;
  /** The Bayesian probability alone. */
  probability: number;
  rules: RuleHit[];
  /** The strongest tokens either way, for the reason line. */
  clues: Array<{ token: string; probability: number }>;
}

export function statusFor(score: number, thresholds: SpamThresholds): SpamStatus {
  if (score >= thresholds.quarantine) return 'spam';
  if (score >= thresholds.unsure) return 'unsure';
  return 'ham';
}

/**
 * Below this many clues the Bayesian probability is pulled towards 0.4 (the bottom of the unsure band): a message
 * the model knows almost nothing about (a short note, a machine-made message, mail unlike the
 * 2002 training corpus) is unsure, not spam because two of its tokens were once seen in spam.
 * On the SpamAssassin train split this costs no recall; on the MIME torture corpus it is the
 * difference between a third of the messages quarantined and almost none.
 */
export const minimumClues = 10;

/** Where a message with no clues lands: 4 points, the bottom of the unsure band, so rules that only tip cannot quarantine it. */
const noEvidenceProbability = 0.4;

/** The Bayesian probability as the score uses it: shrunk towards 0.5 when there is little evidence. */
export function weightedProbability(bayes: BayesScore): number {
  // Squared: two or three clues move the score only a little, nine almost all the way.
  const evidence = Math.min(1, bayes.clues.length / minimumClues) ** 2;
  return noEvidenceProbability + (bayes.probability - noEvidenceProbability) * evidence;
}

/** The Bayesian probability and the rules' hits as one outcome (cross-validation uses this too). */
export function combine(bayes: BayesScore, rules: RuleHit[], thresholds: SpamThresholds): SpamOutcome {
  const points = weightedProbability(bayes) * 10 + rules.reduce((sum, r) => sum + r.weight, 0);
  const score = Math.round(points * 100) / 100;
  return { status: statusFor(score, thresholds), score, probability: bayes.probability, rules, clues: bayes.clues };
}

/** Scores an already parsed message. */
export function scoreParsed(model: SpamModel, input: SpamInput, raw: Buffer, auth: readonly CheckResult[], thresholds: SpamThresholds): SpamOutcome {
  return scoreWith(bayesScore(model.counts, tokenize(input), model.params), input, raw, auth, thresholds);
}

/** Combines an already computed Bayesian score (the default model's, or with a tenant's counts) with the rules. */
export function scoreWith(bayes: BayesScore, input: SpamInput, raw: Buffer, auth: readonly CheckResult[], thresholds: SpamThresholds): SpamOutcome {
  return combine(bayes, evaluateRules({ input, raw, auth }), thresholds);
}

export async function classify(model: SpamModel, raw: Buffer, auth: readonly CheckResult[], thresholds: SpamThresholds): Promise<SpamOutcome> {
  return scoreParsed(model, await parseForSpam(raw), raw, auth, thresholds);
}

/** `bayes=0.98 GTUBE(+1000) MISSING_DATE(+0.5)`: what decided, short enough for a header. */
export function describe(outcome: SpamOutcome): string {
  const rules = outcome.rules.map((r) => `${r.rule}(+${r.weight})`);
  return [`bayes=${outcome.probability.toFixed(3)}`, `clues=${outcome.clues.length}`, ...rules].join(' ');
}

/** The contract's closed vocabulary: ham passes, spam fails, unsure is neutral (delivered, tagged). */
export function spamCheckResult(outcome: SpamOutcome, thresholds: SpamThresholds): CheckResult {
  const result = outcome.status === 'spam' ? 'fail' : outcome.status === 'unsure' ? 'neutral' : 'pass';
  return { check: 'spam', result, reason: `${outcome.status}: score ${outcome.score} (quarantine at ${thresholds.quarantine}, unsure at ${thresholds.unsure}); ${describe(outcome)}` };
}
