import { randomBytes } from 'node:crypto';
import { createRedis, type Redis } from '@moat/runtime';
import { silentLog } from '@moat/testkit';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { RetrySchedule } from './retry-schedule.js';

const url = process.env.MOAT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const clients: Redis[] = [];

function freshSchedule(): { schedule: RetrySchedule; redis: Redis; prefix: string } {
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const redis = createRedis({ url, prefix, log: silentLog });
  clients.push(redis);
  return { schedule: new RetrySchedule(redis), redis, prefix };
}

afterAll(async () => {
  for (const r of clients) {
    const keys = await r.keys(`${r.options.keyPrefix}*`);
    if (keys.length > 0) await r.call('DEL', ...keys);
    r.disconnect();
  }
});

const t0 = 1_800_000_000_000;
const opts = { batch: 100, leaseMs: 30_000, drainPerSecond: 1_000, probeLeaseMs: 60_000 };

describe('RetrySchedule', () => {
  let s: RetrySchedule;
  beforeEach(() => {
    s = freshSchedule().schedule;
  });

  it('claims only what is due, and a claim comes back after its lease unless released', async () => {
    await s.add([
      { id: 'a', destination: 'mx1:25', dueAt: t0 - 10 },
      { id: 'b', destination: 'mx1:25', dueAt: t0 + 5_000 },
      { id: 'c', destination: 'mx2:25', dueAt: t0 },
    ]);
    const first = await s.claim({ ...opts, now: t0 });
    expect(first.entries.map((e) => e.id).sort()).toEqual(['a', 'c']);
    expect(first.ready).toBe(false);
    // Nothing more due now: a and c are leased.
    expect((await s.claim({ ...opts, now: t0 + 1 })).entries).toEqual([]);
    await s.release([{ id: 'a', destination: 'mx1:25' }]);
    // b is due at +5 s; c (not released) comes back after the lease; a never again.
    expect((await s.claim({ ...opts, now: t0 + 5_000 })).entries.map((e) => e.id)).toEqual(['b']);
    expect((await s.claim({ ...opts, now: t0 + 30_001 })).entries.map((e) => e.id)).toEqual(['c']);
    expect(await s.scheduled([{ id: 'a', destination: 'mx1:25' }, { id: 'c', destination: 'mx2:25' }])).toEqual([false, true]);
  });

  it('reports ready only after markReady (a flushed Redis is not ready)', async () => {
    const { schedule, redis } = freshSchedule();
    expect(await schedule.isReady()).toBe(false);
    await schedule.markReady();
    expect(await schedule.isReady()).toBe(true);
    expect((await schedule.claim({ ...opts, now: t0 })).ready).toBe(true);
    await redis.del('{retry}:ready');
    expect(await schedule.isReady()).toBe(false);
  });

  it('backs a down destination off for all its deliveries, then lets one probe through at a time', async () => {
    const dest = 'down.example:25';
    await s.add(Array.from({ length: 50 }, (_, i) => ({ id: `d${i}`, destination: dest, dueAt: t0 })));
    await s.add([{ id: 'other', destination: 'up.example:25', dueAt: t0 }]);
    const health = await s.destinationDown(dest, 'x', 'connection refused', t0, (f) => 60_000 * 2 ** (f - 1));
    expect(health).toMatchObject({ failures: 1, backoffUntil: t0 + 60_000 });
    // During the back-off only the other destination's delivery is claimed.
    expect((await s.claim({ ...opts, now: t0 + 1 })).entries.map((e) => e.id)).toEqual(['other']);
    await s.release([{ id: 'other', destination: 'up.example:25' }]);
    expect((await s.claim({ ...opts, now: t0 + 59_000 })).entries).toEqual([]);
    // Back-off over: exactly one probe, and no second one while it runs.
    const probe = await s.claim({ ...opts, now: t0 + 60_000 });
    expect(probe.entries).toHaveLength(1);
    expect((await s.claim({ ...opts, now: t0 + 61_000 })).entries).toEqual([]);
    // Another attempt that was under way fails too: that does not lengthen the back-off.
    expect((await s.destinationDown(dest, 'd7', 'timeout', t0 + 61_000, () => 999_999)).failures).toBe(1);
    // The probe fails: back-off doubles.
    const again = await s.destinationDown(dest, probe.entries[0]!.id, 'connection refused', t0 + 62_000, (f) => 60_000 * 2 ** (f - 1));
    expect(again).toMatchObject({ failures: 2, backoffUntil: t0 + 62_000 + 120_000 });
    expect((await s.claim({ ...opts, now: t0 + 100_000 })).entries).toEqual([]);
    expect((await s.health([dest]))[0]).toMatchObject({ failures: 2, lastError: 'connection refused' });
  });

  it('drains a recovered destination at the paced rate', async () => {
    const dest = 'back.example:25';
    await s.add(Array.from({ length: 100 }, (_, i) => ({ id: `r${i}`, destination: dest, dueAt: t0 })));
    await s.destinationDown(dest, 'x', 'refused', t0, () => 10_000);
    const probe = await s.claim({ ...opts, drainPerSecond: 20, now: t0 + 10_000 });
    expect(probe.entries).toHaveLength(1);
    // One delivery tried before the destination was known down waits for its own retry (+1 h)…
    await s.add([{ id: 'straggler', destination: dest, dueAt: t0 + 3_600_000 }]);
    expect(await s.destinationUp(dest, t0 + 10_500)).toBe(true);
    expect((await s.health([dest]))[0]!.failures).toBe(0);
    // From an empty bucket at 20/s: ~10 in the next half second, ~20 per second after.
    const half = await s.claim({ ...opts, drainPerSecond: 20, now: t0 + 11_000 });
    expect(half.entries.length).toBe(10);
    const second = await s.claim({ ...opts, drainPerSecond: 20, now: t0 + 12_000 });
    expect(second.entries.length).toBe(20);
    // Never more than the bucket (one second's worth) however long the pause.
    const later = await s.claim({ ...opts, drainPerSecond: 20, now: t0 + 20_000 });
    expect(later.entries.length).toBe(20);
    // …and drains with the rest once the server is back, not an hour later.
    const rest = [];
    for (let i = 0; i < 10; i++) rest.push(...(await s.claim({ ...opts, drainPerSecond: 20, now: t0 + 21_000 + i * 1_000 })).entries.map((e) => e.id));
    expect(rest).toContain('straggler');
  });

  it('keeps retry state and forgets it on remove', async () => {
    await s.add([{ id: 'k', destination: 'mx:25', dueAt: t0, state: { attempts: 2, firstAttemptAt: 'a', nextAttemptAt: 'b', lastReplies: { 'x@y': '451 4.3.0 later' } } }]);
    expect(await s.state('k')).toMatchObject({ destination: 'mx:25', attempts: 2, lastReplies: { 'x@y': '451 4.3.0 later' } });
    expect(await s.size()).toEqual({ destinations: 1, entries: 1 });
    await s.remove([{ id: 'k', destination: 'mx:25' }]);
    expect(await s.state('k')).toBeNull();
    expect((await s.claim({ ...opts, now: t0 + 1 })).entries).toEqual([]);
    expect(await s.size()).toEqual({ destinations: 0, entries: 0 });
  });

  it('gives the rebuild lock to one owner at a time', async () => {
    expect(await s.lockRebuild('a', 10_000)).toBe(true);
    expect(await s.lockRebuild('b', 10_000)).toBe(false);
    await s.unlockRebuild('b');
    expect(await s.lockRebuild('b', 10_000)).toBe(false);
    await s.unlockRebuild('a');
    expect(await s.lockRebuild('b', 10_000)).toBe(true);
  });
});
