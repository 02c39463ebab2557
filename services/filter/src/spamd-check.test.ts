import { describe, expect, it } from 'vitest';
import { spamdMessage, spamdOutcome, spamdScanner } from './spamd-check.js';
import { SpamdUnavailable } from './spamd.js';
import type { ScanEnvelope } from './spam-scanners.js';

const received = 'Received: from mx.sender.example (mx.sender.example [203.0.113.5])\r\n\tby mx.moat.test with ESMTP id m-1; Mon, 1 Jan 2024 00:00:00 +0000\r\n';
const envelope: ScanEnvelope = { ip: '203.0.113.5', helo: 'mx.sender.example', mailFrom: 'a@sender.example', rcptTo: ['b@customer.example'], queueId: 'm-1', hostname: 'mx.sender.example', received };
const raw = Buffer.from('Subject: hi\r\n\r\nhello\r\n');

describe('spamdOutcome', () => {
  it('when spamd calls it spam, then the check fails with the score, its threshold and the rules, and forces nothing', () => {
    const out = spamdOutcome({ isSpam: true, score: 1003.3, threshold: 5, symbols: ['GTUBE', 'MISSING_DATE'] }, 1);
    expect(out.check).toEqual({ check: 'spamd', result: 'fail', reason: "spam: score 1003.3 (spamd's threshold 5); GTUBE MISSING_DATE" });
    expect(out.verdict).toEqual({ score: 1003.3, weight: 1, action: 'spam', forcesQuarantine: false });
  });

  it('when spamd calls it ham, then the check passes; many rules are counted, not all listed', () => {
    const out = spamdOutcome({ isSpam: false, score: 1.2, threshold: 5, symbols: Array.from({ length: 10 }, (_, i) => `R${i}`) }, 1);
    expect(out.check.result).toBe('pass');
    expect(out.check.reason).toBe("ham: score 1.2 (spamd's threshold 5); R0 R1 R2 R3 R4 R5 R6 R7 +2 more");
  });
});

describe('spamdScanner', () => {
  it('when asked, then spamd gets Moat\'s Received line (client, HELO) on top of the message', async () => {
    const seen: Buffer[] = [];
    await spamdScanner(async (message) => {
      seen.push(message);
      return { isSpam: false, score: 0, threshold: 5, symbols: [] };
    }, { weight: 1, retry: { forMs: 0, everyMs: 10 } }).scan(raw, envelope);
    expect(seen[0]!.toString()).toBe(`${received}Subject: hi\r\n\r\nhello\r\n`);
    expect(spamdMessage(raw, { received: '' }).equals(raw)).toBe(true);
  });

  it('when spamd stays unreachable, then the check is an error marked unavailable, never a pass', async () => {
    const out = await spamdScanner(async () => Promise.reject(new SpamdUnavailable('spamd at 127.0.0.1:1: connect ECONNREFUSED')), { weight: 1, retry: { forMs: 30, everyMs: 10 } }).scan(raw, envelope);
    expect(out).toEqual({ scanner: 'spamd', check: { check: 'spamd', result: 'error', reason: 'spamd at 127.0.0.1:1: connect ECONNREFUSED' }, verdict: null, unavailable: true });
  });
});
