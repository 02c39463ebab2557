import { randomUUID } from 'node:crypto';
import type { DeliveryResultPayload } from '@moat/contracts';
import type { Logger } from '@moat/runtime';
import { TtlCache, type Delivery, type DeliveryRepository, type RetrySchedule, type RetryState } from '@moat/store';
import { destinationBackoffMs, destinationVerdict, type DestinationBackoff } from './destination-health.js';
import { formatReply } from './result.js';

export interface ScheduleKeeperOptions {
  schedule: RetrySchedule;
  deliveries: Pick<DeliveryRepository, 'deferNew' | 'deferredPage' | 'getMany'>;
  backoff: DestinationBackoff;
  log: Logger;
  now?: () => number;
}

/**
 * The router's side of the Redis retry schedule (packages/store retry-schedule.ts) and of
 * destination health. Postgres stays the truth: every method here may fail (Redis away) without
 * losing a delivery — a deferred row missing from Redis is found again by `repair`, and the
 * scheduler falls back to taking due rows from Postgres while Redis cannot be reached.
 */
export class ScheduleKeeper {
  private readonly now: () => number;
  /** Back-off state of destinations, as new mail asks for it: at most one lookup per destination a second. */
  private readonly backedOff = new TtlCache<boolean>(1_000);
  private readonly owner = randomUUID();

  constructor(private readonly opts: ScheduleKeeperOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * A result leaves the delivery deferred until `dueAt`: schedule it (called BEFORE the row is
   * updated, so that no crash can leave a deferred row the schedule does not know; an entry whose
   * row did not change is dropped when claimed).
   */
  async deferred(row: Delivery, result: DeliveryResultPayload, dueAt: Date, remaining: string[]): Promise<void> {
    const previous = await this.opts.schedule.state(row.id).catch(() => null);
    const replies = new Map(result.recipients.map((r) => [r.rcpt, formatReply(r.reply)]));
    const state: RetryState = {
      attempts: row.attempt,
      firstAttemptAt: previous?.firstAttemptAt ?? (row.attempt === 1 ? result.startedAt : row.createdAt.toISOString()),
      nextAttemptAt: dueAt.toISOString(),
      lastReplies: Object.fromEntries(remaining.map((rcpt) => [rcpt, replies.get(rcpt) ?? previous?.lastReplies[rcpt] ?? ''])),
    };
    await this.opts.schedule.add([{ id: row.id, destination: row.destination, dueAt: dueAt.getTime(), state }]);
  }

  /** Whether a destination is marked down (cached for a second). */
  private isBackedOff(destination: string): Promise<boolean> {
    return this.backedOff.get(destination, async () => ((await this.opts.schedule.health([destination]))[0]?.failures ?? 0) > 0);
  }

  /**
   * The delivery left the queue (done, or held by an operator): off the schedule. A first
   * attempt that ends the delivery has nothing there (its queue entry, if it waited for a down
   * destination, went when it was published; state is written only on a deferral), so the hot
   * path — delivered at the first attempt — costs no Redis round trip.
   */
  async finished(row: Pick<Delivery, 'id' | 'destination' | 'attempt'>): Promise<void> {
    if (row.attempt <= 1) return;
    await this.opts.schedule.remove([{ id: row.id, destination: row.destination }]);
  }

  /** Destination health from an attempt: a down destination backs off as a whole, an answer ends it. */
  async observe(result: DeliveryResultPayload): Promise<void> {
    const verdict = destinationVerdict(result);
    if (verdict === 'up') {
      // The common case — a destination that was never down — costs no round trip beyond the
      // cached health lookup (at most one a second per destination).
      if (!(await this.isBackedOff(result.destination))) return;
      if (await this.opts.schedule.destinationUp(result.destination, this.now())) {
        this.backedOff.delete(result.destination);
        this.opts.log.info({ destination: result.destination }, 'destination answers again; draining its backlog at the paced rate');
      }
    } else if (verdict === 'down') {
      const health = await this.opts.schedule.destinationDown(result.destination, result.deliveryId, result.error, this.now(), (f) => destinationBackoffMs(f, this.opts.backoff));
      this.backedOff.delete(result.destination);
      this.opts.log.info({ destination: result.destination, failures: health.failures, until: new Date(health.backoffUntil).toISOString(), error: result.error }, 'destination down; its deliveries back off together');
    }
  }

  /**
   * First attempts to destinations that are backed off: deferred with the destination's backlog
   * instead of published. Returns the ids that must not be published. On any doubt (Redis away)
   * nothing is held back.
   */
  async holdForDownDestinations(rows: readonly Delivery[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    try {
      const destinations = [...new Set(rows.map((r) => r.destination))];
      const down = new Set<string>();
      await Promise.all(
        destinations.map(async (d) => {
          if (await this.isBackedOff(d)) down.add(d);
        }),
      );
      if (down.size === 0) return new Set();
      const waiting = rows.filter((r) => down.has(r.destination));
      const now = this.now();
      await this.opts.schedule.add(waiting.map((r) => ({ id: r.id, destination: r.destination, dueAt: now })));
      return new Set(await this.opts.deliveries.deferNew(waiting.map((r) => r.id)));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot read destination health; publishing');
      return new Set();
    }
  }

  /**
   * Makes the schedule hold every deferred row again after Redis lost it (flushed, replaced):
   * one router does it (lock), page by page from Postgres, then marks the schedule ready.
   * Returns the number of rows scheduled, or null when another router holds the lock.
   */
  async rebuild(pageSize = 1_000): Promise<number | null> {
    const { schedule } = this.opts;
    if (!(await schedule.lockRebuild(this.owner, 120_000))) return null;
    try {
      let after: { at: Date; id: string } | null = null;
      let total = 0;
      for (;;) {
        const page = await this.opts.deliveries.deferredPage(after, pageSize);
        if (page.length === 0) break;
        await schedule.add(page.map((r) => ({ id: r.id, destination: r.destination, dueAt: r.nextAttemptAt.getTime() })));
        total += page.length;
        const last = page[page.length - 1]!;
        after = { at: last.nextAttemptAt, id: last.id };
        if (page.length < pageSize) break;
      }
      await schedule.markReady();
      this.opts.log.info({ deliveries: total }, 'retry schedule rebuilt from Postgres');
      return total;
    } finally {
      await schedule.unlockRebuild(this.owner).catch(() => {});
    }
  }

  /**
   * The safety net under the write path: deferred rows due before `dueBefore` that the schedule
   * does not hold (a router died between its Redis and Postgres writes in the unlucky order, an
   * operator's release, a Redis write that failed) are scheduled again. Returns how many.
   */
  async repair(dueBefore: Date, pageSize = 1_000): Promise<number> {
    let after: { at: Date; id: string } | null = null;
    let repaired = 0;
    for (;;) {
      const page = await this.opts.deliveries.deferredPage(after, pageSize, dueBefore);
      if (page.length === 0) break;
      const present = await this.opts.schedule.scheduled(page);
      const missing = page.filter((_, i) => !present[i]);
      if (missing.length > 0) await this.opts.schedule.add(missing.map((r) => ({ id: r.id, destination: r.destination, dueAt: r.nextAttemptAt.getTime() })));
      repaired += missing.length;
      const last = page[page.length - 1]!;
      after = { at: last.nextAttemptAt, id: last.id };
      if (page.length < pageSize) break;
    }
    if (repaired > 0) this.opts.log.warn({ repaired }, 'deferred deliveries were missing from the retry schedule; scheduled again');
    return repaired;
  }

  /**
   * Claimed entries that Postgres did not hand out (their row moved on, or is due later):
   * rescheduled at the row's own time when still deferred, dropped otherwise. A row 'sending'
   * is a result on its way: its entry stays (leased) until the result decides.
   */
  async settleUntaken(entries: readonly { id: string; destination: string }[]): Promise<void> {
    if (entries.length === 0) return;
    const rows = await this.opts.deliveries.getMany(entries.map((e) => e.id));
    const later: { id: string; destination: string; dueAt: number }[] = [];
    const published: { id: string; destination: string }[] = [];
    const gone: { id: string; destination: string }[] = [];
    entries.forEach((e, i) => {
      const row = rows[i];
      if (row && row.status === 'deferred' && row.nextAttemptAt) later.push({ id: e.id, destination: e.destination, dueAt: row.nextAttemptAt.getTime() });
      else if (!row || row.status === 'done' || row.status === 'held') gone.push(e);
      else if (row.status !== 'sending') published.push(e);
    });
    await this.opts.schedule.add(later);
    await this.opts.schedule.release(published);
    await this.opts.schedule.remove(gone);
  }
}
