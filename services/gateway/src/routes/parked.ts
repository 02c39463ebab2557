import { z } from 'zod';
import type { Broker } from '@moat/runtime';
import type { ParkedEvent } from '@moat/store';
import { conflict, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { ParkedDetail, ParkedList, ParkedQuery, ReplayResult } from '../schemas.js';

const parkedParams = z.object({ parkedId: z.string().regex(/^\d+$/) });

/** Headers the broker wrote while dead-lettering: a replay starts a fresh life. */
function replayHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (!/^x-(death|first-death-|last-death-|delivery-count)/.test(k)) out[k] = v;
  return out;
}

function withBody(p: ParkedEvent) {
  const { headers, body, ...rest } = p;
  const text = body.toString('utf8');
  // Show the body as text when it is valid UTF-8, else as base64.
  const utf8 = Buffer.from(text, 'utf8').equals(body);
  return { ...rest, headers, body: utf8 ? text : body.toString('base64'), bodyEncoding: utf8 ? ('utf8' as const) : ('base64' as const) };
}

/** Dead letters (operators only): see why a message was parked, and replay it. */
export function parkedRoutes(repos: GatewayRepositories, broker: Pick<Broker, 'publishRaw'>): RouteDef[] {
  async function parked(id: string): Promise<ParkedEvent> {
    const p = await repos.parked.get(id);
    if (!p) throw notFound(`parked event ${id} not found`);
    return p;
  }
  return [
    defineRoute({
      method: 'get',
      path: '/parked',
      operationId: 'listParked',
      summary: 'Parked (dead-lettered) events, newest first (operators only)',
      tag: 'parked',
      query: ParkedQuery,
      success: { status: 200, description: 'A page of parked events', schema: ParkedList },
      handler: async ({ query, access }) => {
        access.requireOperator();
        const page = await repos.parked.list({
          ...(query.queue !== undefined ? { queue: query.queue } : {}),
          ...(query.before !== undefined ? { before: query.before } : {}),
          includeReplayed: query.state === 'all',
          limit: query.limit,
        });
        return { body: page };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/parked/{parkedId}',
      operationId: 'getParked',
      summary: 'One parked event with its headers and body (operators only)',
      tag: 'parked',
      params: parkedParams,
      success: { status: 200, description: 'The parked event', schema: ParkedDetail },
      handler: async ({ params, access }) => {
        access.requireOperator();
        return { body: withBody(await parked(params.parkedId!)) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/parked/{parkedId}/replay',
      operationId: 'replayParked',
      summary: 'Re-publish a parked event with its routing key (operators only)',
      description:
        'Publishes the raw body again (publisher-confirmed) to the queue that parked it (or, when that is unknown, to every queue bound to its routing key; consumers are idempotent). 409 when it was already replayed.',
      tag: 'parked',
      params: parkedParams,
      success: { status: 200, description: 'Replayed', schema: ReplayResult },
      problems: [409, 502, 503],
      handler: async ({ params, access }) => {
        access.requireOperator();
        const p = await parked(params.parkedId!);
        const at = new Date();
        // Claim first, so two concurrent replays never publish twice.
        if (!(await repos.parked.markReplayed(p.id, at))) throw conflict(`parked event ${p.id} was already replayed`);
        try {
          await broker.publishRaw(p.routingKey, p.body, { ...replayHeaders(p.headers), 'x-moat-replayed-from': p.id }, p.sourceQueue ? { queue: p.sourceQueue } : {});
        } catch (err) {
          await repos.parked.unmarkReplayed(p.id, at);
          throw err;
        }
        await repos.audit.record({ actor: access.actor, action: 'parked.replay', target: p.id, detail: { routingKey: p.routingKey, sourceQueue: p.sourceQueue, eventId: p.eventId } });
        return { body: { id: p.id, routingKey: p.routingKey, replayedAt: at.toISOString() } };
      },
    }),
  ];
}
