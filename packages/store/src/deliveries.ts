import { deliveryResultPayload, type DeliveryResultPayload, type Route } from '@moat/contracts';
import type { Pool } from '@moat/runtime';
import type { SealedBodyRow } from './message-store.js';

/**
 * The delivery queue's durable truth: one row per (message, destination). The router creates
 * rows and schedules attempts; a sender claims one attempt at a time. Every transition is a
 * single conditional UPDATE on (id, attempt, status), so a duplicate or stale event changes
 * nothing and two processes can never both own an attempt.
 *
 *   (routed) ─────────────────────────┐
 *                                     ▼
 *   publishing ─(request confirmed)─► queued ─(sender claim)─► sending ─(result)─► done
 *        ▲                                                        │          └──► deferred ─(due)─┐
 *        └──────────── scheduler: due retry / expired lease ◄─────┴────────────────────────────────┘
 *
 * First attempts are written 'queued' directly (the router re-publishes them while its input
 * event is redelivered); later attempts go through 'publishing' under a lease.
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
  /** An operator's extended lifetime (queue control); null: created_at + the router's lifetime. */
  expiresAt: Date | null;
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
  expires_at?: Date | null;
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
    expiresAt: r.expires_at ?? null,
  };
}

/** `now() + ms` in SQL, with ms as an integer parameter. */
const plusMs = (param: string) => `now() + (${param}::integer * interval '1 millisecond')`;

/** True when the row already holds the outcome of its current attempt. */
const hasOutcomeForAttempt = (alias = '') => `coalesce((${alias}outcome->>'attempt')::integer = ${alias}attempt, false)`;

/** A sender's claim of (id $1, attempt $2) for $3 ms; see DeliveryRepository.claim. */
const claimStatement = `UPDATE deliveries SET status = 'sending', lease_until = ${plusMs('$3')}, updated_at = now()
    WHERE id = $1 AND attempt = $2
      AND (status IN ('publishing', 'queued') OR (status = 'sending' AND lease_until < now()))
      AND NOT ${hasOutcomeForAttempt()}
    RETURNING *`;

/** One attempt of one delivery, as a batched statement takes it. */
export interface AttemptKey {
  id: string;
  attempt: number;
}

/**
 * The indices of `items` whose (id, attempt) is the first of its kind in the batch. A batched
 * UPDATE … FROM joins a target row with every matching input row but changes it only once, so
 * a pair that occurs twice in one batch must go in once: the later copies get the answer a
 * second single-row statement would have got (nothing claimed, nothing applied).
 */
function firstOfEachAttempt(items: readonly AttemptKey[]): number[] {
  const seen = new Set<string>();
  const firsts: number[] = [];
  items.forEach((item, i) => {
    const key = `${item.id}/${item.attempt}`;
    if (seen.has(key)) return;
    seen.add(key);
    firsts.push(i);
  });
  return firsts;
}

/** true for the first item of each (id, attempt) the statement returned, false for the rest. */
function answerOncePerAttempt(items: readonly AttemptKey[], returned: readonly AttemptKey[]): boolean[] {
  const done = new Set(returned.map((r) => `${r.id}/${r.attempt}`));
  return items.map((item) => done.delete(`${item.id}/${item.attempt}`));
}

/**
 * Locks the rows of a batch in id order (LockRows sits above the Sort), and the UPDATE that joins
 * `locked` can change a row only after this CTE locked it: two batches that share rows wait for
 * each other instead of deadlocking. The UPDATE's own conditions are still checked against the
 * newest row version (READ COMMITTED re-check), exactly as for a single-row UPDATE.
 * $1 is the batch's ids (uuid[]).
 */
const lockInIdOrder = `locked AS MATERIALIZED (SELECT id FROM deliveries WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)`;

/** The sealed body columns a claim reads together with the row. */
type ClaimedRowRaw = DeliveryRowRaw & { key_id: string | null; wrapped_key: Buffer | null; iv: Buffer | null; tag: Buffer | null; body: Buffer | null };

function toClaimed(row: ClaimedRowRaw): { delivery: Delivery; body: SealedBodyRow | null } {
  const { key_id, wrapped_key, iv, tag, body } = row;
  const sealed = key_id !== null && wrapped_key !== null && iv !== null && tag !== null && body !== null ? { key_id, wrapped_key, iv, tag, body } : null;
  return { delivery: toDelivery(row), body: sealed };
}

/** A new row as route_messages reads it (jsonb_to_recordset columns). */
function routeRowJson(d: NewDelivery) {
  return {
    id: d.id,
    tenant_id: d.tenantId,
    received_at: d.receivedAt.toISOString(),
    pool: d.pool,
    destination: d.destination,
    routes: d.routes,
    mail_from: d.mailFrom,
    rcpts: d.rcpts,
    prepend_headers: d.prependHeaders,
    size: d.size,
  };
}

export class DeliveryRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Records the routing decision for a message (or one part of a split message) in one round trip
   * (function route_messages, migrations 1732700006000 and 1732700025000): all its deliveries at
   * once, or none. Serialised per message (advisory lock), and done at most once per (message,
   * part): when rows for it already exist (a redelivered message.filtered, or a second router
   * racing this one), nothing is inserted and the existing rows are returned, so a route change
   * between two passes can never produce a second, differently keyed delivery of the same
   * recipients. `part` is message.filtered's `split.part`; absent: the whole message.
   * New rows are attempt 1 and already 'queued' (no lease): the caller publishes their requests
   * next, and re-publishes attempt-1 rows still 'queued' when the input event comes back.
   */
  async createForMessage(messageId: string, rows: NewDelivery[], part?: string): Promise<{ created: boolean; deliveries: Delivery[] }> {
    if (rows.some((d) => d.messageId !== messageId)) throw new Error('createForMessage: every row must belong to the message');
    const [answer] = await this.createForMessages([{ messageId, rows, ...(part === undefined ? {} : { part }) }]);
    return answer!;
  }

  /**
   * createForMessage() for many messages in ONE statement (function route_messages): each message
   * exactly as alone (its advisory lock, at most one routing decision per part, existing rows
   * returned), one answer per item, in order. A message part that occurs twice is routed by its
   * first occurrence; the second gets those rows with created = false.
   */
  async createForMessages(items: readonly { messageId: string; rows: NewDelivery[]; part?: string }[]): Promise<{ created: boolean; deliveries: Delivery[] }[]> {
    if (items.length === 0) return [];
    for (const item of items) {
      if (item.rows.some((d) => d.messageId !== item.messageId)) throw new Error('createForMessages: every row must belong to its message');
    }
    const json = items.map((item) => ({ message_id: item.messageId, part: item.part ?? '', rows: item.rows.map(routeRowJson) }));
    const res = await this.pool.query<DeliveryRowRaw & { ordinal: number; created: boolean }>('SELECT r.ordinal, r.created, (r.delivery).* FROM route_messages($1) r', [JSON.stringify(json)]);
    const byItem = items.map(() => [] as (DeliveryRowRaw & { created: boolean })[]);
    for (const row of res.rows) byItem[row.ordinal - 1]?.push(row);
    return items.map((item, i) => {
      const rows = byItem[i]!;
      const created = rows.length > 0 ? rows.every((r) => r.created) : item.rows.length === 0;
      return { created, deliveries: rows.map(toDelivery) };
    });
  }

  async get(id: string): Promise<Delivery | null> {
    const res = await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE id = $1', [id]);
    return res.rows[0] ? toDelivery(res.rows[0]) : null;
  }

  /** A message's deliveries: every part's, or, given `part` ('' for a whole message), that part's only. */
  async forMessage(messageId: string, part?: string): Promise<Delivery[]> {
    const res =
      part === undefined
        ? await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE message_id = $1 ORDER BY created_at, id', [messageId])
        : await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE message_id = $1 AND part = $2 ORDER BY created_at, id', [messageId, part]);
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
    const res = await this.pool.query<DeliveryRowRaw>(claimStatement, [id, attempt, leaseMs]);
    return res.rows[0] ? toDelivery(res.rows[0]) : null;
  }

  /**
   * claim() and the read of the message's sealed body in one round trip. `body` is null when the
   * claim succeeded but the message is no longer in the store (retention, deleted). The claim
   * and the read are one statement: if it fails, nothing was claimed.
   */
  async claimWithBody(id: string, attempt: number, leaseMs: number): Promise<{ delivery: Delivery; body: SealedBodyRow | null } | null> {
    const res = await this.pool.query<ClaimedRowRaw>(
      `WITH c AS (${claimStatement})
       SELECT c.*, m.key_id, m.wrapped_key, m.iv, m.tag, m.body
         FROM c LEFT JOIN messages m ON m.received_at = c.received_at AND m.id = c.message_id`,
      [id, attempt, leaseMs],
    );
    const row = res.rows[0];
    return row ? toClaimed(row) : null;
  }

  /**
   * claimWithBody() for many attempts in ONE statement (group commit: a sender's concurrent
   * requests share a round trip and a commit). Each (id, attempt) is claimed for its own lease
   * under exactly the conditions of claim(); the result has one entry per item, in order: the
   * claimed row with its sealed body, or null when that attempt was not claimed (a later copy of
   * a pair in the same batch included). One statement: if it fails, nothing was claimed.
   */
  async claimManyWithBody(items: readonly (AttemptKey & { leaseMs: number })[]): Promise<({ delivery: Delivery; body: SealedBodyRow | null } | null)[]> {
    const firsts = firstOfEachAttempt(items).map((i) => items[i]!);
    if (firsts.length === 0) return items.map(() => null);
    const res = await this.pool.query<ClaimedRowRaw>(
      `WITH ${lockInIdOrder},
       c AS (
         UPDATE deliveries d SET status = 'sending', lease_until = ${plusMs('u.lease_ms')}, updated_at = now()
           FROM unnest($1::uuid[], $2::integer[], $3::integer[]) AS u(id, attempt, lease_ms), locked
          WHERE d.id = locked.id AND d.id = u.id AND d.attempt = u.attempt
            AND (d.status IN ('publishing', 'queued') OR (d.status = 'sending' AND d.lease_until < now()))
            AND NOT ${hasOutcomeForAttempt('d.')}
         RETURNING d.*)
       SELECT c.*, m.key_id, m.wrapped_key, m.iv, m.tag, m.body
         FROM c LEFT JOIN messages m ON m.received_at = c.received_at AND m.id = c.message_id`,
      [firsts.map((k) => k.id), firsts.map((k) => k.attempt), firsts.map((k) => k.leaseMs)],
    );
    const claimed = new Map(res.rows.map((r) => [`${r.id}/${r.attempt}`, r]));
    return items.map((item) => {
      const key = `${item.id}/${item.attempt}`;
      const row = claimed.get(key);
      if (!row) return null;
      // A pair is handed out once: later copies in the same batch were not claimed.
      claimed.delete(key);
      return toClaimed(row);
    });
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
      `UPDATE deliveries SET outcome = $3
        WHERE id = $1 AND attempt = $2 AND status = 'sending'`,
      [id, attempt, JSON.stringify(outcome)],
    );
    return res.rowCount === 1;
  }

  /**
   * recordOutcome() for many attempts in ONE statement; one boolean per item, in order (false:
   * the claim was lost, or the pair occurred earlier in the same batch).
   */
  async recordOutcomes(items: readonly { id: string; attempt: number; result: DeliveryResultPayload }[]): Promise<boolean[]> {
    const firsts = firstOfEachAttempt(items).map((i) => items[i]!);
    if (firsts.length === 0) return items.map(() => false);
    const res = await this.pool.query<{ id: string; attempt: number }>(
      `WITH ${lockInIdOrder}
       UPDATE deliveries d SET outcome = u.outcome::jsonb
         FROM unnest($1::uuid[], $2::integer[], $3::text[]) AS u(id, attempt, outcome), locked
        WHERE d.id = locked.id AND d.id = u.id AND d.attempt = u.attempt AND d.status = 'sending'
        RETURNING d.id, d.attempt`,
      [firsts.map((o) => o.id), firsts.map((o) => o.attempt), firsts.map((o) => JSON.stringify({ attempt: o.attempt, result: o.result } satisfies DeliveryOutcome))],
    );
    return answerOncePerAttempt(items, res.rows);
  }

  /** get() for many ids in one statement; one entry per id, in order (null: no such row). */
  async getMany(ids: readonly string[]): Promise<(Delivery | null)[]> {
    if (ids.length === 0) return [];
    const res = await this.pool.query<DeliveryRowRaw>('SELECT * FROM deliveries WHERE id = ANY($1::uuid[])', [[...new Set(ids)]]);
    const byId = new Map(res.rows.map((r) => [r.id, r]));
    return ids.map((id) => {
      const row = byId.get(id);
      return row ? toDelivery(row) : null;
    });
  }

  /**
   * applyResult() for many results in ONE statement, each under exactly its conditions (its
   * attempt, status not 'done'); one boolean per item, in order. A result that occurs twice in
   * the batch is applied once (the later copy answers false, as it would have alone).
   */
  async applyResults(items: readonly { id: string; attempt: number; change: ResultApplication }[]): Promise<boolean[]> {
    const firsts = firstOfEachAttempt(items).map((i) => items[i]!);
    if (firsts.length === 0) return items.map(() => false);
    const json = firsts.map((o) => ({
      id: o.id,
      attempt: o.attempt,
      rcpts: o.change.rcpts,
      status: o.change.status,
      next_attempt: o.change.nextAttempt,
      next_attempt_at: o.change.nextAttemptAt?.toISOString() ?? null,
      last_error: o.change.lastError,
    }));
    const res = await this.pool.query<{ id: string; attempt: number }>(
      `WITH ${lockInIdOrder}
       UPDATE deliveries d
          SET rcpts = u.rcpts, status = u.status, attempt = CASE WHEN u.next_attempt THEN d.attempt + 1 ELSE d.attempt END,
              next_attempt_at = u.next_attempt_at, lease_until = NULL, last_error = u.last_error, updated_at = now()
         FROM jsonb_to_recordset($2::jsonb) AS u(id uuid, attempt integer, rcpts text[], status text, next_attempt boolean, next_attempt_at timestamptz, last_error text), locked
        WHERE d.id = locked.id AND d.id = u.id AND d.attempt = u.attempt AND d.status <> 'done'
        RETURNING d.id, u.attempt`,
      [firsts.map((o) => o.id), JSON.stringify(json)],
    );
    return answerOncePerAttempt(items, res.rows);
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
   * Scheduler (a) with the schedule in Redis: the claimed ids whose row is still deferred and due
   * become 'publishing' under a lease. Rows that moved on (published, held, done) are not taken.
   */
  async takeDueByIds(ids: readonly string[], leaseMs: number): Promise<Delivery[]> {
    if (ids.length === 0) return [];
    const res = await this.pool.query<DeliveryRowRaw>(
      `UPDATE deliveries SET status = 'publishing', lease_until = ${plusMs('$2')}, updated_at = now()
        WHERE id = ANY($1::uuid[]) AND status = 'deferred' AND next_attempt_at <= now()
        RETURNING *`,
      [[...new Set(ids)], leaseMs],
    );
    return res.rows.map(toDelivery);
  }

  /**
   * First attempts to a destination that is down wait with its backlog instead of being published
   * (destination back-off): 'queued' attempt-1 rows become 'deferred', due now. Returns the ids
   * changed.
   */
  async deferNew(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const res = await this.pool.query<{ id: string }>(
      `UPDATE deliveries SET status = 'deferred', next_attempt_at = now(), lease_until = NULL, updated_at = now()
        WHERE id = ANY($1::uuid[]) AND attempt = 1 AND status IN ('queued', 'publishing')
        RETURNING id`,
      [[...new Set(ids)]],
    );
    return res.rows.map((r) => r.id);
  }

  /**
   * Deferred rows in schedule order, a page at a time (keyset on next_attempt_at, id): what the
   * router rebuilds the Redis schedule from, and checks it against. `dueBefore` limits the scan to
   * rows due before then.
   */
  async deferredPage(after: { at: Date; id: string } | null, limit: number, dueBefore?: Date): Promise<{ id: string; destination: string; nextAttemptAt: Date }[]> {
    const res = await this.pool.query<{ id: string; destination: string; next_attempt_at: Date }>(
      `SELECT id, destination, next_attempt_at FROM deliveries
        WHERE status = 'deferred'
          AND ($1::timestamptz IS NULL OR (next_attempt_at, id) > ($1::timestamptz, $2::uuid))
          AND ($4::timestamptz IS NULL OR next_attempt_at <= $4::timestamptz)
        ORDER BY next_attempt_at, id LIMIT $3`,
      [after?.at ?? null, after?.id ?? null, limit, dueBefore ?? null],
    );
    return res.rows.map((r) => ({ id: r.id, destination: r.destination, nextAttemptAt: r.next_attempt_at }));
  }

  /**
   * Deferred rows overdue since before `overdueBefore` whose queue lifetime is over (the tenant's
   * lifetime, or `defaultLifetimeMs`, or an operator's extension): a destination that stayed down
   * gives most of its deliveries no attempt to expire after, so the router expires these itself.
   */
  async expiredDeferred(batch: number, overdueBefore: Date, defaultLifetimeMs: number): Promise<Delivery[]> {
    const res = await this.pool.query<DeliveryRowRaw>(
      `SELECT d.* FROM deliveries d LEFT JOIN tenants t ON t.id = d.tenant_id
        WHERE d.status = 'deferred' AND d.next_attempt_at <= $2
          AND coalesce(d.expires_at, d.created_at + coalesce(t.queue_lifetime_ms, $3::bigint) * interval '1 millisecond') < now()
        ORDER BY d.next_attempt_at LIMIT $1`,
      [batch, overdueBefore, defaultLifetimeMs],
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
