import { isIP } from 'node:net';
import type { DeliveryRequestedPayload, DeliveryResultPayload, RecipientResult, Route } from '@moat/contracts';
import type { DnsResolve, Logger } from '@moat/runtime';
import { DestinationBusy, type ConnectionPool } from './connection-pool.js';
import { localReply, outcomeOf } from './reply.js';
import { orderRoutes, routeLabel } from './route-order.js';
import { ConnectFailure, SmtpSession, type SessionOptions } from './smtp-session.js';

export interface DelivererOptions {
  pool: ConnectionPool<SmtpSession>;
  session: SessionOptions;
  /** DNS for route host names (never the machine's resolver in tests). */
  resolve: DnsResolve;
  /** Upper bound on one attempt, all routes included (kept below the queue's handler timeout). */
  attemptBudgetMs: number;
  log: Logger;
  random?: () => number;
}

/** Why a route could not be used, for the result's `error`. */
function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One delivery attempt: ONE SMTP transaction carrying all the request's recipients, to the first
 * route that takes a session (RFC 5321 §5.1: try the next host when one cannot be reached; a 4xx
 * or 5xx greeting counts as unreachable, as in Postfix's smtp_skip_5xx_greeting). Once a
 * transaction has started, the replies inside it are final for this attempt: no other route is
 * tried, because the first server may already have taken the message.
 */
export class Deliverer {
  private readonly random: () => number;

  constructor(private readonly opts: DelivererOptions) {
    this.random = opts.random ?? Math.random;
  }

  async deliver(req: DeliveryRequestedPayload, body: Buffer): Promise<DeliveryResultPayload> {
    const startedAt = new Date();
    const budgetEnd = startedAt.getTime() + this.opts.attemptBudgetMs;
    const routeErrors: string[] = [];
    let lastTried: string | null = null;
    let busy = false;
    for (const route of orderRoutes(req.routes, this.random)) {
      if (Date.now() >= budgetEnd) {
        routeErrors.push('attempt time budget exhausted');
        break;
      }
      const label = routeLabel(route);
      lastTried = label;
      let lease;
      try {
        lease = await this.opts.pool.acquire(label, () => this.open(route));
      } catch (err) {
        routeErrors.push(`${label}: ${describe(err)}`);
        if (err instanceof DestinationBusy) {
          // Our own connection limit, not the server, held this attempt back: the route works, so
          // the mail waits for it (a retry) rather than going to a lower-priority host.
          busy = true;
          break;
        }
        this.opts.log.debug({ deliveryId: req.deliveryId, route: label, err: describe(err) }, 'route unavailable; trying the next one');
        continue;
      }
      const session = lease.conn;
      const tx = await session.send({ from: req.mailFrom, to: req.rcptTo, size: body.length }, body, Math.max(1_000, budgetEnd - Date.now()));
      // A transaction that ended with a reply leaves the session in a known state (RSET before
      // the next one); one that broke off does not.
      lease.release(tx.error === null);
      const recipients: RecipientResult[] = req.rcptTo.map((rcpt) => {
        const reply = tx.replies.get(rcpt) ?? localReply(tx.error ?? 'no reply for this recipient');
        return { rcpt, outcome: outcomeOf(reply), reply };
      });
      return {
        ...this.identity(req),
        sourceIp: session.localAddress,
        remoteHost: label,
        tls: session.tls,
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        recipients,
        error: tx.error,
      };
    }
    // No route took a session: nothing was sent, every recipient waits for the next attempt.
    const error = busy ? routeErrors.join('; ') : routeErrors.length > 0 ? `no route accepted a connection: ${routeErrors.join('; ')}` : 'no route to try';
    return {
      ...this.identity(req),
      sourceIp: this.opts.session.localAddress ?? null,
      // Busy: this attempt was held back by Moat's own connection limit, while other connections
      // to the destination are working. Reported as "no host tried", so that the router does not
      // take the all-deferred result for a server that is down and back the destination off.
      remoteHost: busy ? null : lastTried,
      tls: false,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      // RFC 3463 X.4.5: mail system congestion.
      recipients: req.rcptTo.map((rcpt) => ({ rcpt, outcome: 'deferred' as const, reply: localReply(error, busy ? '4.4.5' : null) })),
      error,
    };
  }

  private identity(req: DeliveryRequestedPayload) {
    return { deliveryId: req.deliveryId, attempt: req.attempt, messageId: req.messageId, tenantId: req.tenantId, pool: req.pool, destination: req.destination };
  }

  /** Opens a session to a route: each of its addresses in turn. */
  private async open(route: Route): Promise<SmtpSession> {
    const addresses = await this.addressesOf(route.host);
    let last: unknown = new Error(`${route.host} has no address`);
    for (const address of addresses) {
      try {
        return await SmtpSession.open({ address, port: route.port, servername: isIP(route.host) ? undefined : route.host }, this.opts.session);
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  /**
   * Addresses of a route host: itself when it is an address literal, else its A records (AAAA
   * when the source address is IPv6: a socket bound to one family cannot reach the other).
   */
  private async addressesOf(host: string): Promise<string[]> {
    const bare = host.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare)) return [bare];
    const family = this.opts.session.localAddress && isIP(this.opts.session.localAddress) === 6 ? 'AAAA' : 'A';
    let records: unknown[];
    try {
      records = await this.opts.resolve(host, family);
    } catch (err) {
      throw new ConnectFailure(`cannot resolve ${host} (${family}): ${(err as Error).message}`, null, 'EDNS');
    }
    const addresses = records.filter((r): r is string => typeof r === 'string' && isIP(r) !== 0);
    if (addresses.length === 0) throw new ConnectFailure(`${host} has no ${family} record`, null, 'EDNS');
    return addresses;
  }
}
