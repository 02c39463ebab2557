import { describe, expect, it } from 'vitest';
import { emptyLogistic, logisticScore, trainLogistic } from './logistic.js';

/** Spam says "offer" and "winner", ham "meeting" and "patch"; "the" is everywhere; one-off words are noise. */
function corpus() {
  const items: Array<{ tokens: string[]; isSpam: boolean }> = [];
  for (let i = 0; i < 40; i++) items.push({ tokens: ['offer', 'the', i % 2 ? 'winner' : 'cash', `noise${i}`], isSpam: true });
  for (let i = 0; i < 80; i++) items.push({ tokens: ['meeting', 'the', i % 2 ? 'patch' : 'build', `noise${100 + i}`], isSpam: false });
  return items;
}

describe('logistic regression', () => {
  it('when trained, then spam words weigh positive, ham words negative, and a token seen once gets no weight', () => {
    const model = trainLogistic(corpus());
    expect(model.weights.get('offer')).toBeGreaterThan(0.5);
    expect(model.weights.get('meeting')).toBeLessThan(-0.5);
    expect(model.weights.has('noise1')).toBe(false);
    expect(logisticScore(model, ['offer', 'winner', 'the'])).toBeGreaterThan(1);
    expect(logisticScore(model, ['meeting', 'patch', 'the'])).toBeLessThan(-1);
  });

  it('when trained twice on the same messages, then the weights are identical (the model file is reproducible)', () => {
    const a = trainLogistic(corpus());
    const b = trainLogistic(corpus());
    expect([...a.weights]).toEqual([...b.weights]);
    expect(a.bias).toBe(b.bias);
    // Four decimals, as the model file stores them.
    for (const w of a.weights.values()) expect(Math.round(w * 1e4) / 1e4).toBe(w);
  });

  it('when a message has only unknown tokens, then the score is the bias; an empty model scores 0', () => {
    const model = trainLogistic(corpus());
    expect(logisticScore(model, ['zzz', 'yyy'])).toBe(model.bias);
    expect(logisticScore(emptyLogistic(), ['offer'])).toBe(0);
  });

  it('when a message repeats its evidence in many tokens, then the score grows with the square root, not linearly', () => {
    const model = { bias: 0, weights: new Map(Array.from({ length: 100 }, (_, i) => [`t${i}`, 1] as [string, number])) };
    expect(logisticScore(model, ['t0'])).toBe(1);
    expect(logisticScore(model, Array.from({ length: 100 }, (_, i) => `t${i}`))).toBe(10);
  });
});
