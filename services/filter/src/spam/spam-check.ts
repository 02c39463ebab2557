import type { CheckResult, Verdict } from '@moat/contracts';
import { withDeadline } from '@moat/runtime';
import type { SpamLearningRepository } from '@moat/store';
import { describe, scoreWith, spamCheckResult, type SpamOutcome, type SpamThresholds } from './classify.js';
import type { SpamModel } from './model.js';
import { parseForSpam } from './parse.js';
import { countsByToken, defaultTenantLearning, describeTenant, evidenceWithTenant, hashTokens, type TenantCounts, type TenantLearningParams } from './tenant-model.js';
import { tokenize } from './tokenize.js';

/**
 * The spam check as the filter runs it: the built-in classifier's outcome turned into the check
 * record, the verdict, the reason and the two headers. A classifier that throws (a parser bug on
 * a hostile message) yields an `error` check and a delivered, tagged message: never a silent
 * pass, never a lost message (issue 5; tenant policy may later choose retry instead).
 *
 * With per-tenant learning on, the message's tokens are looked up in the tenant's counts (one
 * query, bounded by a timeout) and scored with them (tenant-model.ts). A lookup that fails or
 * times out fails soft: the default model alone decides, and the check's reason says so.
 */

export interface TenantLearning {
  counts: Pick<SpamLearningRepository, 'tokenCounts'>;
  params: TenantLearningParams;
  /** Bound on the lookup; past it the default model decides alone. */
  timeoutMs: number;
  /**
   * How long "this tenant has learned nothing" is remembered: most tenants never label, and for
   * them the lookup (and hashing every token) would be pure cost. A tenant's first labels take
   * effect within this bound after the trainer learned them. 0: asked for every message.
   */
  untaughtCacheMs: number;
}

export interface SpamCheckOutcome {
  check: CheckResult;
  verdict: Verdict;
  score: number;
  reasons: string[];
  /** X-Moat-Spam-Score and X-Moat-Spam-Status values. */
  headers: { score: string; status: string };
  /** The classifier's outcome; null when it failed. */
  outcome: SpamOutcome | null;
  /** What the score rests on (`bayes=… logit=… clues=… GTUBE(+1000)`, the engines' parts), for re-judging under a tenant's thresholds; absent when nothing scored. */
  basis?: string;
}

export class SpamCheck {
  constructor(
    private readonly model: SpamModel,
    readonly thresholds: SpamThresholds,
    private readonly learning: TenantLearning | null = null,
  ) {}

  /** tenant id → until when it is known to have learned nothing (Date.now() ms). */
  private readonly untaught = new Map<string, number>();

  /** `tenantId`: whose learned counts to add (inbound mail); null or absent: the default model alone. */
  async run(raw: Buffer, auth: readonly CheckResult[], tenantId: string | null = null): Promise<SpamCheckOutcome> {
    let outcome: SpamOutcome;
    let tenantNote: string | null = null;
    try {
      const input = await parseForSpam(raw);
      const tokens = tokenize(input);
      const tenant = tenantId !== null && this.learning !== null && this.learning.params.weight > 0 ? await this.tenantCounts(this.learning, tenantId, tokens) : null;
      tenantNote = tenant === null ? null : 'failed' in tenant ? tenant.failed : describeTenant(tenant);
      const counts = tenant === null || 'failed' in tenant ? null : tenant;
      // Tenant labels move the Bayesian part, counted twice (tenant-model.ts); the logistic part is the shipped model's.
      outcome = scoreWith(evidenceWithTenant(this.model, counts, tokens, this.learning?.params ?? defaultTenantLearning), input, raw, auth, this.thresholds);
    } catch (err) {
      const reason = `spam classifier failed: ${(err as Error).message}`;
      return { check: { check: 'spam', result: 'error', reason }, verdict: 'deliver', score: 0, reasons: [reason], headers: { score: '0', status: 'error' }, outcome: null };
    }
    const result = spamCheckResult(outcome, this.thresholds);
    const check = tenantNote === null ? result : { ...result, reason: `${result.reason}; ${tenantNote}` };
    // "spam: …" when quarantined, "spam unsure: …" when delivered tagged (the archive reads the prefix).
    const reasons = outcome.status === 'ham' ? [] : [`${outcome.status === 'spam' ? 'spam' : 'spam unsure'}: score ${outcome.score} (${describe(outcome)}${tenantNote === null ? '' : `; ${tenantNote}`})`];
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

  /** The tenant's counts for these tokens; null when it learned nothing; `failed` (fail soft) when the lookup failed. */
  private async tenantCounts(learning: TenantLearning, tenantId: string, tokens: Set<string>): Promise<TenantCounts | null | { failed: string }> {
    if ((this.untaught.get(tenantId) ?? 0) > Date.now()) return null;
    const hashed = hashTokens(tokens);
    try {
      const stored = await withDeadline(learning.counts.tokenCounts(tenantId, [...hashed.keys()]), learning.timeoutMs, () => new Error(`no answer within ${learning.timeoutMs} ms`));
      if (stored === null) {
        this.rememberUntaught(tenantId, learning.untaughtCacheMs);
        return null;
      }
      return countsByToken(hashed, stored);
    } catch (err) {
      return { failed: `tenant model unavailable (${(err as Error).message}): default model alone` };
    }
  }

  private rememberUntaught(tenantId: string, forMs: number): void {
    if (forMs <= 0) return;
    const now = Date.now();
    // Bounded by the number of tenants; expired entries go when it grows large.
    if (this.untaught.size >= 10_000) for (const [id, until] of this.untaught) if (until <= now) this.untaught.delete(id);
    this.untaught.set(tenantId, now + forMs);
  }
}
