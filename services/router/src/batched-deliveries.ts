import { isPostgresDataError, MicroBatcher } from '@moat/runtime';
import type { Delivery, DeliveryRepository, NewDelivery, ResultApplication } from '@moat/store';

/** What the router's consumers need of the deliveries table (BatchedDeliveries and DeliveryRepository fit). */
export interface RouterDeliveries {
  createForMessage(messageId: string, rows: NewDelivery[], part?: string): Promise<{ created: boolean; deliveries: Delivery[] }>;
  forMessage(messageId: string, part?: string): Promise<Delivery[]>;
  get(id: string): Promise<Delivery | null>;
  applyResult(id: string, attempt: number, change: ResultApplication): Promise<boolean>;
}

export interface BatchedDeliveriesOptions {
  /** Items per statement at most. */
  maxItems: number;
}

/**
 * Group commit for the router's consumers: the routing decisions of concurrent message.filtered
 * events go to Postgres as ONE call of route_messages (each message under its own advisory lock,
 * decided at most once, as with route_message); the row reads of concurrent delivery.results as
 * ONE SELECT, and their transitions as ONE UPDATE (Postgres' cost is per statement and commit,
 * not per row). Each transition keeps the conditions of the single-row statement (its
 * attempt, not yet 'done'), so a duplicate or superseded result still changes nothing; each
 * handler waits for its own answer from a committed statement, so the order "tracking events
 * published, then the row changes, then ack" is unchanged. An idle router adds no delay
 * (`maxDelayMs: 0`); under load batches form from the prefetched events. A failed statement
 * fails every item of its batch, and each event then comes back as if its own statement failed.
 */
export class BatchedDeliveries implements RouterDeliveries {
  private readonly routings: MicroBatcher<{ messageId: string; rows: NewDelivery[]; part?: string }, { created: boolean; deliveries: Delivery[] }>;
  private readonly reads: MicroBatcher<string, Delivery | null>;
  private readonly results: MicroBatcher<{ id: string; attempt: number; change: ResultApplication }, boolean>;

  constructor(
    private readonly repo: DeliveryRepository,
    opts: BatchedDeliveriesOptions,
  ) {
    this.routings = new MicroBatcher({ maxItems: opts.maxItems, maxDelayMs: 0, write: (items) => this.repo.createForMessages(items), isolateOn: isPostgresDataError });
    this.reads = new MicroBatcher({ maxItems: opts.maxItems, maxDelayMs: 0, write: (ids) => this.repo.getMany(ids) });
    this.results = new MicroBatcher({ maxItems: opts.maxItems, maxDelayMs: 0, write: (items) => this.repo.applyResults(items) });
  }

  createForMessage(messageId: string, rows: NewDelivery[], part?: string): Promise<{ created: boolean; deliveries: Delivery[] }> {
    // Checked here so that a wrong item fails alone instead of failing its batch.
    if (rows.some((d) => d.messageId !== messageId)) return Promise.reject(new Error('createForMessage: every row must belong to the message'));
    return this.routings.add({ messageId, rows, ...(part === undefined ? {} : { part }) });
  }

  /** Only on the rare path of unroutable recipients. */
  forMessage(messageId: string, part?: string): Promise<Delivery[]> {
    return this.repo.forMessage(messageId, part);
  }

  get(id: string): Promise<Delivery | null> {
    return this.reads.add(id);
  }

  applyResult(id: string, attempt: number, change: ResultApplication): Promise<boolean> {
    return this.results.add({ id, attempt, change });
  }

  /** Writes what is still queued and waits for statements in flight (before the pool closes). */
  async close(): Promise<void> {
    await Promise.all([this.routings.close(), this.reads.close(), this.results.close()]);
  }
}
