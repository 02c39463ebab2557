import type { CheckResult, Verdict } from '@moat/contracts';
import { classify, describe, spamCheckResult, type SpamOutcome, type SpamThresholds } from './classify.js';
import type { SpamModel } from './model.js';

/**
 * The spam check as the filter runs it: the built-in classifier's outcome turned into the check
 * record, the verdict, the reason and the two headers. A classifier that throws (a parser bug on
 * a hostile message) yields an `error` check and a delivered, tagged message: never a silent
 * pass, never a lost message (issue 5; tenant policy may later choose retry instead).
 */

export interface SpamCheckOutcome {
  check: CheckResult;
  verdict: Verdict;
  score: number;
  reasons: string[];
  /** X-Moat-Spam-Score and X-Moat-Spam-Status values. */
  headers: { score: string; status: string };
  /** The classifier's outcome; null when it failed. */
  outcome: SpamOutcome | null;
  /** What the score rests on (`bayes=… clues=… GTUBE(+1000)`, the engines' parts), for re-judging under a tenant's thresholds; absent when nothing scored. */
  basis?: string;
}

export class SpamCheck {
  constructor(
    private readonly model: SpamModel,
    readonly thresholds: SpamThresholds,
  ) {}

  async run(raw: Buffer, auth: readonly CheckResult[]): Promise<SpamCheckOutcome> {
    let outcome: SpamOutcome;
    try {
      outcome = await classify(this.model, raw, auth, this.thresholds);
    } catch (err) {
      const reason = `spam classifier failed: ${(err as Error).message}`;
      return { check: { check: 'spam', result: 'error', reason }, verdict: 'deliver', score: 0, reasons: [reason], headers: { score: '0', status: 'error' }, outcome: null };
    }
    const check = spamCheckResult(outcome, this.thresholds);
    // "spam: …" when quarantined, "spam unsure: …" when delivered tagged (the archive reads the prefix).
    const reasons = outcome.status === 'ham' ? [] : [`${outcome.status === 'spam' ? 'spam' : 'spam unsure'}: score ${outcome.score} (${describe(outcome)})`];
    return {
      check,
      verdict: outcome.status === 'spam' ? 'quarantine' : 'deliver',
      score: outcome.score,
      reasons,
      headers: {
        score: outcome.score.toFixed(2),
        // SpamAssassin's X-Spam-Status layout: the answer first, then what it rests on.
        status: `${outcome.status} score=${outcome.score.toFixed(2)} quarantine=${this.thresholds.quarantine} unsure=${this.thresholds.unsure} ${describe(outcome)}`,
      },
      outcome,
      basis: describe(outcome),
    };
  }
}
