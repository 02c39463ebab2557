import type { Logger } from '@moat/runtime';
import type { Delivery, DeliveryRepository } from '@moat/store';
import type { RequestPublisher } from './requests.js';

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
}

/**
 * Moves deliveries along when no event will: (a) deferred rows whose retry is due, (b) rows left
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

  constructor(private readonly opts: SchedulerOptions) {}

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

  /** One pass over the three kinds; true when a batch came back full (more work is waiting). */
  async tick(): Promise<boolean> {
    const { deliveries, batch, publishLeaseMs } = this.opts;
    // Before taking due retries: those of a paused destination are held, not published.
    if (this.opts.holdDuePaused) await this.opts.holdDuePaused();
    const due = await deliveries.takeDueRetries(batch, publishLeaseMs);
    await this.publishAll(due, 'retry due');
    const stalePublishing = await deliveries.takeExpiredPublishing(batch, publishLeaseMs);
    await this.publishAll(stalePublishing, 'publish lease expired');
    const staleSending = await deliveries.takeExpiredSending(batch, publishLeaseMs);
    await this.publishAll(staleSending, 'send lease expired');
    const staleQueued = await deliveries.takeStaleQueued(batch, this.opts.queuedRepublishMs);
    await this.publishAll(staleQueued, 'queued for too long');
    return [due, stalePublishing, staleSending, staleQueued].some((rows) => rows.length === batch);
  }

  private async publishAll(rows: Delivery[], why: string): Promise<void> {
    if (rows.length === 0) return;
    this.opts.log.debug({ count: rows.length, why }, 'scheduler publishing');
    await Promise.all(
      rows.map(async (d) => {
        try {
          if (d.status === 'sending' && d.outcome && d.outcome.attempt === d.attempt) {
            // The sender recorded what it did but its result may never have reached the broker:
            // report that outcome again instead of sending the message a second time.
            await this.opts.publisher.publishRecordedResult(d.outcome.result);
          } else {
            await this.opts.publisher.publishAttempt(d);
          }
        } catch (err) {
          // The row keeps its lease; when it runs out, kind (b) or (c) takes it again.
          this.opts.log.warn({ err: (err as Error).message, deliveryId: d.id, attempt: d.attempt, why }, 'scheduler could not publish; will retry after the lease');
        }
      }),
    );
  }

  /** Stops scheduling and waits for a tick in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
