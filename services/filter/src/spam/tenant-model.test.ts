import { describe, expect, it } from 'vitest';
import { borderlineMessage } from '@moat/testkit';
import { score } from './bayes.js';
import { contentScore, defaultSpamThresholds, scoreWith } from './classify.js';
import { loadModel } from './model.js';
import { parseForSpam } from './parse.js';
import { SpamCheck } from './spam-check.js';
import { countsByToken, defaultTenantLearning, evidenceWithTenant, hashTokens, scoreWithTenant, tokenHash, type TenantCounts } from './tenant-model.js';
import { tokenize } from './tokenize.js';
import { logisticScore } from './logistic.js';

const model = loadModel();
const raw = borderlineMessage({ to: 'bob@customer.example' });
const input = await parseForSpam(raw);
const tokens = tokenize(input);

/** What a tenant's counts hold after labelling `n` copies of a message with these tokens. */
function learned(messageTokens: Iterable<string>, spam: number, ham: number): TenantCounts {
  return { nSpam: spam, nHam: ham, tokens: new Map([...messageTokens].map((t) => [t, { spam, ham }])) };
}

const statusOf = (tenant: TenantCounts | null, learning = defaultTenantLearning) =>
  scoreWith({ bayes: scoreWithTenant(model, tenant, tokens, learning), logit: logisticScore(model.logistic, tokens) }, input, raw, [], defaultSpamThresholds).status;

describe('scoreWithTenant', () => {
  it('when the tenant has learned nothing, then the score is the default model’s exactly', () => {
    expect(scoreWithTenant(model, null, tokens, defaultTenantLearning)).toEqual(score(model.counts, tokens, model.params));
    expect(scoreWithTenant(model, { nSpam: 0, nHam: 0, tokens: new Map() }, tokens, defaultTenantLearning)).toEqual(score(model.counts, tokens, model.params));
  });

  it('when a tenant labelled a few messages like a borderline one as spam, then that message is spam for it, and unsure without its counts', () => {
    expect(statusOf(null)).toBe('unsure');
    expect(statusOf(learned(tokens, 3, 0))).toBe('spam');
  });

  it('when the weight is 0, then the tenant’s counts change nothing', () => {
    expect(statusOf(learned(tokens, 3, 0), { ...defaultTenantLearning, weight: 0 })).toBe('unsure');
  });

  it('when a tenant labelled the same message as not spam, then its spam-leaning tokens lose their pull and it is ham', () => {
    expect(statusOf(learned(tokens, 0, 3))).toBe('ham');
  });

  it('when a tenant labelled only spam, then a token the default model does not know is no clue (a pruned common word must not turn into spam evidence)', () => {
    const unknown = [...tokens].filter((t) => !model.counts.tokens.has(t));
    expect(unknown.length).toBeGreaterThan(3);
    const out = scoreWithTenant(model, learned(unknown, 20, 0), unknown, defaultTenantLearning);
    expect(out.clues).toEqual([]);
  });

  it('when a tenant labelled both classes, then a token only it knows is a clue once seen in four messages of one class, not before', () => {
    const word = 'zqxjkplorbit';
    const withWord = (spam: number): TenantCounts => ({ nSpam: 5, nHam: 5, tokens: new Map([[word, { spam, ham: 0 }]]) });
    expect(scoreWithTenant(model, withWord(3), [word], defaultTenantLearning).clues).toEqual([]);
    const clue = scoreWithTenant(model, withWord(4), [word], defaultTenantLearning).clues;
    expect(clue).toHaveLength(1);
    expect(clue[0]!.probability).toBeGreaterThanOrEqual(0.9);
    // A token the tenant sees in both classes alike says nothing.
    expect(scoreWithTenant(model, { nSpam: 5, nHam: 5, tokens: new Map([[word, { spam: 5, ham: 5 }]]) }, [word], defaultTenantLearning).clues).toEqual([]);
  });
});

describe('token hashes', () => {
  it('when a token is hashed, then it is a signed 64-bit decimal, stable, and different tokens differ', () => {
    const h = tokenHash('mortgage');
    expect(h).toMatch(/^-?\d{1,19}$/);
    expect(BigInt(h)).toBeGreaterThanOrEqual(-(2n ** 63n));
    expect(BigInt(h)).toBeLessThan(2n ** 63n);
    expect(tokenHash('mortgage')).toBe(h);
    expect(tokenHash('mortgages')).not.toBe(h);
  });

  it('when stored counts come back by hash, then they are keyed by the message’s tokens again, unknown hashes dropped', () => {
    const hashed = hashTokens(['a', 'b']);
    const stored = new Map([
      [tokenHash('a'), { spam: 2, ham: 1 }],
      ['12345', { spam: 9, ham: 9 }],
    ]);
    expect(countsByToken(hashed, { nSpam: 3, nHam: 1, tokens: stored })).toEqual({ nSpam: 3, nHam: 1, tokens: new Map([['a', { spam: 2, ham: 1 }]]) });
  });
});

describe('SpamCheck with tenant learning', () => {
  const thresholds = defaultSpamThresholds;
  /** A repository stand-in answering from a tenant → counts table, as the store would by hash. */
  const repo = (byTenant: Record<string, TenantCounts>) => ({
    tokenCounts: async (tenantId: string, hashes: readonly string[]) => {
      const t = byTenant[tenantId];
      if (!t) return null;
      const wanted = new Set(hashes);
      return { nSpam: t.nSpam, nHam: t.nHam, tokens: new Map([...t.tokens].map(([token, c]) => [tokenHash(token), c] as const).filter(([h]) => wanted.has(h))) };
    },
  });

  it('when tenant A taught spam, then A’s copy is quarantined and B’s and the outbound one (no tenant) are not', async () => {
    const check = new SpamCheck(model, thresholds, { counts: repo({ A: learned(tokens, 3, 0) }), params: defaultTenantLearning, timeoutMs: 1000, untaughtCacheMs: 0 });
    const a = await check.run(raw, [], 'A');
    expect(a.verdict).toBe('quarantine');
    expect(a.check.reason).toMatch(/; tenant=3s\/0h\(\d+ tokens\)$/);
    expect(a.reasons[0]).toMatch(/^spam: .*tenant=3s\/0h/);
    const b = await check.run(raw, [], 'B');
    expect(b.verdict).toBe('deliver');
    expect(b.outcome!.status).toBe('unsure');
    expect(b.check.reason).not.toMatch(/tenant/);
    expect((await check.run(raw, [], null)).outcome!.status).toBe('unsure');
  });

  it('when a tenant has learned nothing, then that is remembered for the cache time and it is not asked again meanwhile', async () => {
    let asked = 0;
    const counting = {
      tokenCounts: async (tenantId: string, hashes: readonly string[]) => {
        asked++;
        return repo({ A: learned(tokens, 3, 0) }).tokenCounts(tenantId, hashes);
      },
    };
    const cached = new SpamCheck(model, thresholds, { counts: counting, params: defaultTenantLearning, timeoutMs: 1000, untaughtCacheMs: 60_000 });
    await cached.run(raw, [], 'B');
    await cached.run(raw, [], 'B');
    expect(asked).toBe(1);
    // A tenant that has learned is asked every time (its counts change as it teaches).
    await cached.run(raw, [], 'A');
    await cached.run(raw, [], 'A');
    expect(asked).toBe(3);
    const uncached = new SpamCheck(model, thresholds, { counts: counting, params: defaultTenantLearning, timeoutMs: 1000, untaughtCacheMs: 0 });
    await uncached.run(raw, [], 'B');
    await uncached.run(raw, [], 'B');
    expect(asked).toBe(5);
  });

  it('when the tenant lookup fails or hangs, then the default model decides alone and the reason says so', async () => {
    const failing = new SpamCheck(model, thresholds, { counts: { tokenCounts: async () => Promise.reject(new Error('connection refused')) }, params: defaultTenantLearning, timeoutMs: 1000, untaughtCacheMs: 0 });
    const out = await failing.run(raw, [], 'A');
    expect(out.check.result).toBe('neutral');
    expect(out.check.reason).toMatch(/tenant model unavailable \(connection refused\): default model alone$/);
    const hanging = new SpamCheck(model, thresholds, { counts: { tokenCounts: () => new Promise(() => {}) }, params: defaultTenantLearning, timeoutMs: 50, untaughtCacheMs: 0 });
    expect((await hanging.run(raw, [], 'A')).check.reason).toMatch(/tenant model unavailable \(no answer within 50 ms\)/);
  });

  it('when a tenant labelled list-like mail as spam three times, then its labels quarantine it even though the logistic part leans ham hard', async () => {
    const listRaw = Buffer.from(
      'From: Bob <bob@lists.example.org>\r\nTo: dev@lists.example.org\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@lists.example.org>\r\n' +
        'List-Id: Developers <dev.lists.example.org>\r\nSubject: Re: build fails with new autoconf\r\nUser-Agent: Mutt/1.4i\r\n\r\n' +
        'Hi all,\r\n\r\nI tried the patch against the current CVS tree and the build fails in the configure step on Red Hat 7.3.\r\nDoes anyone know whether the Makefile needs the new autoconf? Thanks for any pointers.\r\n\r\nCheers,\r\nBob\r\n',
    );
    const listInput = await parseForSpam(listRaw);
    const listTokens = tokenize(listInput);
    const untaught = evidenceWithTenant(model, null, listTokens, defaultTenantLearning);
    expect(untaught.learnedShift).toBeUndefined();
    expect(untaught.logit).toBeLessThan(-8);
    expect(scoreWith(untaught, listInput, listRaw, [], defaultSpamThresholds).status).toBe('ham');
    const taught = evidenceWithTenant(model, learned(listTokens, 3, 0), listTokens, defaultTenantLearning);
    expect(taught.learnedShift).toBeGreaterThan(0.5);
    expect(scoreWith(taught, listInput, listRaw, [], defaultSpamThresholds).status).toBe('spam');
    // Counted once, as the Bayes part alone, the same labels would leave it short of the quarantine score.
    expect(contentScore({ bayes: taught.bayes, logit: taught.logit })).toBeLessThan(defaultSpamThresholds.quarantine);
  });
});
