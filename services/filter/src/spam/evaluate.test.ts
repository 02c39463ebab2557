import { describe, expect, it } from 'vitest';
import { accuracyOf, crossValidate, type Features, type Scored } from './evaluate.js';
import { defaultSpamThresholds } from './classify.js';
import { tunedBayesParams } from './model.js';

describe('accuracy figures', () => {
  it('when spam is quarantined, unsure or delivered, then recall, false positives, accuracy and the matrix follow', () => {
    const s = (isSpam: boolean, status: Scored['status']): Scored => ({ isSpam, status, contentStatus: status, score: 0, probability: 0 });
    const a = accuracyOf([s(true, 'spam'), s(true, 'spam'), s(true, 'unsure'), s(true, 'ham'), s(false, 'ham'), s(false, 'ham'), s(false, 'unsure'), s(false, 'spam')]);
    expect(a.confusion).toEqual({ spam: { spam: 2, unsure: 1, ham: 1 }, ham: { spam: 1, unsure: 1, ham: 2 } });
    expect(a.recall).toBe(0.5);
    expect(a.falsePositiveRate).toBe(0.25);
    expect(a.accuracy).toBe(5 / 8);
  });

  it('when cross-validating, then every message is scored once by a model that did not see it', () => {
    const items: Features[] = [];
    // Ten shared words per class: enough clues for the score to leave the unsure band.
    const spamWords = Array.from({ length: 10 }, (_, j) => `offer${j}`);
    const hamWords = Array.from({ length: 10 }, (_, j) => `patch${j}`);
    for (let i = 0; i < 10; i++) items.push({ isSpam: true, tokens: [...spamWords, `unique${i}`], rules: [] });
    for (let i = 0; i < 10; i++) items.push({ isSpam: false, tokens: [...hamWords, `unique${i + 10}`], rules: [] });
    const scored = crossValidate(items, 5, tunedBayesParams, 1, defaultSpamThresholds);
    expect(scored).toHaveLength(20);
    const a = accuracyOf(scored);
    expect(a.recall).toBe(1);
    expect(a.falsePositiveRate).toBe(0);
    // A token seen only in the held-out message is unknown to its fold's model: no clue from it.
    expect(scored.every((s) => s.probability !== 0.5)).toBe(true);
    expect(() => crossValidate(items, 1, tunedBayesParams, 1, defaultSpamThresholds)).toThrow(/at least 2 folds/);
  });
});
