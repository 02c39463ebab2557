import type { Logger } from '@moat/runtime';
import type { Delivery, DeliveryRepository, RetrySchedule } from '@moat/store';
import type { RequestPublisher } from './requests.js';
import type { ScheduleKeeper } from './schedule-keeper.js';

/** The Redis retry schedule and what the scheduler needs to work it (absent: due retries come from Postgres). */
export interface RedisScheduling {
  schedule: RetrySchedule;
  keeper: ScheduleKeeper;
  /** A destination's backlog is published at most this many deliveries per second. */
  drainPerSecond: number;
  /** How long a probe of a down destination may run before another probe is allowed. */
  probeLeaseMs: number;
  /** How often Postgres is checked for deferred rows the schedule lost, and for expired ones. */
  sweepMs: number;
  /** Rows overdue by less than this are left to the schedule (claims take a moment). */
  sweepGraceMs: number;
  /** The router's default queue lifetime (a tenant may set its own). */
  defaultLifetimeMs: number;
  /** Expires deliveries whose lifetime ran out while their destination kept them waiting. */
  expire: (rows: Delivery[]) => Promise<void>;
}

export interface SchedulerOptions {
  deliveries: DeliveryRepository;
  publisher: RequestPublisher;
  intervalMs: number;
  batch: number;
  publishLeaseMs: number;
  /** A row 'queued' this long has its request published again (see kind d). */
  queuedRepublishMs: number;
  log: Logger;
  /** Queue control: due retries to a paused destination become held (returns how many). */
  holdDuePaused?: () => Promise<number>;
  redis?: RedisScheduling;
  now?: () => number;
}

/**
 * Moves deliveries along when no event will: (a) deferred rows whose retry is due (claimed from
 * the Redis retry schedule, which applies destination back-off and pacing; straight from
 * Postgres while Redis is away), (b) rows left
 * 'publishing' by a router that died before its publish was confirmed, (c) rows left 'sending' by
 * a sender that died (its claim's lease ran out), (d) rows 'queued' for so long that their
 * request was probably dead-lettered (a sender could not reach Postgres through the queue's whole
 * delivery limit): without (d) they would wait for an operator to replay the parking queue. Each kind is taken with one UPDATE … FOR UPDATE
 * SKIP LOCKED that also sets a new lease, so several router replicas never take the same row and
 * a router killed mid-tick leaves rows that the next tick (here or elsewhere) takes again.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private lastSweep = 0;
  private redisFailing = false;
  private readonly now: () => number;

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick()
        .then((busy) => this.schedule(busy ? 0 : this.opts.intervalMs))
        .catch((err: unknown) => {
          // Postgres or the broker away: nothing was lost (the rows keep their state), try later.
          this.opts.log.warn({ err: (err as Error).message }, 'scheduler tick failed');
          this.schedule(this.opts.intervalMs);
        })
        .finally(() => {
          this.running = null;
        });
    }, delayMs);
  }

  /** One pass over every kind; true when a batch came back full (more work is waiting). */
  async tick(): Promise<boolean> {
    const { deliveries, batch, publishLeaseMs } = this.opts;
    // Before taking due retries: those of a paused destination are held, not published.
    if (this.opts.holdDuePaused) await this.opts.holdDuePaused();
    const dueBusy = await this.takeDue();
    const stalePublishing = await deliveries.takeExpiredPublishing(batch, publishLeaseMs);
    await this.publishAll(stalePublishing, 'publish lease expired');
    const staleSending = await deliveries.takeExpiredSending(batch, publishLeaseMs);
    await this.publishAll(staleSending, 'send lease expired');
    const staleQueued = await deliveries.takeStaleQueued(batch, this.opts.queuedRepublishMs);
    await this.publishAll(staleQueued, 'queued for too long');
    if (this.opts.redis && this.now() - this.lastSweep >= this.opts.redis.sweepMs) await this.sweep(this.opts.redis);
    return dueBusy || [stalePublishing, staleSending, staleQueued].some((rows) => rows.length === batch);
  }

  /**
   * Due retries: claimed from the Redis schedule (destination back-off and paced drain apply
   * there), then taken in Postgres (only rows still deferred and due), published, released. While
   * Redis cannot be reached, straight from Postgres (no back-off, no pacing: mail keeps flowing).
   */
  private async takeDue(): Promise<boolean> {
    const { deliveries, batch, publishLeaseMs } = this.opts;
    const r = this.opts.redis;
    if (r) {
      let claimed;
      try {
        claimed = await r.schedule.claim({ now: this.now(), batch, leaseMs: publishLeaseMs, drainPerSecond: r.drainPerSecond, probeLeaseMs: r.probeLeaseMs });
        if (!claimed.ready) await r.keeper.rebuild();
        if (this.redisFailing) this.opts.log.info('redis reachable again; due retries come from the retry schedule');
        this.redisFailing = false;
      } catch (err) {
        if (!this.redisFailing) this.opts.log.warn({ err: (err as Error).message }, 'retry schedule unavailable (redis); taking due retries from Postgres meanwhile');
        this.redisFailing = true;
      }
      if (claimed) {
        const rows = await deliveries.takeDueByIds(claimed.entries.map((e) => e.id), publishLeaseMs);
        const published = await this.publishAll(rows, 'retry due');
        const taken = new Set(rows.map((row) => row.id));
        await r.schedule.release(published.map((row) => ({ id: row.id, destination: row.destination }))).catch(() => {});
        await r.keeper.settleUntaken(claimed.entries.filter((e) => !taken.has(e.id))).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not settle claimed retries'));
        return claimed.more;
      }
    }
    const due = await deliveries.takeDueRetries(batch, publishLeaseMs);
    await this.publishAll(due, 'retry due');
    return due.length === batch;
  }

  /** The periodic checks against Postgres: lost schedule entries, and lifetimes that ran out. */
  private async sweep(r: RedisScheduling): Promise<void> {
    this.lastSweep = this.now();
    const overdue = new Date(this.now() - r.sweepGraceMs);
    if (!this.redisFailing) await r.keeper.repair(overdue);
    const expired = await this.opts.deliveries.expiredDeferred(this.opts.batch, overdue, r.defaultLifetimeMs);
    if (expired.length > 0) await r.expire(expired);
  }

  /** Publishes each row's attempt (or recorded outcome); returns the rows whose publish was confirmed. */
  private async publishAll(rows: Delivery[], why: string): Promise<Delivery[]> {
    if (rows.length === 0) return [];
    this.opts.log.debug({ count: rows.length, why }, 'scheduler publishing');
    const ok = await Promise.all(
      rows.map(async (d) => {
        try {
          if (d.status === 'sending' && d.outcome && d.outcome.attempt === d.attempt) {
            // The sender recorded what it did but its result may never have reached the broker:
            // report that outcome again instead of sending the message a second time.
            await this.opts.publisher.publishRecordedResult(d.outcome.result);
          } else {
            await this.opts.publisher.publishAttempt(d);
          }
          return true;
        } catch (err) {
          // The row keeps its lease; when it runs out, kind (b) or (c) takes it again.
          this.opts.log.warn({ err: (err as Error).message, deliveryId: d.id, attempt: d.attempt, why }, 'scheduler could not publish; will retry after the lease');
          return false;
        }
      }),
    );
    return rows.filter((_, i) => ok[i]);
  }

  /** Stops scheduling and waits for a tick in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
