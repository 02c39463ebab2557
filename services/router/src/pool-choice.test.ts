import { describe, expect, it } from 'vitest';
import type { DeliveryResultPayload } from '@moat/contracts';
import { asDeferred, poolWeight, rankPools, refusesPool } from './pool-choice.js';

const pools = (names: string[], weight = 1) => names.map((name) => ({ name, weight }));
const destinations = Array.from({ length: 2000 }, (_, i) => `mx${i}.example:25/10`);

describe('rankPools (weighted rendezvous hashing)', () => {
  it('when asked twice, then a destination gets the same pool (sticky), and the order of candidates does not matter', () => {
    for (const d of destinations.slice(0, 50)) {
      expect(rankPools(d, pools(['a', 'b', 'c']))[0]).toBe(rankPools(d, pools(['c', 'a', 'b']))[0]);
    }
  });

  it('when a pool is added, then only destinations it now wins move (to it); the others keep their pool', () => {
    let moved = 0;
    for (const d of destinations) {
      const before = rankPools(d, pools(['a', 'b']))[0];
      const after = rankPools(d, pools(['a', 'b', 'c']))[0];
      if (before !== after) {
        moved++;
        expect(after).toBe('c');
      }
    }
    // About a third move to the new pool.
    expect(moved / destinations.length).toBeGreaterThan(0.25);
    expect(moved / destinations.length).toBeLessThan(0.42);
  });

  it('when a pool weighs a quarter of another, then it wins about a fifth of the destinations; weight 0 wins none', () => {
    const wins = destinations.filter((d) => rankPools(d, [{ name: 'full', weight: 1 }, { name: 'warming', weight: 0.25 }])[0] === 'warming').length;
    expect(wins / destinations.length).toBeGreaterThan(0.15);
    expect(wins / destinations.length).toBeLessThan(0.25);
    expect(rankPools('x:25/10', [{ name: 'a', weight: 1 }, { name: 'off', weight: 0 }])).toEqual(['a']);
  });
});

describe('poolWeight', () => {
  const now = new Date('2026-11-28T00:00:00Z');
  it('when warming, then the share grows with age from 5 % to 100 %; active is 1; draining and disabled take no new mail', () => {
    expect(poolWeight({ state: 'warming', createdAt: now.toISOString() }, now, 30)).toBe(0.05);
    expect(poolWeight({ state: 'warming', createdAt: new Date(now.getTime() - 15 * 86_400_000).toISOString() }, now, 30)).toBeCloseTo(0.5);
    expect(poolWeight({ state: 'warming', createdAt: new Date(now.getTime() - 60 * 86_400_000).toISOString() }, now, 30)).toBe(1);
    expect(poolWeight({ state: 'active', createdAt: now.toISOString() }, now, 30)).toBe(1);
    expect(poolWeight({ state: 'draining', createdAt: now.toISOString() }, now, 30)).toBe(0);
    expect(poolWeight({ state: 'disabled', createdAt: now.toISOString() }, now, 30)).toBe(0);
  });
});

describe('refusesPool', () => {
  const result = (error: string | null, replies: Array<[number, string | null, string]>): Pick<DeliveryResultPayload, 'error' | 'recipients'> => ({
    error,
    recipients: replies.map(([code, enhanced, text], i) => ({ rcpt: `r${i}@x.example`, outcome: code >= 500 ? 'failed' : 'deferred', reply: { code, enhanced, text } })),
  });
  it('when the connection is refused or reset, or a reply says the client address is blocked, then the pool is refused', () => {
    expect(refusesPool(result('connect ECONNREFUSED 192.0.2.1:25', []))).toBe(true);
    expect(refusesPool(result('read ECONNRESET', []))).toBe(true);
    expect(refusesPool(result(null, [[550, '5.7.1', 'Client host rejected: Access denied']]))).toBe(true);
    expect(refusesPool(result(null, [[554, '5.7.1', 'Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org']]))).toBe(true);
  });
  it('when a reply is about the recipient or the message, or the server is merely busy, then it is not', () => {
    expect(refusesPool(result(null, [[550, '5.1.1', 'User unknown in virtual mailbox table']]))).toBe(false);
    expect(refusesPool(result(null, [[552, '5.3.4', 'Message size exceeds fixed limit']]))).toBe(false);
    expect(refusesPool(result(null, [[421, '4.3.2', 'maintenance, try again later']]))).toBe(false);
    expect(refusesPool(result('greeting never received', []))).toBe(false);
  });
  it('when refused, then failed recipients are deferred and delivered ones stay delivered', () => {
    const r = { ...result(null, [[550, '5.7.1', 'Client host rejected']]), recipients: [{ rcpt: 'a@x', outcome: 'failed' as const, reply: { code: 550, enhanced: '5.7.1', text: 'Client host rejected' } }, { rcpt: 'b@x', outcome: 'delivered' as const, reply: { code: 250, enhanced: null, text: 'ok' } }] };
    expect(asDeferred(r as DeliveryResultPayload).recipients.map((x) => x.outcome)).toEqual(['deferred', 'delivered']);
  });
});

describe('refusesPool, connection-level accounts', () => {
  it("when the sender's own account (no reply code) tells of a 554 banner for the address or a refused connection, then the pool is refused", () => {
    const r = (text: string) => ({ error: null, recipients: [{ rcpt: 'a@x', outcome: 'deferred' as const, reply: { code: null, enhanced: null, text } }] });
    expect(refusesPool(r('no route accepted a connection: 127.0.0.1:25: Invalid greeting. response=554 Access denied: your address is not allowed'))).toBe(true);
    expect(refusesPool(r('no route accepted a connection: 127.0.0.1:25: connect ECONNREFUSED 127.0.0.1:25'))).toBe(true);
    expect(refusesPool(r('no route accepted a connection: 127.0.0.1:25: Greeting never received'))).toBe(false);
  });
});
