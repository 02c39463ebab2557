import { createHash } from 'node:crypto';
import type { Logger, PoolMembership, Redis } from '@moat/runtime';
import { TtlCache, type SendingPool } from '@moat/store';
import { poolWeight, rankPools } from './pool-choice.js';

export interface PoolChooserOptions {
  /** The pools (Postgres), cached by the caller or not. */
  pools: () => Promise<SendingPool[]>;
  membership: PoolMembership;
  redis: Redis;
  /** Used when no pool is configured at all (a single-pool installation). */
  defaultPool: string;
  warmupDays: number;
  /** How long a (pool, destination) pair is avoided after the destination refused the pool. */
  refusedForMs: number;
  log: Logger;
}

/**
 * Picks the sending pool of each attempt: sticky per destination by weighted rendezvous hashing
 * over the pools (pool-choice.ts), skipping pools with no live sender (pool membership in Redis)
 * and pools the destination recently refused. Decided per attempt, so a retry fails over when
 * its pool's senders are gone or the destination blocks it. Lookups are cached for a second: a
 * routing decision costs no round trip in the steady state.
 */
export class PoolChooser {
  private readonly live = new TtlCache<Map<string, number>>(1_000);
  private readonly refused = new TtlCache<Set<string>>(1_000);

  constructor(private readonly opts: PoolChooserOptions) {}

  private refusedKey(pool: string, destination: string): string {
    return `refused:${pool}:${createHash('sha256').update(destination).digest('hex').slice(0, 32)}`;
  }

  async choose(destination: string, now = new Date()): Promise<string> {
    const pools = await this.opts.pools();
    if (pools.length === 0) return this.opts.defaultPool;
    const ranking = rankPools(destination, pools.map((p) => ({ name: p.name, weight: poolWeight(p, now, this.opts.warmupDays) })));
    if (ranking.length === 0) return this.opts.defaultPool;
    const names = pools.map((p) => p.name);
    const [live, refused] = await Promise.all([
      this.live.get(names.join(','), () => this.opts.membership.live(names)).catch(() => new Map<string, number>()),
      this.refused.get(destination, async () => {
        const flags = await this.opts.redis.mget(...ranking.map((p) => this.refusedKey(p, destination)));
        return new Set(ranking.filter((_, i) => flags[i] !== null));
      }).catch(() => new Set<string>()),
    ]);
    const alive = ranking.filter((p) => (live.get(p) ?? 0) > 0);
    // Alive and not refused; else alive (every pool refused: try the best anyway); else (no live
    // sender anywhere, or Redis away) the destination's own pool, whose queue keeps the mail for
    // its senders — and a request left queued too long is published again and chosen anew.
    const choice = alive.find((p) => !refused.has(p)) ?? alive[0] ?? ranking[0]!;
    if (choice !== ranking[0]) this.opts.log.debug({ destination, choice, preferred: ranking[0], alive, refused: [...refused] }, 'pool failover');
    return choice;
  }

  /** The destination refused this pool: avoid the pair for a while. */
  async markRefused(pool: string, destination: string): Promise<void> {
    await this.opts.redis.set(this.refusedKey(pool, destination), '1', 'PX', this.opts.refusedForMs);
    this.refused.delete(destination);
    this.opts.log.info({ pool, destination, forMs: this.opts.refusedForMs }, 'destination refused the pool; trying others for a while');
  }
}
