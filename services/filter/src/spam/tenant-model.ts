import { combineProbabilities, robinson, score as defaultBayesScore, unpack, type BayesScore } from './bayes.js';
import { bayesScale, type ContentEvidence } from './classify.js';
import { logisticScore } from './logistic.js';
import { tokenizerVersion, type SpamModel } from './model.js';

/**
 * Per-tenant learning: what a tenant taught ("this is spam", "this is not spam") combined with
 * the default model, for one message's tokens.
 *
 * The combination. A tenant label counts as `weight` messages of the default corpus: for a token
 * the default model knows, the tenant's counts are added to the default counts with that weight,
 * and so are its class totals (nSpam, nHam):
 *
 *   spam' = spam_default + w·spam_tenant      nSpam' = nSpam_default + w·nSpam_tenant   (ham alike)
 *
 * and Robinson's f(w) is computed on the sums exactly as for the default model. This is the
 * model the default would be had its corpus held w copies of each labelled message, so a token
 * the tenant never labelled keeps its default meaning (only slightly diluted by the new totals),
 * and with w = 10 a few dozen labels move the tokens they share (the default model was trained on
 * about 3,100 messages: 30 labels then weigh as a tenth of it).
 *
 * A token the default model does not know is another matter: the shipped model is pruned (a token
 * seen as often in ham as in spam is dropped, bayes.ts prune), so absence does not mean "never
 * seen", and adding a tenant's spam-only labels to nothing would make every common word of those
 * messages ("the", "please") a spam clue. Such a token counts only on the tenant's own contrast:
 * f(w) from the tenant's counts and totals alone, and only once the tenant has labelled both
 * classes, with a stronger prior (`newTokenStrength`: with the default model's clue threshold,
 * |f − 0.5| ≥ 0.4, a one-sided token needs four labelled messages before it is a clue).
 */

export interface TenantLearningParams {
  /** How many default-corpus messages one tenant label weighs as. 0: tenant counts are ignored. */
  weight: number;
  /** Robinson's prior strength for tokens only the tenant knows. */
  newTokenStrength: number;
}

export const defaultTenantLearning: TenantLearningParams = { weight: 10, newTokenStrength: 1 };

/** A tenant's counts for one message's tokens (by token text) and its class totals. */
export interface TenantCounts {
  nSpam: number;
  nHam: number;
  tokens: Map<string, { spam: number; ham: number }>;
}

/**
 * The stored form of a token: a 64-bit hash as a decimal string (Postgres bigint). Bounded
 * whatever the token; two 32-bit multiply-xorshift lanes (cyrb53's mixing, both lanes kept), ~0.1 µs
 * a token where SHA-256 cost 1.7 µs: a message has hundreds of tokens, and this runs for every
 * inbound message of a tenant that has learned. Not cryptographic, and it need not be: a sender
 * who could aim a collision at a tenant's token could as well write that token into the message.
 * 2,000,000 distinct tokens gave 2,000,000 distinct hashes. The tokenizer version seeds it, so a
 * tokenizer that changes what it emits starts from clean counts instead of misreading old ones.
 */
export function tokenHash(token: string): string {
  let h1 = 0xdeadbeef ^ tokenizerVersion;
  let h2 = 0x41c6ce57 ^ tokenizerVersion;
  for (let i = 0; i < token.length; i++) {
    const ch = token.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return BigInt.asIntN(64, (BigInt(h2 >>> 0) << 32n) | BigInt(h1 >>> 0)).toString();
}

/** hash → token, for a message's tokens. */
export function hashTokens(tokens: Iterable<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const token of tokens) out.set(tokenHash(token), token);
  return out;
}

/** The tenant's counts keyed by token again (the store answers by hash). */
export function countsByToken(hashed: Map<string, string>, stored: { nSpam: number; nHam: number; tokens: Map<string, { spam: number; ham: number }> }): TenantCounts {
  const tokens = new Map<string, { spam: number; ham: number }>();
  for (const [hash, counts] of stored.tokens) {
    const token = hashed.get(hash);
    if (token !== undefined) tokens.set(token, counts);
  }
  return { nSpam: stored.nSpam, nHam: stored.nHam, tokens };
}

/** The Bayesian score of a message's tokens under the default model plus the tenant's counts (see the top of this file). */
export function scoreWithTenant(model: SpamModel, tenant: TenantCounts | null, tokens: Iterable<string>, learning: TenantLearningParams): BayesScore {
  const w = tenant === null || tenant.nSpam + tenant.nHam === 0 ? 0 : learning.weight;
  const { params, counts } = model;
  const nSpam = counts.nSpam + w * (tenant?.nSpam ?? 0);
  const nHam = counts.nHam + w * (tenant?.nHam ?? 0);
  const tenantHasBothClasses = w > 0 && tenant!.nSpam > 0 && tenant!.nHam > 0;
  const probabilities: Array<{ token: string; probability: number }> = [];
  for (const token of tokens) {
    const packed = counts.tokens.get(token);
    const own = w > 0 ? tenant!.tokens.get(token) : undefined;
    if (packed !== undefined) {
      const d = unpack(packed);
      const spam = d.spam + w * (own?.spam ?? 0);
      const ham = d.ham + w * (own?.ham ?? 0);
      probabilities.push({ token, probability: robinson(spam, ham, nSpam, nHam, params.unknownWordStrength, params.unknownWordProb) });
    } else if (own !== undefined && tenantHasBothClasses) {
      probabilities.push({ token, probability: robinson(own.spam, own.ham, tenant!.nSpam, tenant!.nHam, learning.newTokenStrength, params.unknownWordProb) });
    }
  }
  return combineProbabilities(probabilities, params);
}

/**
 * Both statistical parts for a message of a tenant: the Bayes part with the tenant's counts, the
 * logistic part of the shipped model, and how far the tenant's labels moved the Bayes part
 * (`learnedShift`), which the score counts once more. Why: the logistic part cannot learn from a
 * tenant, and it often leans ham hard on mail that looks like list mail (median log-odds −9.7 on
 * the corpus's ham); with the Bayes part alone a tenant's "this is spam" on such a newsletter could
 * at best make it unsure. Counted twice, labels that move the Bayes part fully to spam reach the
 * quarantine score against any logistic opinion. Untaught tenants score as the default model.
 */
export function evidenceWithTenant(model: SpamModel, tenant: TenantCounts | null, tokens: Iterable<string>, learning: TenantLearningParams): ContentEvidence {
  const list = [...tokens];
  const logit = logisticScore(model.logistic, list);
  const bayes = scoreWithTenant(model, tenant, list, learning);
  const taught = tenant !== null && learning.weight > 0 && tenant.nSpam + tenant.nHam > 0 && tenant.tokens.size > 0;
  if (!taught) return { bayes, logit };
  const untaught = defaultBayesScore(model.counts, list, model.params);
  const learnedShift = Math.tanh(bayes.spamminess / bayesScale) - Math.tanh(untaught.spamminess / bayesScale);
  return { bayes, logit, learnedShift };
}

/** `tenant=12s/3h(40 tokens)`: what the tenant's model held for this message, for the reason line. */
export function describeTenant(tenant: TenantCounts): string {
  return `tenant=${tenant.nSpam}s/${tenant.nHam}h(${tenant.tokens.size} tokens)`;
}
