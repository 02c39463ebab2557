import { describe, expect, it } from 'vitest';
import { ClamdUnavailable } from './clamd.js';
import { checkForViruses } from './virus-check.js';

const raw = Buffer.from('Subject: x\r\n\r\nbody\r\n');

describe('checkForViruses', () => {
  it('skips without a scanner, passes a clean message, fails an infected one with its signature', async () => {
    expect(await checkForViruses(raw, null)).toMatchObject({ check: { result: 'skip' }, unavailable: false });
    expect(await checkForViruses(raw, async () => ({ infected: false }))).toMatchObject({ check: { result: 'pass' }, signature: null });
    expect(await checkForViruses(raw, async () => ({ infected: true, signature: 'Win.Test.EICAR_HDB-1' }))).toMatchObject({
      check: { check: 'virus', result: 'fail', reason: 'virus found: Win.Test.EICAR_HDB-1' },
      signature: 'Win.Test.EICAR_HDB-1',
    });
  });
  it('never passes a message the scanner could not judge', async () => {
    const out = await checkForViruses(raw, async () => {
      throw new ClamdUnavailable('clamd at 127.0.0.1:3310: connect ECONNREFUSED');
    });
    expect(out).toEqual({ check: { check: 'virus', result: 'error', reason: 'clamd at 127.0.0.1:3310: connect ECONNREFUSED' }, signature: null, unavailable: true });
  });
  it('waits for a scanner that comes back within the retry window', async () => {
    let calls = 0;
    const flaky = async () => {
      calls += 1;
      if (calls < 3) throw new ClamdUnavailable('clamd restarting');
      return { infected: false as const };
    };
    expect(await checkForViruses(raw, flaky, { forMs: 1_000, everyMs: 10 })).toMatchObject({ check: { result: 'pass' } });
    expect(calls).toBe(3);
  });
});
