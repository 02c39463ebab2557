import { routingKeys, type AnyEvent, type DeliveryResultPayload, type MessageFilteredPayload, type Route, type TrackingKind } from '@moat/contracts';
import { uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { Delivery, MessageStore, NewDelivery } from '@moat/store';
import type { RouterDeliveries } from './batched-deliveries.js';
import { deliveryIdFor, groupByDestination, recipientDomain, routeSourceFor, type RoutingInput, type Unrouted } from './destinations.js';
import { DsnIssuer } from './dsn-issuer.js';
import type { MailRoutes } from './mx.js';
import { fateEvents, noticeFor } from './notices.js';
import type { RequestPublisher } from './requests.js';
import { asDeferred, refusesPool } from './pool-choice.js';
import { decideResult, type ResultPolicy } from './result.js';
import type { ScheduleKeeper } from './schedule-keeper.js';

/** A tenant's result policy and delay-warning threshold (its own settings over the router's defaults). */
export type TenantDeliveryPolicy = ResultPolicy & { delayWarningMs: number };

export interface RouterOptions {
  broker: Broker;
  /** The deliveries table; in the service the result path's statements are group-committed. */
  deliveries: RouterDeliveries;
  publisher: RequestPublisher;
  /** A protected domain's tenant and routes, or null when it is not protected (cached by the caller). */
  findRoutes: (domain: string) => Promise<{ tenantId: string; routes: Route[] } | null>;
  /**
   * MX routing (RFC 5321 §5.1) of a domain Moat does not protect: outbound mail and DSNs. Without
   * it such recipients fail as unroutable.
   */
  mailRoutes?: (domain: string) => Promise<MailRoutes>;
  /** DSNs: where the originals are read and the DSNs stored, and who signs them. Without it none are sent. */
  bounces?: {
    store: Pick<MessageStore, 'get' | 'put'>;
    reportingMta: string;
    /** One delay warning per delivery still deferred this long after routing; 0: none. */
    delayWarningMs: number;
    /** The deliveries of a message (unbatched: only delay warnings ask). */
    deliveriesOf: (messageId: string) => Promise<Delivery[]>;
  };
  pool: string;
  /** The default policy; `policyFor` gives a tenant's own when it has one. */
  policy: ResultPolicy;
  policyFor?: (tenantId: string) => Promise<TenantDeliveryPolicy>;
  /** The Redis retry schedule and destination health; absent: Postgres alone schedules retries. */
  keeper?: ScheduleKeeper;
  log: Logger;
  now?: () => Date;
  /**
   * Paused destinations (queue control): holds the given new rows whose destination is paused and
   * returns their ids, which are then not published. Absent: nothing is ever paused.
   */
  holdIfPaused?: (ids: string[]) => Promise<Set<string>>;
  /** The destination refused the pool of this result (pool-choice.ts refusesPool): avoid the pair. */
  onPoolRefused?: (pool: string, destination: string) => Promise<void>;
}

/**
 * The router's two consumers (queue `router`): message.filtered → deliveries, delivery.result →
 * done / retry / expired, and DSNs for what failed. Both are idempotent: ids derive from the
 * input event, each row transition is conditional on (id, attempt, status), and every event (and
 * DSN) is published before the state change that would make a redelivery skip it.
 */
export class DeliveryRouter {
  private readonly now: () => Date;
  private readonly dsn: DsnIssuer | null;

  constructor(private readonly opts: RouterOptions) {
    this.now = opts.now ?? (() => new Date());
    const b = opts.bounces;
    this.dsn = b
      ? new DsnIssuer({
          broker: opts.broker,
          store: b.store,
          routeAndPublish: (input) => this.routeAndPublish(input),
          deliveriesOf: b.deliveriesOf,
          reportingMta: b.reportingMta,
          log: opts.log,
        })
      : null;
  }

  async handle(event: AnyEvent): Promise<void> {
    if (event.type === 'message.filtered') return this.onFiltered(event.payload);
    if (event.type === 'delivery.result') return this.onResult(event.payload);
    this.opts.log.warn({ type: event.type, eventId: event.id }, 'router queue got an event it does not handle; ignoring');
  }

  private async publishTrackingEvent(id: string, messageId: string, tenantId: string, kind: TrackingKind, rcpt: string[], detail: Record<string, unknown>): Promise<void> {
    const { broker } = this.opts;
    await broker.publish(routingKeys.messageEvent, broker.envelope('message.event', { messageId, tenantId, kind, rcpt, detail }, id));
  }

  async onFiltered(p: MessageFilteredPayload): Promise<void> {
    if (p.verdict !== 'deliver') {
      // Quarantine and reject are decided by the filter; the router only makes them visible.
      // No delivery is created (the quarantine itself belongs to the archive). A rejected
      // message was accepted at SMTP time, so its sender is told with a DSN (Promise 2: nothing
      // disappears silently), before the event that records the fate (a redelivered verdict
      // rebuilds the same DSN, keyed by the message id).
      const kind = p.verdict === 'quarantine' ? 'quarantined' : 'rejected';
      const dsnMessageId = p.verdict === 'reject' ? await this.bounceRejected(p) : null;
      await this.publishTrackingEvent(uuidFrom(p.messageId, 'router', kind), p.messageId, p.tenantId, kind, p.rcptTo, { score: p.score, reasons: p.reasons, ...(p.verdict === 'reject' ? { dsnMessageId } : {}) });
      return;
    }
    await this.routeAndPublish({
      messageId: p.messageId,
      tenantId: p.tenantId,
      receivedAt: new Date(p.store.receivedAt),
      direction: p.direction,
      mailFrom: p.mailFrom,
      rcptTo: p.rcptTo,
      prependHeaders: p.prependHeaders,
      size: Buffer.byteLength(p.prependHeaders) + p.size,
      // A split message's delivered part routes as the whole message would (its ids, its "routed
      // already?" key): if the tenant's lists changed between a first pass that delivered the whole
      // message and a redelivery that splits it, nothing is delivered twice. Any other part (a
      // released quarantine part) is routed under its own key.
      ...(p.split && p.split.part !== 'deliver' ? { part: p.split.part } : {}),
    });
  }

  /** The DSN for a rejected message, or null when none can be sent (null or domainless sender, DSNs not configured). */
  private async bounceRejected(p: MessageFilteredPayload): Promise<string | null> {
    if (!rejectionNeedsDsn(p.mailFrom)) return null;
    if (!this.dsn) {
      this.opts.log.warn({ messageId: p.messageId }, 'message rejected by the filter, but DSNs are not configured: the sender is not told');
      return null;
    }
    return this.dsn.issueRejection(p);
  }

  /**
   * Routes a message (a filtered one, or a DSN) and publishes its first attempts. First attempts
   * are written 'queued' and published here. When the same message comes again (a redelivered
   * message.filtered, a DSN re-issued after a crash) the attempt-1 rows still waiting for a
   * sender are published again (the previous pass may have died before its publish was
   * confirmed; a sender claims an attempt once, so a second request is harmless). Rows past that
   * are with a sender or the scheduler already.
   */
  async routeAndPublish(input: RoutingInput): Promise<void> {
    const deliveries = await this.route(input);
    const waiting = deliveries.filter((d) => d.attempt === 1 && (d.status === 'queued' || d.status === 'publishing'));
    // A paused destination (queue control) gets its rows held instead of published.
    const paused = this.opts.holdIfPaused && waiting.length > 0 ? await this.opts.holdIfPaused(waiting.map((d) => d.id)) : new Set<string>();
    // A destination that is down gets new mail queued behind its backlog, not published.
    const unpaused = waiting.filter((d) => !paused.has(d.id));
    const backedOff = this.opts.keeper ? await this.opts.keeper.holdForDownDestinations(unpaused) : new Set<string>();
    await Promise.all(unpaused.filter((d) => !backedOff.has(d.id)).map((d) => this.opts.publisher.publishAttempt(d)));
  }

  /**
   * The routing decision: the rows written by the first pass over this message, or, when there
   * is none yet, the rows of this pass (one round trip either way, see createForMessage).
   * Inbound: a protected domain goes to its routes. Outbound (relayed mail, DSNs): the tenant's
   * own protected domains to its routes, every other domain to its MX (routeSourceFor), resolved
   * now so that recipients share a transaction per MX set. When DNS gives no
   * usable answer now, the recipients of that domain still get a row, resolved again at each
   * attempt (see unresolved.ts): a DNS outage defers them, a definitive answer fails (and
   * bounces) them through the same path as a server's 5xx.
   */
  private async route(p: RoutingInput): Promise<Delivery[]> {
    const domains = [...new Set(p.rcptTo.map(recipientDomain).filter((d): d is string => d !== null))];
    const answers = await Promise.all(
      domains.map(async (domain): Promise<Route[] | 'resolve-later' | null> => {
        const found = await this.opts.findRoutes(domain);
        const source = routeSourceFor(p.direction, p.tenantId, found?.tenantId ?? null);
        if (source === 'routes') return found!.routes;
        if (source === 'unrouted' || !this.opts.mailRoutes) return null;
        const mx = await this.opts.mailRoutes(domain);
        return mx.kind === 'routes' ? mx.routes : 'resolve-later';
      }),
    );
    const routesByDomain = new Map(domains.map((d, i) => [d, answers[i]!]));
    const { groups, unrouted } = groupByDestination(p.rcptTo, (domain) => routesByDomain.get(domain) ?? null);
    if (unrouted.length > 0) {
      // Final fates of unroutable recipients are published before the rows are written: once
      // rows exist, a redelivered event is not routed again and could not publish them any more.
      // And only while no rows exist: a redelivery after a route change must not fail a
      // recipient that the first pass routed. (Rare, so this path keeps its extra SELECT.)
      const existing = await this.opts.deliveries.forMessage(p.messageId, p.part ?? '');
      if (existing.length > 0) return existing;
      await this.publishUnrouted(p, unrouted);
    }
    if (groups.length === 0) return [];
    const rows: NewDelivery[] = groups.map((g) => ({
      id: deliveryIdFor(p.messageId, g.destination, p.part),
      messageId: p.messageId,
      tenantId: p.tenantId,
      receivedAt: p.receivedAt,
      pool: this.opts.pool,
      destination: g.destination,
      routes: g.routes,
      mailFrom: p.mailFrom,
      rcpts: g.rcpts,
      prependHeaders: p.prependHeaders,
      size: p.size,
    }));
    const { deliveries } = await this.opts.deliveries.createForMessage(p.messageId, rows, p.part);
    return deliveries;
  }

  private async publishUnrouted(p: RoutingInput, unrouted: Unrouted[]): Promise<void> {
    const byReason = new Map<string, string[]>();
    for (const u of unrouted) byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u.rcpt]);
    for (const [reason, rcpts] of byReason) {
      const id = p.part === undefined ? uuidFrom(p.messageId, 'router', 'unrouted', reason) : uuidFrom(p.messageId, 'router', 'unrouted', reason, p.part);
      await this.publishTrackingEvent(id, p.messageId, p.tenantId, 'failed', rcpts, { reason });
    }
  }

  async onResult(r: DeliveryResultPayload, opts: { notAttempted?: boolean } = {}): Promise<void> {
    const row = await this.opts.deliveries.get(r.deliveryId);
    if (!row || row.attempt !== r.attempt || row.status === 'done') {
      this.opts.log.debug({ deliveryId: r.deliveryId, attempt: r.attempt, rowAttempt: row?.attempt, status: row?.status }, 'duplicate or superseded delivery.result; ignoring');
      return;
    }
    const now = this.now();
    const policy = this.opts.policyFor ? await this.opts.policyFor(row.tenantId) : { ...this.opts.policy, delayWarningMs: this.opts.bounces?.delayWarningMs ?? 0 };
    const keeper = this.opts.keeper;
    // A destination that refuses the pool (its firewall, or "client host rejected") said nothing
    // about the recipients: they are retried, and the next attempt goes through another pool.
    const refused = !opts.notAttempted && this.opts.onPoolRefused !== undefined && refusesPool(r);
    if (refused) await this.opts.onPoolRefused!(r.pool, r.destination).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not record the refused pool'));
    // Destination health: a server that is down backs off as a whole (all its deliveries wait for
    // one probe); an answer ends that. Redis away: no back-off, nothing lost.
    if (keeper && !opts.notAttempted) await keeper.observe(r).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message }, 'could not record destination health'));
    const decision = decideResult(row, refused ? asDeferred(r) : r, now, policy);
    // The DSN, then the tracking events, then the row: everything before the row changes, since
    // a redelivered result (router killed in between) is ignored once the row has moved on. Each
    // step is idempotent (deterministic ids), so the redelivery repeats them harmlessly and the
    // DSN is delivered once.
    const notice = this.dsn ? noticeFor(row, r, decision, now, { delayWarningMs: policy.delayWarningMs, lifetimeMs: policy.lifetimeMs }) : null;
    if (notice) await this.dsn!.issue(row, r, notice);
    // Published before the row changes: if the update below is lost (crash), the redelivered
    // result publishes the same event ids again; the other way round a fate could vanish.
    for (const e of fateEvents(row, decision, notice)) await this.publishTrackingEvent(e.id, row.messageId, row.tenantId, e.kind, e.rcpt, e.detail);
    const app = decision.application;
    // Scheduled before the row is deferred: a crash in between leaves an entry whose row did not
    // change (dropped when claimed), never a deferred row the schedule does not know.
    if (keeper && app.status === 'deferred' && app.nextAttemptAt) {
      await keeper.deferred(row, r, app.nextAttemptAt, decision.remaining).catch((err: unknown) => this.opts.log.warn({ err: (err as Error).message, deliveryId: row.id }, 'could not schedule the retry in redis; the sweep will'));
    }
    const applied = await this.opts.deliveries.applyResult(row.id, row.attempt, app);
    if (keeper && applied && app.status !== 'deferred') await keeper.finished(row).catch(() => {});
    this.opts.log.debug(
      { deliveryId: row.id, attempt: row.attempt, finished: decision.finished.length, remaining: decision.remaining.length, status: app.status, dsn: notice?.action ?? null, applied },
      'delivery result applied',
    );
  }

  /**
   * Deliveries whose queue lifetime ran out while their destination kept them waiting (backed
   * off, so never attempted): expired as if an attempt had been deferred now, with the last error
   * they had, a DSN to the sender and tracking. Idempotent like any result.
   */
  async expireWaiting(rows: readonly Delivery[]): Promise<void> {
    const now = this.now().toISOString();
    for (const row of rows) {
      const text = `not attempted before the queue lifetime ran out; last error: ${row.lastError ?? 'destination unavailable'}`;
      await this.onResult(
        {
          deliveryId: row.id,
          attempt: row.attempt,
          messageId: row.messageId,
          tenantId: row.tenantId,
          pool: row.pool,
          destination: row.destination,
          sourceIp: null,
          remoteHost: null,
          tls: false,
          startedAt: now,
          finishedAt: now,
          recipients: row.rcpts.map((rcpt) => ({ rcpt, outcome: 'deferred' as const, reply: { code: null, enhanced: '4.4.1', text } })),
          error: text,
        },
        { notAttempted: true },
      );
    }
  }
}

/**
 * Whether the sender of a rejected message gets a DSN (pure): not the null reverse-path (a DSN
 * or other notification is never answered with one, RFC 5321 §4.5.5), nor an address without a
 * domain (nowhere to send it).
 */
export function rejectionNeedsDsn(mailFrom: string): boolean {
  return mailFrom !== '' && recipientDomain(mailFrom) !== null;
}
