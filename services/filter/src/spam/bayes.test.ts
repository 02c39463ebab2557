import { describe, expect, it } from 'vitest';
import { chi2Q, lnChi2Q, defaultBayesParams, emptyCounts, learn, pack, prune, score, tokenProbability, unpack } from './bayes.js';

function trained() {
  const counts = emptyCounts();
  for (let i = 0; i < 20; i++) learn(counts, ['viagra', 'free', `s${i}`], true);
  for (let i = 0; i < 20; i++) learn(counts, ['meeting', 'agenda', 'free', `h${i}`], false);
  return counts;
}

describe('bayes', () => {
  it('when counts are packed, then they unpack to the same numbers', () => {
    expect(unpack(pack(1234, 56789))).toEqual({ spam: 1234, ham: 56789 });
    expect(unpack(pack(0, 0))).toEqual({ spam: 0, ham: 0 });
  });

  it('when chi2Q is asked for known values, then it matches the chi-square table', () => {
    // P(chi2 with 2 dof > 2*ln(20)) = 0.05; with 10 dof, P(> 18.307) ≈ 0.05.
    expect(chi2Q(2 * Math.log(20), 2)).toBeCloseTo(0.05, 6);
    expect(chi2Q(18.307, 10)).toBeCloseTo(0.05, 3);
    expect(chi2Q(0, 4)).toBe(1);
    // The log form agrees where chi2Q is representable, and stays finite where it underflows to 0.
    expect(lnChi2Q(18.307, 10)).toBeCloseTo(Math.log(chi2Q(18.307, 10)), 10);
    expect(lnChi2Q(0, 4)).toBe(0);
    expect(chi2Q(3000, 300)).toBe(0);
    const deep = lnChi2Q(3000, 300);
    expect(Number.isFinite(deep)).toBe(true);
    expect(deep).toBeLessThan(lnChi2Q(2000, 300));
  });

  it('when both sides of the evidence are overwhelming, then the probability is 0.5 but spamminess still says which side is stronger', () => {
    const counts = emptyCounts();
    const spamWords = Array.from({ length: 100 }, (_, i) => `spam${i}`);
    const hamWords = Array.from({ length: 100 }, (_, i) => `ham${i}`);
    for (let i = 0; i < 30; i++) learn(counts, spamWords, true);
    for (let i = 0; i < 30; i++) learn(counts, hamWords, false);
    const mostlySpam = score(counts, [...spamWords.slice(0, 90), ...hamWords.slice(0, 60)]);
    const mostlyHam = score(counts, [...spamWords.slice(0, 60), ...hamWords.slice(0, 90)]);
    expect(mostlySpam.probability).toBeCloseTo(0.5, 6);
    expect(mostlyHam.probability).toBeCloseTo(0.5, 6);
    expect(mostlySpam.spamminess).toBeGreaterThan(10);
    expect(mostlyHam.spamminess).toBeLessThan(-10);
    expect(score(counts, []).spamminess).toBe(0);
  });

  it('when a token occurs only in spam, then its probability is high, and shrinks towards 0.5 when rarely seen', () => {
    const counts = trained();
    const often = tokenProbability(counts, counts.tokens.get('viagra')!, defaultBayesParams);
    const once = tokenProbability(counts, counts.tokens.get('s1')!, defaultBayesParams);
    expect(often).toBeGreaterThan(0.98);
    expect(once).toBeGreaterThan(0.5);
    expect(once).toBeLessThan(often);
    expect(tokenProbability(counts, counts.tokens.get('free')!, defaultBayesParams)).toBeCloseTo(0.5, 6);
  });

  it('when a message has spam words, ham words or none, then it scores near 1, near 0 or exactly 0.5', () => {
    const counts = trained();
    expect(score(counts, ['viagra', 'free']).probability).toBeGreaterThan(0.9);
    expect(score(counts, ['meeting', 'agenda']).probability).toBeLessThan(0.1);
    const none = score(counts, ['unknown', 'free']);
    expect(none.probability).toBe(0.5);
    expect(none.clues).toEqual([]);
  });

  it('when the evidence is mixed, then the score lands in the middle, not at an extreme', () => {
    const p = score(trained(), ['viagra', 'meeting']).probability;
    expect(p).toBeGreaterThan(0.3);
    expect(p).toBeLessThan(0.7);
  });

  it('when pruned, then rare and neutral tokens are dropped and the counts kept', () => {
    const pruned = prune(trained(), 2);
    expect(pruned.tokens.has('viagra')).toBe(true);
    expect(pruned.tokens.has('s1')).toBe(false); // seen once
    expect(pruned.tokens.has('free')).toBe(false); // evenly spread
    expect(pruned.nSpam).toBe(20);
    expect(pruned.nHam).toBe(20);
  });
});
