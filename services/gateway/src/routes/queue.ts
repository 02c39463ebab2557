import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { routingKeys, type DeliveryResultPayload } from '@moat/contracts';
import { uuidFrom, type Broker } from '@moat/runtime';
import type { QueueChange, QueuedDelivery } from '@moat/store';
import type { Access } from '../access.js';
import { decodeCursor, encodeCursor } from './messages.js';
import { badRequest, conflict, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { DestinationHold, DestinationHoldCreate, DestinationHoldList, DestinationRelease, PurgeRequest, QueuedDestinationList, QueueExtend, QueueItem, QueueList, QueueQuery } from '../schemas.js';

const deliveryParams = z.object({ deliveryId: z.string().uuid() });
const holdParams = z.object({ holdId: z.string().regex(/^\d+$/) });

/** Queue pages use the messages' cursor format: (time, id) of the last item, opaque to clients. */
const encodeQueueCursor = (c: { createdAt: string; id: string }) => encodeCursor({ receivedAt: c.createdAt, id: c.id });
const decodeQueueCursor = (value: string) => {
  const c = decodeCursor(value);
  return { createdAt: c.receivedAt, id: c.id };
};

/** The answer to a refused change: 404 for an unknown or invisible delivery, 409 for a wrong state. */
function refused(id: string, change: Extract<QueueChange, { ok: false }>, action: string): never {
  if (change.reason === 'not-found') throw notFound(`delivery ${id} not found`);
  throw conflict(
    change.status === 'done'
      ? `delivery ${id} is no longer queued: every recipient has its final fate`
      : change.status === 'sending'
        ? `delivery ${id} is being sent right now; ${action} it once the attempt has finished`
        : `delivery ${id} is ${change.status}: it cannot be ${action}`,
  );
}

/**
 * Queue control (DESIGN.md: `GET /queue` with hold, release, retry and purge): what is waiting
 * for delivery, and the operator's levers on it. Every action is written to the audit log with
 * who did it. A tenant's key sees and acts on its own tenant's deliveries (scopes queue:read,
 * queue:write); partners on their tenants'; operators on all, and only they pause a destination
 * for every tenant.
 */
export function queueRoutes(repos: GatewayRepositories, broker: Pick<Broker, 'publish' | 'envelope'>): RouteDef[] {
  /** The delivery, when it exists, is not done, and the caller may see its tenant. */
  async function visible(access: Access, id: string): Promise<QueuedDelivery> {
    const d = await repos.queue.get(id);
    if (!d || !(await access.canSeeTenantId(d.tenantId))) throw notFound(`delivery ${id} not found`);
    return d;
  }

  async function act(access: Access, id: string, action: string, run: () => Promise<QueueChange>, detail: Record<string, unknown> = {}) {
    access.requireScope('queue:write');
    await visible(access, id);
    const change = await run();
    if (!change.ok) refused(id, change, action);
    await repos.audit.record({ actor: access.actor, action: `queue.${action}`, target: id, detail: { destination: change.delivery.destination, tenantId: change.delivery.tenantId, ...detail } });
    return { body: change.delivery };
  }

  /** The tenant a destination pause applies to: the caller's own, the one named, or (operators) all. */
  async function holdTenant(access: Access, tenantId: string | undefined): Promise<string | null> {
    if (tenantId !== undefined) return (await access.tenant(tenantId)).id;
    if (access.principal.role === 'tenant' && access.principal.tenantId) return access.principal.tenantId;
    if (!access.isOperator) throw badRequest('tenantId is required: only operators pause a destination for every tenant', [{ field: 'tenantId', message: 'required' }]);
    return null;
  }

  return [
    defineRoute({
      method: 'get',
      path: '/queue',
      operationId: 'listQueue',
      summary: 'Queued deliveries (not yet done), newest first',
      description: 'One item per (message, destination) with the recipients still to deliver, its state (queued, publishing, sending, deferred, held), attempt, next attempt, last error and expiry.',
      tag: 'queue',
      query: QueueQuery,
      success: { status: 200, description: 'A page of queued deliveries', schema: QueueList },
      handler: async ({ query, access }) => {
        access.requireScope('queue:read');
        const scope = await access.tenantFilter(query.tenant);
        const page = await repos.queue.list({
          ...scope,
          ...(query.domain !== undefined ? { domain: query.domain } : {}),
          ...(query.destination !== undefined ? { destination: query.destination } : {}),
          ...(query.state !== undefined ? { status: query.state } : {}),
          ...(query.olderThanSeconds !== undefined ? { olderThanMs: query.olderThanSeconds * 1000 } : {}),
          ...(query.before !== undefined ? { before: decodeQueueCursor(query.before) } : {}),
          limit: query.limit,
        });
        return { body: { items: page.items, next: page.next ? encodeQueueCursor(page.next) : null } };
      },
    }),
    // Before /queue/{deliveryId}: express matches in order.
    defineRoute({
      method: 'get',
      path: '/queue/destinations',
      operationId: 'listQueuedDestinations',
      summary: 'Destinations with mail waiting, and their health',
      description: 'Per destination server: deliveries waiting (deferred, held), the oldest, the next attempt, and whether it is down (consecutive failures, back-off end, last error). A down destination is retried by one probe at a time; when it answers, its backlog drains at MOAT_DESTINATION_DRAIN_RATE.',
      tag: 'queue',
      query: z.strictObject({ tenant: z.string().uuid().optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      success: { status: 200, description: 'Destinations, most waiting first', schema: QueuedDestinationList },
      handler: async ({ query, access }) => {
        access.requireScope('queue:read');
        const scope = await access.tenantFilter(query.tenant);
        return { body: { items: await repos.queue.destinations({ ...scope, limit: query.limit }) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/queue/destination-holds',
      operationId: 'listDestinationHolds',
      summary: 'Paused destinations',
      tag: 'queue',
      query: z.strictObject({ tenant: z.string().uuid().optional() }),
      success: { status: 200, description: 'The pauses the caller can see', schema: DestinationHoldList },
      handler: async ({ query, access }) => {
        access.requireScope('queue:read');
        const scope = await access.tenantFilter(query.tenant);
        return { body: { items: await repos.queue.listDestinationHolds(scope) } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/queue/destination-holds',
      operationId: 'holdDestination',
      summary: 'Pause delivery to a destination (e.g. the customer server is in maintenance)',
      description:
        '`destination` is the value shown on queued deliveries (`host:port/priority`, comma-separated). Every waiting delivery to it is held, and new ones are held as they are routed, until the pause is released. A tenant key pauses its own deliveries; operators may pause for every tenant by omitting tenantId.',
      tag: 'queue',
      body: DestinationHoldCreate,
      success: { status: 201, description: 'Paused', schema: DestinationHold },
      handler: async ({ body, access }) => {
        access.requireScope('queue:write');
        const tenantId = await holdTenant(access, body.tenantId);
        const { hold, held } = await repos.queue.holdDestination({ destination: body.destination, tenantId, reason: body.reason ?? null, actor: access.actor });
        await repos.audit.record({ actor: access.actor, action: 'queue.destination.hold', target: body.destination, detail: { tenantId, reason: body.reason ?? null, held } });
        return { status: 201, body: { ...hold, held } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/queue/destination-holds/{holdId}/release',
      operationId: 'releaseDestination',
      summary: 'End a pause: the deliveries it held are due now',
      tag: 'queue',
      params: holdParams,
      success: { status: 200, description: 'Released', schema: DestinationRelease },
      handler: async ({ params, access }) => {
        access.requireScope('queue:write');
        const hold = await repos.queue.getDestinationHold(params.holdId!);
        // A tenant sees global pauses but may not lift them; another tenant's pause does not exist for it.
        const visibleHold = hold !== null && (hold.tenantId === null ? access.isOperator : await access.canSeeTenantId(hold.tenantId));
        if (!hold || !visibleHold) throw notFound(`destination hold ${params.holdId} not found`);
        const released = await repos.queue.releaseDestination(hold.destination, hold.tenantId);
        if (!released) throw notFound(`destination hold ${params.holdId} not found`);
        await repos.audit.record({ actor: access.actor, action: 'queue.destination.release', target: hold.destination, detail: { tenantId: hold.tenantId, released: released.released } });
        return { body: { id: hold.id, destination: hold.destination, tenantId: hold.tenantId, released: released.released } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/queue/{deliveryId}',
      operationId: 'getQueuedDelivery',
      summary: 'One queued delivery',
      tag: 'queue',
      params: deliveryParams,
      success: { status: 200, description: 'The delivery', schema: QueueItem },
      handler: async ({ params, access }) => {
        access.requireScope('queue:read');
        return { body: await visible(access, params.deliveryId!) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/queue/{deliveryId}/hold',
      operationId: 'holdDelivery',
      summary: 'Hold a waiting delivery (no attempt until released)',
      description: 'Applies to queued, publishing and deferred deliveries; 409 while a sender is in the middle of an attempt.',
      tag: 'queue',
      params: deliveryParams,
      success: { status: 200, description: 'Held', schema: QueueItem },
      problems: [409],
      handler: ({ params, access }) => act(access, params.deliveryId!, 'hold', () => repos.queue.hold(params.deliveryId!)),
    }),
    defineRoute({
      method: 'post',
      path: '/queue/{deliveryId}/release',
      operationId: 'releaseDelivery',
      summary: 'Release a held delivery: its next attempt is due now',
      description: '409 when the delivery is not held, or when its destination is still paused (release the pause instead).',
      tag: 'queue',
      params: deliveryParams,
      success: { status: 200, description: 'Released', schema: QueueItem },
      problems: [409],
      handler: ({ params, access }) => act(access, params.deliveryId!, 'release', () => repos.queue.release(params.deliveryId!)),
    }),
    defineRoute({
      method: 'post',
      path: '/queue/{deliveryId}/retry',
      operationId: 'retryDelivery',
      summary: 'Retry a deferred delivery now instead of at its scheduled time',
      tag: 'queue',
      params: deliveryParams,
      success: { status: 200, description: 'Due now', schema: QueueItem },
      problems: [409],
      handler: ({ params, access }) => act(access, params.deliveryId!, 'retry', () => repos.queue.retryNow(params.deliveryId!)),
    }),
    defineRoute({
      method: 'post',
      path: '/queue/{deliveryId}/extend',
      operationId: 'extendDelivery',
      summary: "Extend a delivery's lifetime: deferred recipients expire at the new time",
      tag: 'queue',
      params: deliveryParams,
      body: QueueExtend,
      success: { status: 200, description: 'Extended', schema: QueueItem },
      problems: [409],
      handler: async ({ params, body, access }) => {
        const until = new Date(body.expiresAt);
        if (until.getTime() <= Date.now()) throw badRequest('expiresAt must be in the future', [{ field: 'expiresAt', message: 'must be in the future' }]);
        return act(access, params.deliveryId!, 'extend', () => repos.queue.extend(params.deliveryId!, until), { expiresAt: until.toISOString() });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/queue/{deliveryId}/purge',
      operationId: 'purgeDelivery',
      summary: 'Remove a waiting delivery from the queue, with or without a bounce to the sender',
      description:
        'bounce false: the recipients end `failed` ("purged from the queue") and nothing is sent. bounce true: the delivery is held, then its recipients fail through the router like a permanent refusal, so the sender gets a delivery status notification. 409 while a sender is in the middle of an attempt.',
      tag: 'queue',
      params: deliveryParams,
      body: PurgeRequest,
      success: { status: 200, description: 'Purged (the recipients it held)', schema: QueueItem },
      problems: [409, 502, 503],
      handler: async ({ params, body, access }) => {
        const id = params.deliveryId!;
        const reason = `purged from the queue by ${access.actor}`;
        if (!body.bounce) {
          const reply = await act(access, id, 'purge', () => repos.queue.purge(id, reason), { bounce: false });
          const d = reply.body;
          // The fate of the purged recipients, for message tracking (a deterministic id: a retried
          // request after a lost answer publishes the same event).
          await broker.publish(
            routingKeys.messageEvent,
            broker.envelope('message.event', { messageId: d.messageId, tenantId: d.tenantId, kind: 'failed', rcpt: d.rcpts, detail: { reason, deliveryId: d.id } }, uuidFrom(d.id, 'purged')),
          );
          return reply;
        }
        // With a bounce: hold it (no sender may claim it any more), then report every recipient
        // failed for its current attempt; the router finishes it as it does a 5xx, DSN included.
        const reply = await act(access, id, 'purge', () => repos.queue.hold(id), { bounce: true });
        const d = reply.body;
        const now = new Date().toISOString();
        const result: DeliveryResultPayload = {
          deliveryId: d.id,
          attempt: d.attempt,
          messageId: d.messageId,
          tenantId: d.tenantId,
          pool: d.pool,
          destination: d.destination,
          sourceIp: null,
          remoteHost: null,
          tls: false,
          startedAt: now,
          finishedAt: now,
          recipients: d.rcpts.map((rcpt) => ({ rcpt, outcome: 'failed' as const, reply: { code: 550, enhanced: '5.0.0', text: reason } })),
          error: reason,
        };
        await broker.publish(routingKeys.deliveryResult, broker.envelope('delivery.result', result, randomUUID()));
        return reply;
      },
    }),
  ];
}
