import { inTransaction, type Pool } from '@moat/runtime';
import type { DeliveryStatus } from './deliveries.js';
import type { RetrySchedule, RetryState } from './retry-schedule.js';

// =============================================================================================
// Queue control: what operators and tenant admins do to queued deliveries through the API.
// Every change is one conditional UPDATE, so it composes with the router and the senders: a
// held row is not claimable (a sender's claim wants 'publishing' or 'queued'), is not taken by
// the scheduler (it wants 'deferred'), and a release hands it back to the scheduler as a due
// retry. A row a sender holds ('sending') is never changed here: its transaction is in flight.
// =============================================================================================

export interface QueuedDelivery {
  id: string;
  messageId: string;
  tenantId: string;
  destination: string;
  pool: string;
  mailFrom: string;
  rcpts: string[];
  /** Not 'done' while listed; a purge answers with the row as it left the queue ('done'). */
  status: DeliveryStatus;
  heldBy: 'operator' | 'destination' | null;
  attempt: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  expiresAt: string | null;
  size: number;
  /** Its retry state in Redis (attempts, first and next attempt, last reply per recipient); null before a first failure or when unknown. */
  retry?: RetryState | null;
}

/** A destination with mail waiting, and its health (a down destination is backed off as a whole). */
export interface QueuedDestination {
  destination: string;
  waiting: number;
  deferred: number;
  held: number;
  oldestAt: string;
  nextAttemptAt: string | null;
  /** Consecutive attempts that found it down; 0: up. */
  failures: number;
  backoffUntil: string | null;
  lastError: string | null;
}

export interface QueueFilter {
  tenantId?: string;
  tenantIds?: string[];
  /** Deliveries with a recipient in this domain. */
  domain?: string;
  destination?: string;
  status?: Exclude<DeliveryStatus, 'done'>;
  /** Queued at least this long. */
  olderThanMs?: number;
  limit: number;
  /** Continue after this (created_at, id) position. */
  before?: { createdAt: string; id: string };
}

export interface DestinationHold {
  id: string;
  destination: string;
  tenantId: string | null;
  reason: string | null;
  actor: string;
  createdAt: string;
}

interface Row {
  id: string;
  message_id: string;
  tenant_id: string;
  destination: string;
  pool: string;
  mail_from: string;
  rcpts: string[];
  status: DeliveryStatus;
  held_by: 'operator' | 'destination' | null;
  attempt: number;
  next_attempt_at: Date | null;
  last_error: string | null;
  created_at: Date;
  expires_at: Date | null;
  size: number;
}

const columns = 'id, message_id, tenant_id, destination, pool, mail_from, rcpts, status, held_by, attempt, next_attempt_at, last_error, created_at, expires_at, size';

function toQueued(r: Row): QueuedDelivery {
  return {
    id: r.id,
    messageId: r.message_id,
    tenantId: r.tenant_id,
    destination: r.destination,
    pool: r.pool,
    mailFrom: r.mail_from,
    rcpts: r.rcpts,
    status: r.status,
    heldBy: r.held_by,
    attempt: r.attempt,
    nextAttemptAt: r.next_attempt_at?.toISOString() ?? null,
    lastError: r.last_error,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at?.toISOString() ?? null,
    size: r.size,
  };
}

interface HoldRow {
  id: string;
  destination: string;
  tenant_id: string | null;
  reason: string | null;
  actor: string;
  created_at: Date;
}

function toHold(r: HoldRow): DestinationHold {
  return { id: String(r.id), destination: r.destination, tenantId: r.tenant_id, reason: r.reason, actor: r.actor, createdAt: r.created_at.toISOString() };
}

/** Why a change was refused: the row is gone/done, or in a state the action does not apply to. */
export type QueueChange = { ok: true; delivery: QueuedDelivery } | { ok: false; reason: 'not-found' | 'state'; status?: DeliveryStatus };

/** The tenant condition of a destination hold matching deliveries row `d`. */
const holdMatches = `h.destination = d.destination AND (h.tenant_id IS NULL OR h.tenant_id = d.tenant_id)`;

export class QueueControlRepository {
  /**
   * `schedule`: the router's Redis retry schedule. Rows this makes due now (release, retry now)
   * are put on it so the router takes them at once; without it (or with Redis away) the router's
   * periodic check against Postgres finds them within MOAT_RETRY_SWEEP_MS + grace.
   */
  constructor(
    private readonly pool: Pool,
    private readonly schedule?: RetrySchedule,
  ) {}

  private async scheduleNow(rows: readonly { id: string; destination: string }[]): Promise<void> {
    if (!this.schedule || rows.length === 0) return;
    const now = Date.now();
    await this.schedule.add(rows.map((r) => ({ id: r.id, destination: r.destination, dueAt: now }))).catch(() => {});
  }

  private async unschedule(rows: readonly { id: string; destination: string }[]): Promise<void> {
    if (!this.schedule || rows.length === 0) return;
    await this.schedule.remove(rows).catch(() => {});
  }

  /** Deliveries not done, newest first (an index covers this order). */
  async list(f: QueueFilter): Promise<{ items: QueuedDelivery[]; next: { createdAt: string; id: string } | null }> {
    const where = [`status <> 'done'`];
    const params: unknown[] = [];
    const param = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (f.tenantId !== undefined) where.push(`tenant_id = ${param(f.tenantId)}`);
    if (f.tenantIds !== undefined) where.push(`tenant_id = ANY(${param(f.tenantIds)}::uuid[])`);
    if (f.destination !== undefined) where.push(`destination = ${param(f.destination)}`);
    if (f.status !== undefined) where.push(`status = ${param(f.status)}`);
    if (f.domain !== undefined) where.push(`EXISTS (SELECT 1 FROM unnest(rcpts) r WHERE lower(split_part(r, '@', 2)) = lower(${param(f.domain)}))`);
    if (f.olderThanMs !== undefined) where.push(`created_at <= now() - (${param(f.olderThanMs)}::bigint * interval '1 millisecond')`);
    if (f.before !== undefined) where.push(`(created_at, id) < (${param(f.before.createdAt)}::timestamptz, ${param(f.before.id)}::uuid)`);
    const limit = Math.max(1, Math.min(f.limit, 1000));
    const res = await this.pool.query<Row>(`SELECT ${columns} FROM deliveries WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ${param(limit + 1)}`, params);
    const rows = res.rows.slice(0, limit);
    const last = rows[rows.length - 1];
    const items = rows.map(toQueued);
    if (this.schedule && items.length > 0) {
      // Redis away: the listing still answers, without the retry state.
      const states = await this.schedule.states(items.map((i) => i.id)).catch(() => items.map(() => null));
      items.forEach((item, i) => {
        const st = states[i];
        item.retry = st ? { attempts: st.attempts, firstAttemptAt: st.firstAttemptAt, nextAttemptAt: st.nextAttemptAt, lastReplies: st.lastReplies } : null;
      });
    }
    return { items, next: res.rows.length > limit && last ? { createdAt: last.created_at.toISOString(), id: last.id } : null };
  }

  /**
   * Destinations with mail waiting (for these tenants, or all), most waiting first, with their
   * health from the retry schedule: which customer servers are down and since how long.
   */
  async destinations(f: { tenantId?: string; tenantIds?: string[]; limit: number }): Promise<QueuedDestination[]> {
    const res = await this.pool.query<{ destination: string; waiting: number; deferred: number; held: number; oldest_at: Date; next_attempt_at: Date | null }>(
      `SELECT destination, count(*)::int AS waiting, count(*) FILTER (WHERE status = 'deferred')::int AS deferred,
              count(*) FILTER (WHERE status = 'held')::int AS held, min(created_at) AS oldest_at,
              min(next_attempt_at) FILTER (WHERE status = 'deferred') AS next_attempt_at
         FROM deliveries
        WHERE status <> 'done' AND ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid[] IS NULL OR tenant_id = ANY($2::uuid[]))
        GROUP BY destination ORDER BY count(*) DESC, destination LIMIT $3`,
      [f.tenantId ?? null, f.tenantIds ?? null, Math.max(1, Math.min(f.limit, 1000))],
    );
    const health = this.schedule ? await this.schedule.health(res.rows.map((r) => r.destination)).catch(() => []) : [];
    return res.rows.map((r, i) => {
      const h = health[i];
      return {
        destination: r.destination,
        waiting: r.waiting,
        deferred: r.deferred,
        held: r.held,
        oldestAt: r.oldest_at.toISOString(),
        nextAttemptAt: r.next_attempt_at?.toISOString() ?? null,
        failures: h?.failures ?? 0,
        backoffUntil: h && h.backoffUntil > 0 ? new Date(h.backoffUntil).toISOString() : null,
        lastError: h?.lastError ?? null,
      };
    });
  }

  async get(id: string): Promise<QueuedDelivery | null> {
    const res = await this.pool.query<Row>(`SELECT ${columns} FROM deliveries WHERE id = $1 AND status <> 'done'`, [id]);
    return res.rows[0] ? toQueued(res.rows[0]) : null;
  }

  /** Status of any row (done included): tells "not found" from "no longer queued". */
  private async statusOf(id: string): Promise<DeliveryStatus | null> {
    const res = await this.pool.query<{ status: DeliveryStatus }>('SELECT status FROM deliveries WHERE id = $1', [id]);
    return res.rows[0]?.status ?? null;
  }

  private async change(id: string, sql: string, params: unknown[], after?: 'schedule' | 'unschedule'): Promise<QueueChange> {
    const res = await this.pool.query<Row>(sql, [id, ...params]);
    if (res.rows[0]) {
      const delivery = toQueued(res.rows[0]);
      if (after === 'schedule') await this.scheduleNow([delivery]);
      if (after === 'unschedule') await this.unschedule([delivery]);
      return { ok: true, delivery };
    }
    const status = await this.statusOf(id);
    return status === null ? { ok: false, reason: 'not-found' } : { ok: false, reason: 'state', status };
  }

  /** Holds a delivery that is waiting (queued, deferred, or being published). Not while sending. */
  hold(id: string): Promise<QueueChange> {
    return this.change(
      id,
      `UPDATE deliveries SET status = 'held', held_by = 'operator', lease_until = NULL, updated_at = now()
        WHERE id = $1 AND status IN ('publishing', 'queued', 'deferred', 'held') RETURNING ${columns}`,
      [],
      'unschedule',
    );
  }

  /**
   * Releases a held delivery: a due retry of its current attempt (the scheduler publishes it
   * within its interval). A row held by its destination's pause stays held while the pause lasts.
   */
  release(id: string): Promise<QueueChange> {
    return this.change(
      id,
      `UPDATE deliveries d SET status = 'deferred', held_by = NULL, next_attempt_at = now(), updated_at = now()
        WHERE d.id = $1 AND d.status = 'held' AND NOT EXISTS (SELECT 1 FROM destination_holds h WHERE ${holdMatches})
        RETURNING ${columns}`,
      [],
      'schedule',
    );
  }

  /** A deferred delivery's next attempt, now. */
  retryNow(id: string): Promise<QueueChange> {
    return this.change(id, `UPDATE deliveries SET next_attempt_at = now(), updated_at = now() WHERE id = $1 AND status = 'deferred' RETURNING ${columns}`, [], 'schedule');
  }

  /** A new expiry for a waiting delivery (its deferred recipients expire then, not at the default). */
  extend(id: string, expiresAt: Date): Promise<QueueChange> {
    return this.change(
      id,
      `UPDATE deliveries SET expires_at = $2, updated_at = now() WHERE id = $1 AND status IN ('publishing', 'queued', 'deferred', 'held', 'sending') RETURNING ${columns}`,
      [expiresAt],
    );
  }

  /**
   * Purges a waiting delivery without sending it: the row is done and its recipients are
   * returned for their final fate. Held first by the caller or not, a row being sent is refused.
   */
  purge(id: string, lastError: string): Promise<QueueChange> {
    return this.change(
      id,
      `UPDATE deliveries d SET status = 'done', held_by = NULL, lease_until = NULL, next_attempt_at = NULL, last_error = $2, updated_at = now(),
              rcpts = '{}'
         FROM (SELECT id, rcpts AS purged FROM deliveries WHERE id = $1 FOR UPDATE) old
        WHERE d.id = old.id AND d.status IN ('publishing', 'queued', 'deferred', 'held')
        RETURNING d.id, d.message_id, d.tenant_id, d.destination, d.pool, d.mail_from, old.purged AS rcpts, d.status, d.held_by, d.attempt, d.next_attempt_at, d.last_error, d.created_at, d.expires_at, d.size`,
      [lastError],
      'unschedule',
    );
  }

  /**
   * Pauses a destination (for one tenant, or for everyone with tenantId null) and holds every
   * waiting delivery to it. Rows a sender holds finish their attempt; their retries are held.
   */
  async holdDestination(hold: { destination: string; tenantId: string | null; reason: string | null; actor: string }): Promise<{ hold: DestinationHold; held: number }> {
    return inTransaction(this.pool, async (client) => {
      const inserted = await client.query<{ id: string; created_at: Date }>(
        `INSERT INTO destination_holds (destination, tenant_id, reason, actor) VALUES ($1, $2, $3, $4)
         ON CONFLICT (destination, coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)) DO UPDATE SET reason = excluded.reason
         RETURNING id, created_at`,
        [hold.destination, hold.tenantId, hold.reason, hold.actor],
      );
      const held = await client.query(
        `UPDATE deliveries SET status = 'held', held_by = 'destination', lease_until = NULL, updated_at = now()
          WHERE destination = $1 AND ($2::uuid IS NULL OR tenant_id = $2) AND status IN ('publishing', 'queued', 'deferred')`,
        [hold.destination, hold.tenantId],
      );
      const row = inserted.rows[0]!;
      return { hold: { id: String(row.id), destination: hold.destination, tenantId: hold.tenantId, reason: hold.reason, actor: hold.actor, createdAt: row.created_at.toISOString() }, held: held.rowCount ?? 0 };
    });
  }

  /** Ends a pause: the rows it held become due retries (unless another pause still covers them). */
  async releaseDestination(destination: string, tenantId: string | null): Promise<{ released: number } | null> {
    const result = await inTransaction(this.pool, async (client) => {
      const deleted = await client.query(`DELETE FROM destination_holds WHERE destination = $1 AND tenant_id IS NOT DISTINCT FROM $2::uuid`, [destination, tenantId]);
      // Nothing deleted: nothing changes below either (the transaction commits an empty change).
      if ((deleted.rowCount ?? 0) === 0) return null;
      const released = await client.query(
        `UPDATE deliveries d SET status = 'deferred', held_by = NULL, next_attempt_at = now(), updated_at = now()
          WHERE d.destination = $1 AND ($2::uuid IS NULL OR d.tenant_id = $2) AND d.status = 'held' AND d.held_by = 'destination'
            AND NOT EXISTS (SELECT 1 FROM destination_holds h WHERE ${holdMatches})
          RETURNING d.id`,
        [destination, tenantId],
      );
      return { released: released.rowCount ?? 0, ids: released.rows.map((r: { id: string }) => r.id) };
    });
    if (!result) return null;
    await this.scheduleNow(result.ids.map((id) => ({ id, destination })));
    return { released: result.released };
  }

  /** One pause by id. */
  async getDestinationHold(id: string): Promise<DestinationHold | null> {
    const res = await this.pool.query<HoldRow>('SELECT id, destination, tenant_id, reason, actor, created_at FROM destination_holds WHERE id = $1', [id]);
    return res.rows[0] ? toHold(res.rows[0]) : null;
  }

  async listDestinationHolds(f: { tenantId?: string; tenantIds?: string[] }): Promise<DestinationHold[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (f.tenantId !== undefined) {
      params.push(f.tenantId);
      where.push(`(tenant_id = $${params.length} OR tenant_id IS NULL)`);
    }
    if (f.tenantIds !== undefined) {
      params.push(f.tenantIds);
      where.push(`(tenant_id = ANY($${params.length}::uuid[]) OR tenant_id IS NULL)`);
    }
    const res = await this.pool.query<HoldRow>(`SELECT id, destination, tenant_id, reason, actor, created_at FROM destination_holds ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC`, params);
    return res.rows.map(toHold);
  }

  /**
   * Holds the given new rows (still 'queued', nothing claimed them) whose destination is paused;
   * returns their ids. The router calls it before publishing first attempts.
   */
  async holdIfPaused(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const res = await this.pool.query<{ id: string }>(
      `UPDATE deliveries d SET status = 'held', held_by = 'destination', updated_at = now()
        WHERE d.id = ANY($1::uuid[]) AND d.status IN ('queued', 'publishing', 'deferred')
          AND EXISTS (SELECT 1 FROM destination_holds h WHERE ${holdMatches})
        RETURNING d.id`,
      [ids],
    );
    return new Set(res.rows.map((r) => r.id));
  }

  /**
   * Due retries to a paused destination become held instead of being published (a row that was
   * being sent when the pause began comes back deferred). The scheduler calls it every tick; with
   * no pause it costs one probe of an empty table.
   */
  async holdDuePaused(): Promise<number> {
    const res = await this.pool.query(
      `UPDATE deliveries d SET status = 'held', held_by = 'destination', updated_at = now()
        WHERE d.status = 'deferred' AND d.next_attempt_at <= now()
          AND EXISTS (SELECT 1 FROM destination_holds h WHERE ${holdMatches})`,
    );
    return res.rowCount ?? 0;
  }

  /** Whether any destination is paused at all (the router skips holdIfPaused when none is). */
  async anyDestinationHeld(): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM destination_holds LIMIT 1');
    return (res.rowCount ?? 0) > 0;
  }
}
