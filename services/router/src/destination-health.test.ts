import { describe, expect, it } from 'vitest';
import { destinationBackoffMs, destinationVerdict } from './destination-health.js';

const rcpt = (code: number | null, outcome: 'delivered' | 'deferred' | 'failed', text = '') => ({ rcpt: 'a@b', outcome, reply: { code, enhanced: null, text } });

describe('destinationVerdict', () => {
  it('is up when the server answered the transaction, whatever the recipients got', () => {
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [rcpt(250, 'delivered')] })).toBe('up');
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [rcpt(451, 'deferred'), rcpt(550, 'failed')] })).toBe('up');
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [rcpt(452, 'deferred')] })).toBe('up');
  });
  it('is down when no route took a connection, the session broke before a reply, or the server said 421', () => {
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [rcpt(null, 'deferred', 'connect ECONNREFUSED')] })).toBe('down');
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [rcpt(421, 'deferred'), rcpt(421, 'deferred')] })).toBe('down');
  });
  it('is unknown when the attempt never tried the destination', () => {
    expect(destinationVerdict({ remoteHost: null, recipients: [rcpt(null, 'deferred', 'message body unavailable')] })).toBe('unknown');
    expect(destinationVerdict({ remoteHost: 'mx:25', recipients: [] })).toBe('unknown');
  });
});

describe('destinationBackoffMs', () => {
  it('doubles from the base up to the ceiling', () => {
    const p = { baseMs: 60_000, maxMs: 3_600_000 };
    expect([1, 2, 3, 7, 8, 20].map((f) => destinationBackoffMs(f, p))).toEqual([60_000, 120_000, 240_000, 3_600_000, 3_600_000, 3_600_000]);
  });
});
