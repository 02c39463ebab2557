import type { Route } from '@moat/contracts';
import { uuidFrom } from '@moat/runtime';
import { normalizeDomain, sortRoutes } from '@moat/store';
import { unresolvedDestination } from './unresolved.js';

/** Recipients that share a route set go to the same servers: one delivery, one SMTP transaction. */
export interface DestinationGroup {
  /** Canonical key of the route set, see destinationKey. */
  destination: string;
  /** In delivery order (priority, then host, then port); empty when resolved at each attempt (see unresolved.ts). */
  routes: Route[];
  rcpts: string[];
}

/** A message to route (a filtered one, or a DSN): what the router needs of it. */
export interface RoutingInput {
  messageId: string;
  tenantId: string;
  /** Partition key of the message store (its store reference's receivedAt). */
  receivedAt: Date;
  direction: 'inbound' | 'outbound';
  mailFrom: string;
  rcptTo: string[];
  prependHeaders: string;
  /** Bytes on the wire: prepended headers and the stored message. */
  size: number;
  /**
   * The part of a split message these recipients are (message.filtered `split.part`); absent for
   * a whole message. Deliveries, their ids and the routing decision are per part.
   */
  part?: string;
}

/** A delivery's id: one per message (or part of a split message) and destination, so a redelivered or released event creates nothing twice. */
export function deliveryIdFor(messageId: string, destination: string, part?: string): string {
  return part === undefined ? uuidFrom(messageId, destination) : uuidFrom(messageId, destination, 'part', part);
}

export interface Unrouted {
  rcpt: string;
  cause: 'no-domain' | 'not-protected' | 'no-route';
  reason: string;
}

/**
 * What the router knows about a recipient domain: its routes; `resolve-later` when they come
 * from DNS that gave no usable answer now (the MX is looked up again at each attempt); or null
 * when it is not protected and not routed by MX.
 */
export type RouteLookup = (domain: string) => Route[] | 'resolve-later' | null;

/**
 * How a recipient domain of a message is routed:
 * - inbound mail: a protected domain goes to its routes (the customer's servers); any other
 *   domain is unroutable (ingress accepted only protected ones);
 * - outbound mail (a tenant's relayed mail, and DSNs): the tenant's own protected domains go to its
 *   routes — internal mail goes straight to the customer's server, not out to its MX and back in
 *   through Moat. Every other domain goes to its MX, also a domain another tenant protects: that
 *   tenant then receives the message as inbound mail through Moat's MX (its filter policy, its
 *   archive, its tracking), and the sending tenant's tracking never shows the other tenant's
 *   servers. Where that MX is Moat, the message takes one more hop through ingress.
 */
export function routeSourceFor(direction: 'inbound' | 'outbound', messageTenantId: string, protectedBy: string | null): 'routes' | 'mx' | 'unrouted' {
  if (direction === 'inbound') return protectedBy !== null ? 'routes' : 'unrouted';
  return protectedBy === messageTenantId ? 'routes' : 'mx';
}

/** The domain part of an envelope address (after the last @, RFC 5321 §4.1.2), normalised; null without one. */
export function recipientDomain(address: string): string | null {
  const at = address.lastIndexOf('@');
  if (at < 0 || at === address.length - 1) return null;
  return normalizeDomain(address.slice(at + 1));
}

/**
 * The canonical string of a route set: `host:port/priority` of each distinct route, in delivery
 * order, joined by commas (e.g. `mx1.example:25/10,mx2.example:2525/20`). Two domains with the
 * same servers share a key, so their recipients travel in one transaction (DESIGN.md, promise 3);
 * the sender also uses it to name the destination in results and logs.
 */
export function destinationKey(routes: Route[]): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const r of sortRoutes(routes.map((x) => ({ ...x, host: x.host.toLowerCase() })))) {
    const part = `${r.host}:${r.port}/${r.priority}`;
    if (seen.has(part)) continue;
    seen.add(part);
    parts.push(part);
  }
  return parts.join(',');
}

/** Routes in delivery order without duplicates (what a delivery row stores). */
export function canonicalRoutes(routes: Route[]): Route[] {
  const seen = new Set<string>();
  return sortRoutes(routes.map((x) => ({ host: x.host.toLowerCase(), port: x.port, priority: x.priority }))).filter((r) => {
    const key = `${r.host}:${r.port}/${r.priority}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Groups recipients by destination, in the order they were given. A recipient whose domain is
 * not protected any more (deleted since the message was accepted) or has no route cannot be
 * delivered anywhere: it is returned as unrouted with the reason, for a final 'failed' event.
 */
export function groupByDestination(rcpts: string[], lookup: RouteLookup): { groups: DestinationGroup[]; unrouted: Unrouted[] } {
  const groups = new Map<string, DestinationGroup>();
  const unrouted: Unrouted[] = [];
  const seen = new Set<string>();
  for (const rcpt of rcpts) {
    if (seen.has(rcpt)) continue;
    seen.add(rcpt);
    const domain = recipientDomain(rcpt);
    if (domain === null) {
      unrouted.push({ rcpt, cause: 'no-domain', reason: 'the recipient address has no domain' });
      continue;
    }
    const routes = lookup(domain);
    if (routes === 'resolve-later') {
      // One row per such domain: its recipients will share whatever the MX turns out to be.
      const key = unresolvedDestination(domain);
      let group = groups.get(key);
      if (!group) {
        group = { destination: key, routes: [], rcpts: [] };
        groups.set(key, group);
      }
      group.rcpts.push(rcpt);
      continue;
    }
    if (routes === null) {
      unrouted.push({ rcpt, cause: 'not-protected', reason: `${domain} is not a protected domain (any more)` });
      continue;
    }
    if (routes.length === 0) {
      unrouted.push({ rcpt, cause: 'no-route', reason: `${domain} has no route to a server` });
      continue;
    }
    const key = destinationKey(routes);
    let group = groups.get(key);
    if (!group) {
      group = { destination: key, routes: canonicalRoutes(routes), rcpts: [] };
      groups.set(key, group);
    }
    group.rcpts.push(rcpt);
  }
  return { groups: [...groups.values()], unrouted };
}
