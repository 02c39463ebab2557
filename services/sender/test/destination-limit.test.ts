import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, DestinationSlots, type Redis } from '@moat/runtime';
import { servicesUrls, silentLog } from '@moat/testkit';
import { ConnectionPool, DestinationBusy, type PoolableConnection } from '../src/connection-pool.js';
import { SharedConnectionLimit } from '../src/shared-limit.js';

// The per-destination limit shared by several senders, against the real Redis: several
// ConnectionPool instances (as in several sender processes) and one destination.

class CountedConnection implements PoolableConnection {
  usable = true;
  onEnd: (() => void) | null = null;
  constructor(private readonly server: { open: number; peak: number; closed: number }) {
    server.open++;
    server.peak = Math.max(server.peak, server.open);
  }
  async reset(): Promise<boolean> {
    return true;
  }
  async quit(): Promise<void> {
    this.close();
  }
  close(): void {
    if (!this.usable) return;
    this.usable = false;
    this.server.open--;
    this.server.closed++;
  }
}

const prefix = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}:`;
let redis: Redis;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = createRedis({ url: servicesUrls.redis, prefix, log: silentLog });
  await redis.connect();
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys.map((k) => k.slice(prefix.length)));
  redis.disconnect();
});

function sender(name: string, opts: { limit: number; leaseMs?: number; waitMs?: number; idleMs?: number }) {
  const limit = new SharedConnectionLimit({ store: new DestinationSlots(redis), senderId: name, limit: opts.limit, leaseMs: opts.leaseMs ?? 3_000, callTimeoutMs: 1_000, log: silentLog });
  limit.start();
  const pool = new ConnectionPool<CountedConnection>({ maxPerDestination: opts.limit, idleMs: opts.idleMs ?? 50, resetTimeoutMs: 100, shared: limit, waitMs: opts.waitMs ?? 20_000 });
  return { limit, pool };
}

describe('connection limit shared by several senders (real Redis)', () => {
  it('when four senders deliver many transactions to one destination, then the destination never has more than the limit of connections and every transaction is sent', async () => {
    const server = { open: 0, peak: 0, closed: 0 };
    const destination = `127.0.0.1:${20_000 + Math.floor(Math.random() * 10_000)}`;
    const senders = ['a', 'b', 'c', 'd'].map((n) => sender(`${n}-${randomBytes(2).toString('hex')}`, { limit: 3 }));
    let sent = 0;
    const perSender = new Map<number, number>();
    // 4 senders × 40 transactions of 2–8 ms, 10 at a time each (as prefetched requests).
    await Promise.all(
      senders.map(async ({ pool }, s) => {
        let next = 0;
        const worker = async () => {
          while (next < 40) {
            next++;
            const lease = await pool.acquire(destination, async () => new CountedConnection(server));
            await sleep(2 + Math.random() * 6);
            sent++;
            perSender.set(s, (perSender.get(s) ?? 0) + 1);
            lease.release(true);
          }
        };
        await Promise.all(Array.from({ length: 10 }, worker));
      }),
    );
    expect(sent).toBe(160);
    expect(server.peak).toBeLessThanOrEqual(3);
    expect(server.peak).toBeGreaterThanOrEqual(2);
    // Every sender got its turn (fair shares), none was starved into a failure.
    expect([...perSender.values()]).toEqual([40, 40, 40, 40]);
    for (const { pool, limit } of senders) {
      await pool.close();
      await limit.stop();
    }
    expect(server.open).toBe(0);
    expect(await new DestinationSlots(redis).holders(destination)).toEqual([]);
  });

  it('when a sender dies holding slots, then its slots come back after the lease and another sender gets them', async () => {
    const server = { open: 0, peak: 0, closed: 0 };
    const destination = `127.0.0.2:${20_000 + Math.floor(Math.random() * 10_000)}`;
    const dead = sender(`dead-${randomBytes(2).toString('hex')}`, { limit: 2, leaseMs: 1_000 });
    await dead.pool.acquire(destination, async () => new CountedConnection(server));
    await dead.pool.acquire(destination, async () => new CountedConnection(server));
    expect(await new DestinationSlots(redis).holders(destination)).toHaveLength(2);
    // Killed: it stops renewing and never releases (its connections die with it).
    await dead.limit.stop();
    server.open = 0;

    const alive = sender(`alive-${randomBytes(2).toString('hex')}`, { limit: 2, waitMs: 5_000 });
    const t0 = Date.now();
    const lease = await alive.pool.acquire(destination, async () => new CountedConnection(server));
    const waited = Date.now() - t0;
    // It had to wait for the dead sender's leases to expire (1 s after their last renewal).
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(3_000);
    lease.release(false);
    await alive.pool.close();
    await alive.limit.stop();
  });

  it('when every slot stays taken for longer than the wait bound, then acquire fails with DestinationBusy (the delivery is deferred), and nothing is opened', async () => {
    const server = { open: 0, peak: 0, closed: 0 };
    const destination = `127.0.0.3:${20_000 + Math.floor(Math.random() * 10_000)}`;
    const holder = sender(`holder-${randomBytes(2).toString('hex')}`, { limit: 1 });
    const held = await holder.pool.acquire(destination, async () => new CountedConnection(server));
    const waiter = sender(`waiter-${randomBytes(2).toString('hex')}`, { limit: 1, waitMs: 400 });
    await expect(waiter.pool.acquire(destination, async () => new CountedConnection(server))).rejects.toBeInstanceOf(DestinationBusy);
    expect(server.peak).toBe(1);
    held.release(false);
    // The slot is free again: the waiter gets it now.
    const next = await waiter.pool.acquire(destination, async () => new CountedConnection(server));
    next.release(false);
    for (const s of [holder, waiter]) {
      await s.pool.close();
      await s.limit.stop();
    }
  });

  it('when Redis is unreachable, then each sender falls back to its own limit and keeps delivering', async () => {
    const server = { open: 0, peak: 0, closed: 0 };
    const broken = createRedis({ url: 'redis://127.0.0.1:1', prefix, log: silentLog });
    broken.connect().catch(() => {});
    const limit = new SharedConnectionLimit({ store: new DestinationSlots(broken), senderId: 'offline', limit: 2, leaseMs: 3_000, callTimeoutMs: 300, log: silentLog });
    const pool = new ConnectionPool<CountedConnection>({ maxPerDestination: 2, idleMs: 0, resetTimeoutMs: 100, shared: limit, waitMs: 5_000 });
    let sent = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        const lease = await pool.acquire('127.0.0.4:25', async () => new CountedConnection(server));
        await sleep(5);
        sent++;
        lease.release(true);
      }),
    );
    expect(sent).toBe(6);
    expect(server.peak).toBe(2);
    await pool.close();
    await limit.stop();
    broken.disconnect();
  });
});
