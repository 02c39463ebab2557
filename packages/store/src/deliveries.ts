import { deliveryResultPayload, type DeliveryResultPayload, type Route } from '@moat/contracts';
import { inTransaction, type Pool } from '@moat/runtime';

/**
 * The delivery queue's durable truth: one row per (message, destination). The router creates
 * rows and schedules attempts; a sender claims one attempt at a time. Every transition is a
 * single conditional UPDATE on (id, attempt, status), so a duplicate or stale event changes
 * nothing and two processes can never both own an attempt.
 *
 *   publishing ─(request confirmed)─► queued ─(sender claim)─► sending ─(result)─► done
 *        ▲                                                        │          └──► deferred ─(due)─┐
 *        └──────────── scheduler: due retry / expired lease ◄─────┴────────────────────────────────┘
 *
 * The scheduler also re-publishes (same attempt) rows stuck in 'publishing' or 'queued', and re-
 * reports an attempt whose sender recorded its outcome but may not have published it.
 */
export type DeliveryStatus = 'publishing' | 'queued' | 'sending' | 'deferred' | 'held' | 'done';

/** What a sender observed for one attempt, kept so the attempt is reported, never re-sent. */
export interface DeliveryOutcome {
  attempt: number;
  result: DeliveryResultPayload;
}

export interface Delivery {
  id: string;
  messageId: string;
  tenantId: string;
  /** Partition key of the message store (the store reference's receivedAt). */
  receivedAt: Date;
  pool: string;
  destination: string;
  routes: Route[];
  mailFrom: string;
  /** Recipients still to deliver: shrinks as recipients get final fates. */
  rcpts: string[];
  prependHeaders: string;
  size: number;
  attempt: number;
  status: DeliveryStatus;
  leaseUntil: Date | null;
  nextAttemptAt: Date | null;
  lastError: string | null;
  outcome: DeliveryOutcome | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewDelivery {
  id: string;
  messageId: string;
  tenantId: string;
  receivedAt: Date;
  pool: string;
  destination: string;
  routes: Route[];
  mailFrom: string;
  rcpts: string[];
  prependHeaders: string;
  size: number;
}

/** How a delivery.result changes its row (decided by the router, applied in one statement). */
export interface ResultApplication {
  rcpts: string[];
  status: 'done' | 'deferred' | 'held';
  /** true: the remaining recipients get a new attempt number. */
  nextAttempt: boolean;
  nextAttemptAt: Date | null;
  lastError: string | null;
}

interface DeliveryRowRaw {
  id: string;
  message_id: string;
  tenant_id: string;
  received_at: Date;
  pool: string;
  destination: string;
  routes: Route[];
  mail_from: string;
  rcpts: string[];
  prepend_headers: string;
  size: number;
  attempt: number;
  status: DeliveryStatus;
  lease_until: Date | null;
  next_attempt_at: Date | null;
  last_error: string | null;
  outcome: unknown;
  created_at: Date;
  updated_at: Date;
}

function parseOutcome(value: unknown): DeliveryOutcome | null {
  if (value === null || typeof value !== 'object') return null;
  const { attempt, result } = value as { attempt?: unknown; result?: unknown };
  if (typeof attempt !== 'number') return null;
  const parsed = deliveryResultPayload.safeParse(result);
  // An outcome that no longer parses is treated as absent: the attempt is then re-sent rather
  // than reported with a payload no consumer could read.
  return parsed.success ? { attempt, result: parsed.data } : null;
}

function toDelivery(r: DeliveryRowRaw): Delivery {
  return {
    id: r.id,
    messageId: r.message_id,
    tenantId: r.tenant_id,
    receivedAt: r.received_at,
    pool: r.pool,
    destination: r.destination,
    routes: r.routes,
    mailFrom: r.mail_from,
    rcpts: r.rcpts,
    prependHeaders: r.prepend_headers,
    size: r.size,
    attempt: r.attempt,
    status: r.status,
    leaseUntil: r.lease_until,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    outcome: parseOutcome(r.outcome),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** `now() + ms` in SQL, with ms as an integer parameter. */
const plusMs = (param: string) => `now() + (${param}::integer * interval '1 millisecond')`;

/** True when the row already holds the outcome of its current attempt. */
const hasOutcomeForAttempt = (alias = '') => `coalesce((${alias}outcome->>'attempt')::integer = ${alias}attempt, false)`;

export class DeliveryRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Records the routing decision for a message: all its deliveries in one transaction, or none.
   * Serialised per message (advisory lock), and done at most once: when rows for the message
   * already exist (a redelivered message.filtered, or a second router racing this one), nothing
   * is inserted and the existing rows are returned, so a route change between two passes can
   * never produce a second, differently keyed delivery of the same recipients.
   * New rows start in 'publishing', attempt 1, with a lease bounding the wait for the publish.
   */
  async createForMessage(messageId: string, rows: NewDelivery[], publishLeaseMs: number): Promise<{ created: boolean; deliveries: Delivery[] }> {
    return inTransaction(this.pool, async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`deliveries:${messageId}`]);
      const existing = await client.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE message_id = $1 ORDER BY created_at, id', [messageId]);
      if (existing.rows.length > 0) return { created: false, deliveries: existing.rows.map(toDelivery) };
      const inserted: Delivery[] = [];
      for (const d of rows) {
        const res = await client.query<DeliveryRowRaw>(
          `INSERT INTO deliveries (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, lease_until)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, 'publishing', ${plusMs('$12')})
           ON CONFLICT (id) DO NOTHING
           RETURNING *`,
          [d.id, d.messageId, d.tenantId, d.receivedAt, d.pool, d.destination, JSON.stringify(d.routes), d.mailFrom, d.rcpts, d.prependHeaders, d.size, publishLeaseMs],
        );
        const row = res.rows[0];
        if (row) inserted.push(toDelivery(row));
      }
      return { created: true, deliveries: inserted };
    });
  }

  async get(id: string): Promise<Delivery | null> {
    const res = await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE id = $1', [id]);
    return res.rows[0] ? toDelivery(res.rows[0]) : null;
  }

  async forMessage(messageId: string): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE message_id = $1 ORDER BY created_at, id', [messageId]);
    return res.rows.map(toDelivery);
  }

  /** After the broker confirmed delivery.requested: publishing → queued (no-op once a sender claimed it). */
  async markQueued(id: string, attempt: number): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE deliveries SET status = 'queued', lease_until = NULL, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status = 'publishing'`,
      [id, attempt],
    );
    return res.rowCount === 1;
  }

  /**
   * A sender claims one attempt before it opens any connection. Succeeds only for the current
   * attempt, while nobody else holds it (or their lease ran out), and never once an outcome of
   * this attempt is recorded: such an attempt has been sent already and is only re-reported.
   */
  async claim(id: string, attempt: number, leaseMs: number): Promise<Delivery | null> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `UPDATE deliveries SET status = 'sending', lease_until = ${plusMs('$3')}, updated_at = now()
        WHERE id = $1 AND attempt = $2
          AND (status IN ('publishing', 'queued') OR (status = 'sending' AND lease_until < now()))
          AND NOT ${hasOutcomeForAttempt()}
        RETURNING *`,
      [id, attempt, leaseMs],
    );
    return res.rows[0] ? toDelivery(res.rows[0]) : null;
  }

  /** Extends the claim while a long transaction runs; false when the claim was lost. */
  async renewClaim(id: string, attempt: number, leaseMs: number): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE deliveries SET lease_until = ${plusMs('$3')}, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status = 'sending'`,
      [id, attempt, leaseMs],
    );
    return res.rowCount === 1;
  }

  /** Records what an attempt did, before its result is published; false when the claim was lost. */
  async recordOutcome(id: string, attempt: number, result: DeliveryResultPayload): Promise<boolean> {
    const outcome: DeliveryOutcome = { attempt, result };
    const res = await this.pool.query(
      `UPDATE deliveries SET outcome = $3, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status = 'sending'`,
      [id, attempt, JSON.stringify(outcome)],
    );
    return res.rowCount === 1;
  }

  /**
   * Applies a delivery.result in one statement. Only the attempt it reports, and only once: a
   * duplicate result (or one for an attempt that was superseded) matches no row.
   */
  async applyResult(id: string, attempt: number, change: ResultApplication): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE deliveries
          SET rcpts = $3, status = $4, attempt = CASE WHEN $5::boolean THEN attempt + 1 ELSE attempt END,
              next_attempt_at = $6, lease_until = NULL, last_error = $7, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND status <> 'done'`,
      [id, attempt, change.rcpts, change.status, change.nextAttempt, change.nextAttemptAt, change.lastError],
    );
    return res.rowCount === 1;
  }

  /**
   * Scheduler (a): deferred rows whose time has come become 'publishing' for their (already
   * incremented) attempt, under a lease. SKIP LOCKED lets several routers share the work.
   */
  async takeDueRetries(batch: number, leaseMs: number): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `WITH due AS (
         SELECT id FROM deliveries
          WHERE status = 'deferred' AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE deliveries d SET status = 'publishing', lease_until = ${plusMs('$2')}, updated_at = now()
         FROM due WHERE d.id = due.id
       RETURNING d.*`,
      [batch, leaseMs],
    );
    return res.rows.map(toDelivery);
  }

  /**
   * Scheduler (b): a router died between writing a row and confirming its publish. The same
   * attempt is published again (a sender claims an attempt once, so a double publish is harmless).
   */
  async takeExpiredPublishing(batch: number, leaseMs: number): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `WITH stale AS (
         SELECT id FROM deliveries
          WHERE status = 'publishing' AND lease_until < now()
          ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE deliveries d SET lease_until = ${plusMs('$2')}, updated_at = now()
         FROM stale WHERE d.id = stale.id
       RETURNING d.*`,
      [batch, leaseMs],
    );
    return res.rows.map(toDelivery);
  }

  /**
   * Scheduler (d): a row 'queued' for longer than `olderThanMs` — its request may have been
   * dead-lettered to parking (e.g. Postgres unreachable while senders consumed it). The same
   * attempt is published again (a sender claims an attempt once); updated_at restarts the clock.
   */
  async takeStaleQueued(batch: number, olderThanMs: number): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `WITH stale AS (
         SELECT id FROM deliveries
          WHERE status = 'queued' AND updated_at < now() - ($2::integer * interval '1 millisecond')
          ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE deliveries d SET updated_at = now()
         FROM stale WHERE d.id = stale.id
       RETURNING d.*`,
      [batch, olderThanMs],
    );
    return res.rows.map(toDelivery);
  }

  /**
   * Scheduler (c): a sender's claim ran out. If the sender recorded the attempt's outcome, the
   * row stays 'sending' (lease renewed) and the caller re-publishes that outcome: the message was
   * sent, it must not be sent again. Otherwise the sender died before or during the transaction:
   * the row moves to the next attempt in 'publishing', and the caller publishes it.
   */
  async takeExpiredSending(batch: number, leaseMs: number): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `WITH stale AS (
         SELECT id FROM deliveries
          WHERE status = 'sending' AND lease_until < now()
          ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE deliveries d
          SET attempt = CASE WHEN ${hasOutcomeForAttempt('d.')} THEN d.attempt ELSE d.attempt + 1 END,
              status = CASE WHEN ${hasOutcomeForAttempt('d.')} THEN 'sending' ELSE 'publishing' END,
              lease_until = ${plusMs('$2')}, updated_at = now()
         FROM stale WHERE d.id = stale.id
       RETURNING d.*`,
      [batch, leaseMs],
    );
    return res.rows.map(toDelivery);
  }
}
