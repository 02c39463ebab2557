import { describe, expect, it } from 'vitest';
import { retryDelayMs, stableRandom } from './backoff.js';

const policy = { baseMs: 300_000, maxMs: 3_600_000 };

describe('retryDelayMs', () => {
  it('when the jitter is neutral, then the delay doubles from the base per attempt', () => {
    expect([1, 2, 3, 4].map((a) => retryDelayMs(a, policy, 0.5))).toEqual([300_000, 600_000, 1_200_000, 2_400_000]);
  });

  it('when the doubling passes the maximum, then the delay stays at the maximum', () => {
    expect(retryDelayMs(5, policy, 0.5)).toBe(3_600_000);
    expect(retryDelayMs(60, policy, 0.5)).toBe(3_600_000);
    expect(retryDelayMs(5000, policy, 0.5)).toBe(3_600_000);
  });

  it('when the jitter is at its extremes, then the delay stays within ±10 %', () => {
    for (const attempt of [1, 2, 3, 8]) {
      const nominal = Math.min(policy.baseMs * 2 ** (attempt - 1), policy.maxMs);
      for (const random of [0, 0.25, 0.75, 0.999_999]) {
        const d = retryDelayMs(attempt, policy, random);
        expect(d).toBeGreaterThanOrEqual(Math.floor(nominal * 0.9));
        expect(d).toBeLessThanOrEqual(Math.ceil(nominal * 1.1));
      }
    }
    expect(retryDelayMs(1, policy, 0)).toBe(270_000);
  });

  it('when many deliveries fail together, then their retries spread over the jitter window', () => {
    const delays = Array.from({ length: 200 }, (_, i) => retryDelayMs(1, policy, stableRandom('delivery', String(i))));
    expect(Math.min(...delays)).toBeLessThan(280_000);
    expect(Math.max(...delays)).toBeGreaterThan(320_000);
  });
});

describe('stableRandom', () => {
  it('when called twice with the same parts, then it returns the same number in [0, 1)', () => {
    const a = stableRandom('d', '1');
    expect(a).toBe(stableRandom('d', '1'));
    expect(a).toBeGreaterThanOrEqual(0);
    expect(a).toBeLessThan(1);
    expect(stableRandom('d', '2')).not.toBe(a);
  });
});
