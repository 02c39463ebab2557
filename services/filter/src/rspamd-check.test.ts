import { describe, expect, it } from 'vitest';
import { RspamdUnavailable, type RspamdResult } from './rspamd.js';
import { rspamdOutcome, rspamdScanner } from './rspamd-check.js';
import type { ScanEnvelope } from './spam-scanners.js';

const envelope: ScanEnvelope = { ip: '203.0.113.5', helo: 'mx.sender.example', mailFrom: 'a@sender.example', rcptTo: ['b@customer.example'], queueId: 'm-1', hostname: null, received: '' };
const raw = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
const result = (action: string, score: number, symbols: RspamdResult['symbols'] = []): RspamdResult => ({ score, requiredScore: 15, action, symbols });

describe('rspamdOutcome', () => {
  it('when rspamd says reject, then the check fails, names the action and the symbols, and forces quarantine', () => {
    const out = rspamdOutcome(result('reject', 15, [{ name: 'GTUBE', score: 0 }]), 0.35);
    expect(out.check).toEqual({ check: 'rspamd', result: 'fail', reason: 'reject: score 15 (rspamd rejects at 15); GTUBE(0)' });
    expect(out.verdict).toEqual({ score: 15, weight: 0.35, action: 'reject', forcesQuarantine: true });
    expect(out.unavailable).toBe(false);
  });

  it('when rspamd says no action, then the check passes and nothing is forced', () => {
    const out = rspamdOutcome(result('no action', -0.1, [{ name: 'MIME_GOOD', score: -0.1 }]), 0.35);
    expect(out.check.result).toBe('pass');
    expect(out.verdict!.forcesQuarantine).toBe(false);
  });

  it('when rspamd has doubts (add header, greylist, soft reject, a custom action), then the check is neutral', () => {
    for (const action of ['add header', 'rewrite subject', 'greylist', 'soft reject', 'quarantine-me']) expect(rspamdOutcome(result(action, 6), 1).check.result).toBe('neutral');
  });

  it('when many symbols fired, then the reason names the five that weigh most either way and counts the rest', () => {
    const symbols = [1, -4, 0.5, 3, 0, 2, -0.2].map((score, i) => ({ name: `S${i}`, score }));
    expect(rspamdOutcome(result('add header', 6.3, symbols), 1).check.reason).toBe('add header: score 6.3 (rspamd rejects at 15); S1(-4) S3(3) S5(2) S0(1) S2(0.5) +2 more');
  });
});

describe('rspamdScanner', () => {
  it('when rspamd is unreachable at first, then it is asked again within the window and its verdict is used', async () => {
    let calls = 0;
    const scanner = rspamdScanner(async () => {
      calls += 1;
      if (calls < 3) throw new RspamdUnavailable('rspamd at 127.0.0.1:1: connect ECONNREFUSED');
      return result('no action', 0.4);
    }, { weight: 0.35, retry: { forMs: 1_000, everyMs: 10 } });
    const out = await scanner.scan(raw, envelope);
    expect(calls).toBe(3);
    expect(out.check.result).toBe('pass');
  });

  it('when rspamd stays unreachable, then the check is an error marked unavailable, never a pass', async () => {
    const scanner = rspamdScanner(async () => Promise.reject(new RspamdUnavailable('rspamd at 127.0.0.1:1: no verdict within 100 ms')), { weight: 0.35, retry: { forMs: 50, everyMs: 10 } });
    expect(await scanner.scan(raw, envelope)).toEqual({ scanner: 'rspamd', check: { check: 'rspamd', result: 'error', reason: 'rspamd at 127.0.0.1:1: no verdict within 100 ms' }, verdict: null, unavailable: true });
  });

  it('when the client fails in an unexpected way, then it is not retried and is still an error, never a pass', async () => {
    let calls = 0;
    const scanner = rspamdScanner(async () => {
      calls += 1;
      throw new TypeError('bad header');
    }, { weight: 0.35, retry: { forMs: 1_000, everyMs: 10 } });
    const out = await scanner.scan(raw, envelope);
    expect(calls).toBe(1);
    expect(out.check).toEqual({ check: 'rspamd', result: 'error', reason: 'rspamd check failed: bad header' });
    expect(out.unavailable).toBe(true);
  });
});
