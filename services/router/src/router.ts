import { routingKeys, type AnyEvent, type DeliveryResultPayload, type MessageFilteredPayload, type Route, type TrackingKind } from '@moat/contracts';
import { uuidFrom, type Broker, type Logger } from '@moat/runtime';
import type { Delivery, NewDelivery } from '@moat/store';
import type { RouterDeliveries } from './batched-deliveries.js';
import { groupByDestination, recipientDomain, type Unrouted } from './destinations.js';
import type { RequestPublisher } from './requests.js';
import { decideResult, type ResultPolicy } from './result.js';

export interface RouterOptions {
  broker: Broker;
  /** The deliveries table; in the service the result path's statements are group-committed. */
  deliveries: RouterDeliveries;
  publisher: RequestPublisher;
  /** Routes of a protected domain, or null when it is not protected (cached by the caller). */
  findRoutes: (domain: string) => Promise<Route[] | null>;
  pool: string;
  policy: ResultPolicy;
  log: Logger;
  now?: () => Date;
  /**
   * Paused destinations (queue control): holds the given new rows whose destination is paused and
   * returns their ids, which are then not published. Absent: nothing is ever paused.
   */
  holdIfPaused?: (ids: string[]) => Promise<Set<string>>;
}

/**
 * The router's two consumers (queue `router`): message.filtered → deliveries, delivery.result →
 * done / retry / expired. Both are idempotent: ids derive from the input event, each row
 * transition is conditional on (id, attempt, status), and every event is published before the
 * state change that would make a redelivery skip it.
 */
export class DeliveryRouter {
  private readonly now: () => Date;

  constructor(private readonly opts: RouterOptions) {
    this.now = opts.now ?? (() => new Date());
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
      // No delivery is created (the quarantine itself belongs to the archive).
      const kind = p.verdict === 'quarantine' ? 'quarantined' : 'rejected';
      await this.publishTrackingEvent(uuidFrom(p.messageId, 'router', kind), p.messageId, p.tenantId, kind, p.rcptTo, { score: p.score, reasons: p.reasons });
      return;
    }
    const deliveries = await this.route(p);
    // First attempts are written 'queued' and published here. On a redelivered message.filtered
    // the attempt-1 rows still waiting for a sender are published again (the previous pass may
    // have died before its publish was confirmed; a sender claims an attempt once, so a second
    // request is harmless). Rows past that are with a sender or the scheduler already.
    const waiting = deliveries.filter((d) => d.attempt === 1 && (d.status === 'queued' || d.status === 'publishing'));
    const paused = this.opts.holdIfPaused && waiting.length > 0 ? await this.opts.holdIfPaused(waiting.map((d) => d.id)) : new Set<string>();
    await Promise.all(waiting.filter((d) => !paused.has(d.id)).map((d) => this.opts.publisher.publishAttempt(d)));
  }

  /**
   * The routing decision: the rows written by the first pass over this message, or, when there
   * is none yet, the rows of this pass (one round trip either way, see createForMessage).
   */
  private async route(p: MessageFilteredPayload): Promise<Delivery[]> {
    const routesByDomain = new Map<string, Route[] | null>();
    for (const rcpt of p.rcptTo) {
      const domain = recipientDomain(rcpt);
      if (domain !== null && !routesByDomain.has(domain)) routesByDomain.set(domain, await this.opts.findRoutes(domain));
    }
    const { groups, unrouted } = groupByDestination(p.rcptTo, (domain) => routesByDomain.get(domain) ?? null);
    if (unrouted.length > 0) {
      // Final fates of unroutable recipients are published before the rows are written: once
      // rows exist, a redelivered event is not routed again and could not publish them any more.
      // And only while no rows exist: a redelivery after a route change must not fail a
      // recipient that the first pass routed. (Rare, so this path keeps its extra SELECT.)
      const existing = await this.opts.deliveries.forMessage(p.messageId);
      if (existing.length > 0) return existing;
      await this.publishUnrouted(p, unrouted);
    }
    if (groups.length === 0) return [];
    const rows: NewDelivery[] = groups.map((g) => ({
      id: uuidFrom(p.messageId, g.destination),
      messageId: p.messageId,
      tenantId: p.tenantId,
      receivedAt: new Date(p.store.receivedAt),
      pool: this.opts.pool,
      destination: g.destination,
      routes: g.routes,
      mailFrom: p.mailFrom,
      rcpts: g.rcpts,
      prependHeaders: p.prependHeaders,
      size: Buffer.byteLength(p.prependHeaders) + p.size,
    }));
    const { deliveries } = await this.opts.deliveries.createForMessage(p.messageId, rows);
    return deliveries;
  }

  private async publishUnrouted(p: MessageFilteredPayload, unrouted: Unrouted[]): Promise<void> {
    const byReason = new Map<string, string[]>();
    for (const u of unrouted) {
      // Outbound mail to other organisations' domains is routed by MX, which this router does
      // not do yet: say so instead of calling the domain "deleted".
      const reason = u.cause === 'not-protected' && p.direction === 'outbound' ? `${u.reason}; delivery to external domains (MX routing) is not available` : u.reason;
      byReason.set(reason, [...(byReason.get(reason) ?? []), u.rcpt]);
    }
    for (const [reason, rcpts] of byReason) {
      await this.publishTrackingEvent(uuidFrom(p.messageId, 'router', 'unrouted', reason), p.messageId, p.tenantId, 'failed', rcpts, { reason });
    }
  }

  async onResult(r: DeliveryResultPayload): Promise<void> {
    const row = await this.opts.deliveries.get(r.deliveryId);
    if (!row || row.attempt !== r.attempt || row.status === 'done') {
      this.opts.log.debug({ deliveryId: r.deliveryId, attempt: r.attempt, rowAttempt: row?.attempt, status: row?.status }, 'duplicate or superseded delivery.result; ignoring');
      return;
    }
    const decision = decideResult(row, r, this.now(), this.opts.policy);
    // Published before the row changes: if the update below is lost (crash), the redelivered
    // result publishes the same event ids again; the other way round a fate could vanish.
    for (const e of decision.events) await this.publishTrackingEvent(e.id, row.messageId, row.tenantId, e.kind, e.rcpt, e.detail);
    const applied = await this.opts.deliveries.applyResult(row.id, row.attempt, decision.application);
    this.opts.log.debug(
      { deliveryId: row.id, attempt: row.attempt, finished: decision.finished.length, remaining: decision.remaining.length, status: decision.application.status, applied },
      'delivery result applied',
    );
  }
}
