import type { DeliveryResultPayload } from '@moat/contracts';
import { MicroBatcher } from '@moat/runtime';
import type { Delivery, DeliveryRepository, SealedBodyRow } from '@moat/store';

/** What the send handler needs of the deliveries table (BatchedDeliveries and DeliveryRepository fit). */
export interface SenderDeliveries {
  claimWithBody(id: string, attempt: number, leaseMs: number): Promise<{ delivery: Delivery; body: SealedBodyRow | null } | null>;
  recordOutcome(id: string, attempt: number, result: DeliveryResultPayload): Promise<boolean>;
  renewClaim(id: string, attempt: number, leaseMs: number): Promise<boolean>;
  get(id: string): Promise<Delivery | null>;
}

export interface BatchedDeliveriesOptions {
  /** Items per statement at most. */
  maxItems: number;
}

/**
 * Group commit for the sender's two per-request statements: the claims of concurrent requests
 * go into Postgres as ONE conditional UPDATE, and so do their recorded outcomes (Postgres' cost is
 * per statement and commit, not per row). Each request still waits for its own answer, from a
 * statement that has committed; the conditions per (id, attempt) are those of the single-row
 * statements, so an attempt is claimed at most once and an outcome is only recorded under a live
 * claim. Each SMTP transaction stays independent: only the DB round trips are shared. An idle
 * sender adds no delay (`maxDelayMs: 0`); under load batches form from the prefetched requests.
 * A failed statement fails every item of its batch, and each request then comes back (the
 * broker's transient-error path) exactly as if its own statement had failed.
 */
export class BatchedDeliveries implements SenderDeliveries {
  private readonly claims: MicroBatcher<{ id: string; attempt: number; leaseMs: number }, { delivery: Delivery; body: SealedBodyRow | null } | null>;
  private readonly outcomes: MicroBatcher<{ id: string; attempt: number; result: DeliveryResultPayload }, boolean>;

  constructor(
    private readonly repo: DeliveryRepository,
    opts: BatchedDeliveriesOptions,
  ) {
    this.claims = new MicroBatcher({
      maxItems: opts.maxItems,
      maxDelayMs: 0,
      write: (items) => this.repo.claimManyWithBody(items),
    });
    this.outcomes = new MicroBatcher({
      maxItems: opts.maxItems,
      maxDelayMs: 0,
      write: (items) => this.repo.recordOutcomes(items),
    });
  }

  claimWithBody(id: string, attempt: number, leaseMs: number): Promise<{ delivery: Delivery; body: SealedBodyRow | null } | null> {
    return this.claims.add({ id, attempt, leaseMs });
  }

  recordOutcome(id: string, attempt: number, result: DeliveryResultPayload): Promise<boolean> {
    return this.outcomes.add({ id, attempt, result });
  }

  /** Lease renewals are timer-driven and spread out: nothing to share. */
  renewClaim(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    return this.repo.renewClaim(id, attempt, leaseMs);
  }

  /** Only on the rare unclaimed path (duplicate or stale request). */
  get(id: string): Promise<Delivery | null> {
    return this.repo.get(id);
  }

  /** Writes what is still queued and waits for statements in flight (before the pool closes). */
  async close(): Promise<void> {
    await Promise.all([this.claims.close(), this.outcomes.close()]);
  }
}
