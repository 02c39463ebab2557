/**
 * Broker topology. Routing keys and queue names are constants that are never renamed: a
 * breaking change gets a new version and a migration plan (STYLE.md, habit 5).
 *
 * Every name is prefixed with a namespace (`moat` in production) so that test runs and
 * several stacks on one broker never collide.
 */
export const routingKeys = {
  messageAccepted: 'message.accepted',
  messageFiltered: 'message.filtered',
  deliveryRequested: (pool: string) => `delivery.requested.${pool}`,
  deliveryResult: 'delivery.result',
  messageEvent: 'message.event',
  subnetCheckRequested: (pool: string) => `subnetcheck.requested.${pool}`,
  /** Its own second segment, so no pool name can collide with it. */
  subnetCheckOutsider: 'subnetcheck.outsider',
} as const;

export interface QueuePolicy {
  /** Queue name without the namespace. */
  name: string;
  bindings: string[];
  /** Unacked messages a consumer holds at once. */
  prefetch: number;
  /** Deliveries before the broker dead-letters a message to the parking queue. */
  deliveryLimit: number;
  /** A handler slower than this is treated as failed (the message is retried). */
  handlerTimeoutMs: number;
}

/** Delivery policy sits next to the contract (STYLE.md, habit 6). */
export const queues = {
  // 16, not 32: each message in flight holds its body, its decrypted copy and what the checks
  // build from it. Under the 100 KiB benchmark a filter with 32 peaked at 203–206 MiB RSS, with
  // 16 at 153, with 8 at 140, delivering 88–95, 87 and 80–84 msg/s (README, "Results"). The work
  // is one thread of CPU; more in flight only overlaps the waits on Postgres, DNS and clamd.
  filter: { name: 'filter', bindings: ['message.accepted'], prefetch: 16, deliveryLimit: 10, handlerTimeoutMs: 60_000 },
  archive: { name: 'archive', bindings: ['message.filtered'], prefetch: 64, deliveryLimit: 10, handlerTimeoutMs: 30_000 },
  router: { name: 'router', bindings: ['message.filtered', 'delivery.result'], prefetch: 64, deliveryLimit: 10, handlerTimeoutMs: 30_000 },
  tracker: {
    name: 'tracker',
    bindings: ['message.accepted', 'message.filtered', 'delivery.requested.*', 'delivery.result', 'message.event'],
    prefetch: 256,
    deliveryLimit: 10,
    handlerTimeoutMs: 30_000,
  },
  sender: (pool: string): QueuePolicy => ({
    name: `sender.${pool}`,
    bindings: [`delivery.requested.${pool}`],
    prefetch: 32,
    deliveryLimit: 10,
    // An SMTP transaction of a 25 MiB message to a slow server can take minutes.
    handlerTimeoutMs: 15 * 60_000,
  }),
  /**
   * Subnet-check probes of a pool, consumed by every sender of the pool. A queue of its own, so a
   * probe never waits behind a backlog of deliveries (and so that a check answers in seconds).
   * A probe is cheap and harmless to repeat, so few redeliveries are allowed; the handler is
   * bounded by the check's deadline (at most 10 minutes).
   */
  subnetCheck: (pool: string): QueuePolicy => ({
    name: `subnet-check.${pool}`,
    bindings: [`subnetcheck.requested.${pool}`],
    prefetch: 8,
    deliveryLimit: 3,
    handlerTimeoutMs: 11 * 60_000,
  }),
  /** The outsider probe, consumed by the senders configured with an outsider address. */
  subnetCheckOutsider: { name: 'subnet-check-outsider', bindings: ['subnetcheck.outsider'], prefetch: 8, deliveryLimit: 3, handlerTimeoutMs: 11 * 60_000 },
} as const satisfies Record<string, QueuePolicy | ((pool: string) => QueuePolicy)>;

/** Dead letters of every queue land here; the tracker persists them so they are visible and replayable. */
export const parking = { exchange: 'parking', queue: 'parking', prefetch: 64 } as const;

export const eventsExchange = 'events';

export function qualify(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}
