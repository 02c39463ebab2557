import { describe, expect, it } from 'vitest';
import type { ScannerOutcome } from '../spam-scanners.js';
import { defaultSpamThresholds } from './classify.js';
import { combineSpamScores } from './combine-scanners.js';
import type { SpamCheckOutcome } from './spam-check.js';

const outcome = (score: number): SpamCheckOutcome => ({
  check: { check: 'spam', result: 'pass', reason: `ham: score ${score}` },
  verdict: 'deliver',
  score,
  reasons: [],
  headers: { score: score.toFixed(2), status: `ham score=${score.toFixed(2)}` },
  outcome: { status: 'ham', score, probability: 0.01, logit: -1.5, rules: [], clues: [] },
});
const rspamd = (score: number, action: string, weight = 0.35): ScannerOutcome => ({
  scanner: 'rspamd',
  check: { check: 'rspamd', result: action === 'reject' ? 'fail' : 'pass', reason: action },
  verdict: { score, weight, action, forcesQuarantine: action === 'reject' },
  unavailable: false,
});
const down: ScannerOutcome = { scanner: 'rspamd', check: { check: 'rspamd', result: 'error', reason: 'rspamd: timeout' }, verdict: null, unavailable: true };

describe('combineSpamScores', () => {
  it('when no engine is configured, then the built-in outcome is unchanged', () => {
    const own = outcome(1.2);
    expect(combineSpamScores(own, [], defaultSpamThresholds)).toBe(own);
  });

  it('when rspamd has a score, then its weighted score is added and both parts show in the header', () => {
    const out = combineSpamScores(outcome(1), [rspamd(4, 'no action')], defaultSpamThresholds);
    expect(out.score).toBe(2.4);
    expect(out.verdict).toBe('deliver');
    expect(out.headers.score).toBe('2.40');
    expect(out.headers.status).toBe('ham score=2.40 quarantine=5.3 unsure=4 builtin=1.00 bayes=0.010 logit=-1.50 clues=0 rspamd=4.00x0.35(no_action)');
    expect(out.reasons).toEqual([]);
  });

  it('when the sum reaches the quarantine score, then the message is quarantined with a spam reason naming both', () => {
    const out = combineSpamScores(outcome(3.5), [rspamd(6, 'add header')], defaultSpamThresholds);
    expect(out.score).toBe(5.6);
    expect(out.verdict).toBe('quarantine');
    expect(out.reasons[0]).toBe('spam: score 5.6 (builtin=3.50 bayes=0.010 logit=-1.50 clues=0 rspamd=6.00x0.35(add_header))');
  });

  it('when the sum falls in the unsure band, then the message is delivered and tagged unsure', () => {
    const out = combineSpamScores(outcome(3), [rspamd(4, 'greylist')], defaultSpamThresholds);
    expect(out.headers.status).toMatch(/^unsure score=4\.40 /);
    expect(out.reasons[0]).toMatch(/^spam unsure: score 4.4 /);
  });

  it('when rspamd says reject, then the total is at least the quarantine score, whatever the weight', () => {
    const out = combineSpamScores(outcome(0), [rspamd(9, 'reject', 0.01)], defaultSpamThresholds);
    expect(out.score).toBe(defaultSpamThresholds.quarantine);
    expect(out.verdict).toBe('quarantine');
  });

  it('when rspamd scores the message below zero, then the total goes down', () => {
    expect(combineSpamScores(outcome(4.5), [rspamd(-5, 'no action')], defaultSpamThresholds).score).toBe(2.75);
  });

  it('when rspamd gave no verdict (policy deliver), then the built-in score stands and the header and reasons say rspamd was unavailable', () => {
    const out = combineSpamScores(outcome(1), [down], defaultSpamThresholds);
    expect(out.score).toBe(1);
    expect(out.headers.status).toContain(' rspamd=unavailable');
    expect(out.reasons).toEqual(['rspamd unavailable: scored without it (policy: deliver)']);
  });

  it('when the built-in classifier failed, then the engines still score the message and the failure stays in the reasons', () => {
    const failed: SpamCheckOutcome = { ...outcome(0), check: { check: 'spam', result: 'error', reason: 'spam classifier failed: boom' }, reasons: ['spam classifier failed: boom'], outcome: null };
    const out = combineSpamScores(failed, [rspamd(20, 'reject')], defaultSpamThresholds);
    expect(out.verdict).toBe('quarantine');
    expect(out.headers.status).toContain('builtin=error rspamd=20.00x0.35(reject)');
    expect(out.reasons).toContain('spam classifier failed: boom');
  });
});
