import type { Redis } from './redis.js';

/**
 * Which senders are alive in each pool (DESIGN.md: pool membership in Redis). A sender
 * heartbeats its membership as a member of the pool's sorted set scored with the time it
 * expires; the router counts members that have not expired. A sender that dies simply stops
 * renewing and drops out after its TTL; losing Redis makes every pool look empty for a moment,
 * which the router treats as "use the configured default pool" (mail waits, nothing is lost).
 * The keys sit under the client's prefix (MOAT_REDIS_PREFIX).
 */
export class PoolMembership {
  constructor(private readonly redis: Redis) {}

  private key(pool: string): string {
    return `pool:${pool}:senders`;
  }

  /** Renews this sender's membership for `ttlMs` and drops members that expired. */
  async heartbeat(pool: string, senderId: string, ttlMs: number, now = Date.now()): Promise<void> {
    await this.redis.multi().zadd(this.key(pool), now + ttlMs, senderId).zremrangebyscore(this.key(pool), '-inf', now).pexpire(this.key(pool), ttlMs * 4).exec();
  }

  /** Leaves the pool at once (a sender stopping cleanly). */
  async leave(pool: string, senderId: string): Promise<void> {
    await this.redis.zrem(this.key(pool), senderId);
  }

  /** Live senders per pool. */
  async live(pools: readonly string[], now = Date.now()): Promise<Map<string, number>> {
    if (pools.length === 0) return new Map();
    const pipeline = this.redis.pipeline();
    for (const p of pools) pipeline.zcount(this.key(p), now, '+inf');
    const answers = (await pipeline.exec()) ?? [];
    return new Map(pools.map((p, i) => [p, Number(answers[i]?.[1] ?? 0)]));
  }
}
