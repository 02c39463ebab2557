import { describe, expect, it } from 'vitest';
import { backoffDelay, decideRestart, describeExit, formatDuration, type RestartPolicy } from './backoff.js';

const policy: RestartPolicy = { minDelayMs: 1_000, maxDelayMs: 30_000, stableAfterMs: 10_000, maxFastCrashes: 4 };
const crash = (uptimeMs: number, code: number | null = 1, signal: string | null = null) => ({ code, signal, uptimeMs });

describe('decideRestart', () => {
  it('when a process crashes right after starting, then it restarts after the minimum delay', () => {
    expect(decideRestart(crash(200), 0, policy)).toEqual({ action: 'restart', delayMs: 1_000, fastCrashes: 1 });
  });

  it('when it keeps crashing fast, then the delay doubles each time', () => {
    expect(decideRestart(crash(200), 1, policy)).toEqual({ action: 'restart', delayMs: 2_000, fastCrashes: 2 });
    expect(decideRestart(crash(200), 2, policy)).toEqual({ action: 'restart', delayMs: 4_000, fastCrashes: 3 });
  });

  it('when the fast crashes reach the limit, then it gives up and says why', () => {
    const decision = decideRestart(crash(200), 3, policy);
    expect(decision.action).toBe('give-up');
    expect(decision.action === 'give-up' && decision.reason).toBe('crashed 4 times in a row, each within 10s of starting');
  });

  it('when a process ran stably before crashing, then the series starts over', () => {
    expect(decideRestart(crash(10_000), 3, policy)).toEqual({ action: 'restart', delayMs: 1_000, fastCrashes: 0 });
  });

  it('when a process was killed by a signal, then it is a crash like any other', () => {
    expect(decideRestart(crash(100, null, 'SIGKILL'), 0, policy)).toMatchObject({ action: 'restart', fastCrashes: 1 });
  });

  it('when a process exits 0 while the stack runs, then it is restarted too', () => {
    expect(decideRestart(crash(100, 0), 0, policy)).toMatchObject({ action: 'restart' });
  });

  it('when a process exits 78 (configuration error), then it gives up at once', () => {
    const decision = decideRestart(crash(100, 78), 0, policy);
    expect(decision.action).toBe('give-up');
    expect(decision.action === 'give-up' && decision.reason).toMatch(/configuration error/);
  });
});

describe('backoffDelay', () => {
  it('when attempts grow, then the delay is capped', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, policy))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });

  it('when the attempt number is huge, then the delay is still the cap', () => {
    expect(backoffDelay(5_000, policy)).toBe(30_000);
  });
});

describe('formatDuration and describeExit', () => {
  it('when durations are formatted, then they read naturally', () => {
    expect([850, 1_000, 1_500, 25_000, 60_000, 125_000].map(formatDuration)).toEqual(['850ms', '1s', '1.5s', '25s', '1m', '2m5s']);
  });

  it('when an exit is described, then the signal wins over the code', () => {
    expect(describeExit({ code: 1, signal: null })).toBe('exit code 1');
    expect(describeExit({ code: null, signal: 'SIGKILL' })).toBe('signal SIGKILL');
  });
});
