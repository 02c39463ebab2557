import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedis, type Redis } from '@moat/runtime';
import { RetrySchedule, type Delivery, type DeliveryStatus } from '@moat/store';
import { silentLog } from '@moat/testkit';
import { ScheduleKeeper } from './schedule-keeper.js';

// The keeper against a real Redis; the deliveries table is a small in-memory stand-in with the
// three reads the keeper makes (the e2e tests run it against Postgres).
const clients: Redis[] = [];
afterAll(async () => {
  for (const r of clients) {
    const keys = await r.keys(`${r.options.keyPrefix}*`);
    if (keys.length > 0) await r.call('DEL', ...keys);
    r.disconnect();
  }
});

function row(id: string, status: DeliveryStatus, destination = 'mx:25', nextAttemptAt: Date | null = null, attempt = 2): Delivery {
  const now = new Date();
  return { id, messageId: id, tenantId: 't', receivedAt: now, pool: 'p', destination, routes: [], mailFrom: 'a@b', rcpts: ['x@y'], prependHeaders: '', size: 1, attempt, status, leaseUntil: null, nextAttemptAt, lastError: null, outcome: null, createdAt: now, updatedAt: now, expiresAt: null };
}

function setup(rows: Delivery[]) {
  const redis = createRedis({ url: process.env.MOAT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `k${randomBytes(4).toString('hex')}:`, log: silentLog });
  clients.push(redis);
  const schedule = new RetrySchedule(redis);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const deliveries = {
    getMany: async (ids: readonly string[]) => ids.map((id) => byId.get(id) ?? null),
    deferNew: async (ids: readonly string[]) => ids.filter((id) => byId.get(id)?.status === 'queued'),
    deferredPage: async (after: { at: Date; id: string } | null, limit: number, dueBefore?: Date) =>
      rows
        .filter((r) => r.status === 'deferred' && r.nextAttemptAt && (!dueBefore || r.nextAttemptAt <= dueBefore))
        .map((r) => ({ id: r.id, destination: r.destination, nextAttemptAt: r.nextAttemptAt! }))
        .sort((a, b) => a.nextAttemptAt.getTime() - b.nextAttemptAt.getTime() || a.id.localeCompare(b.id))
        .filter((r) => !after || r.nextAttemptAt > after.at || (r.nextAttemptAt.getTime() === after.at.getTime() && r.id > after.id))
        .slice(0, limit),
  };
  const keeper = new ScheduleKeeper({ schedule, deliveries, backoff: { baseMs: 60_000, maxMs: 600_000 }, log: silentLog });
  return { schedule, keeper };
}

const claimAll = (s: RetrySchedule, now = Date.now()) => s.claim({ now, batch: 1000, leaseMs: 30_000, drainPerSecond: 10_000, probeLeaseMs: 60_000 });

describe('ScheduleKeeper', () => {
  it('rebuilds every deferred row, across pages, and marks the schedule ready', async () => {
    const past = new Date(Date.now() - 1_000);
    const rows = Array.from({ length: 25 }, (_, i) => row(`d${String(i).padStart(2, '0')}`, 'deferred', `mx${i % 3}:25`, past));
    rows.push(row('q1', 'queued'));
    const { schedule, keeper } = setup(rows);
    expect(await keeper.rebuild(10)).toBe(25);
    expect(await schedule.isReady()).toBe(true);
    expect((await claimAll(schedule)).entries).toHaveLength(25);
  });

  it('repairs only what the schedule is missing', async () => {
    const past = new Date(Date.now() - 1_000);
    const rows = [row('a', 'deferred', 'mx:25', past), row('b', 'deferred', 'mx:25', past)];
    const { schedule, keeper } = setup(rows);
    await schedule.add([{ id: 'a', destination: 'mx:25', dueAt: past.getTime() }]);
    expect(await keeper.repair(new Date())).toBe(1);
    expect(await keeper.repair(new Date())).toBe(0);
    expect(await schedule.scheduled([{ id: 'b', destination: 'mx:25' }])).toEqual([true]);
  });

  it('settles claims Postgres did not hand out: later rows rescheduled, moved-on rows dropped, rows being sent kept', async () => {
    const later = new Date(Date.now() + 60_000);
    const rows = [row('later', 'deferred', 'mx:25', later), row('queued', 'queued'), row('done', 'done'), row('sending', 'sending')];
    const { schedule, keeper } = setup(rows);
    const past = Date.now() - 1;
    await schedule.add(['later', 'queued', 'done', 'sending', 'gone'].map((id) => ({ id, destination: 'mx:25', dueAt: past })));
    const claimed = await claimAll(schedule);
    expect(claimed.entries).toHaveLength(5);
    await keeper.settleUntaken(claimed.entries);
    expect(await schedule.scheduled(['later', 'queued', 'done', 'sending', 'gone'].map((id) => ({ id, destination: 'mx:25' })))).toEqual([true, false, false, true, false]);
    // The rescheduled one is due at its row's time, not now.
    expect((await claimAll(schedule, Date.now() + 1_000)).entries).toEqual([]);
    // The row being sent comes back when its lease runs out (the result will have decided by then).
    expect((await claimAll(schedule, later.getTime() + 1)).entries.map((e) => e.id).sort()).toEqual(['later', 'sending']);
  });

  it('holds new mail to a destination that is down, and only to it', async () => {
    const rows = [row('n1', 'queued', 'down:25', null, 1), row('n2', 'queued', 'up:25', null, 1)];
    const { schedule, keeper } = setup(rows);
    await schedule.destinationDown('down:25', 'x', 'refused', Date.now(), () => 60_000);
    expect([...(await keeper.holdForDownDestinations(rows))]).toEqual(['n1']);
    expect(await schedule.scheduled([{ id: 'n1', destination: 'down:25' }])).toEqual([true]);
  });
});
