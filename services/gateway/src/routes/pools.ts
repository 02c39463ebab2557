import { z } from 'zod';
import { compareCidrs, formatCidr, parseCidr, rangeForms, type SendingPool } from '@moat/store';
import { notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { PoolCreate, PoolList, PoolQuery, PoolUpdate, SendingPool as PoolSchema } from '../schemas.js';

const poolParams = z.object({ name: z.string() });

function present(pool: SendingPool) {
  return { name: pool.name, state: pool.state, ehloName: pool.ehloName, ranges: pool.cidrs.map((c) => rangeForms(parseCidr(c))) };
}

/**
 * Every range a customer must allow: pools that send (active, warming) or still finish their
 * queue (draining). One CIDR per line, deduplicated and sorted so the file diffs cleanly.
 */
export function publishedCidrs(pools: readonly SendingPool[]): string {
  const cidrs = new Set(pools.filter((p) => p.state !== 'disabled').flatMap((p) => p.cidrs));
  const sorted = [...cidrs].map(parseCidr).sort(compareCidrs).map(formatCidr);
  return sorted.map((c) => `${c}\n`).join('');
}

/** Sending pools: anyone with a key reads them (to configure a firewall); operators change them. */
export function poolRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'get',
      path: '/pools',
      operationId: 'listPools',
      summary: 'The sending pools and their source ranges',
      description: 'Any API key. Lock inbound port 25 to these ranges. `?format=txt` gives the ranges of every pool that is not disabled, one CIDR per line.',
      tag: 'pools',
      query: PoolQuery,
      success: { status: 200, description: 'The pools', schema: PoolList, text: 'One CIDR per line (format=txt)' },
      handler: async ({ query }) => {
        const pools = await repos.pools.list();
        if (query.format === 'txt') return { body: null, text: publishedCidrs(pools) };
        return { body: { items: pools.map(present) } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/pools',
      operationId: 'createPool',
      summary: 'Create a sending pool (operators only)',
      tag: 'pools',
      body: PoolCreate,
      problems: [409],
      success: { status: 201, description: 'The pool', schema: PoolSchema, location: true },
      handler: async ({ body, access }) => {
        access.requireOperator();
        const pool = await repos.pools.create({ name: body.name, cidrs: body.cidrs, state: body.state, ehloName: body.ehloName ?? null });
        await repos.audit.record({ actor: access.actor, action: 'pool.create', target: pool.name, detail: { cidrs: pool.cidrs, state: pool.state, ehloName: pool.ehloName } });
        return { body: present(pool), location: `${apiPrefix}/pools/${encodeURIComponent(pool.name)}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/pools/{name}',
      operationId: 'getPool',
      summary: 'Read a sending pool',
      tag: 'pools',
      params: poolParams,
      success: { status: 200, description: 'The pool', schema: PoolSchema },
      handler: async ({ params }) => {
        const pool = await repos.pools.get(params.name!);
        if (!pool) throw notFound(`pool ${params.name} not found`);
        return { body: present(pool) };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/pools/{name}',
      operationId: 'updatePool',
      summary: 'Change the state, ranges or EHLO name of a sending pool (operators only)',
      tag: 'pools',
      params: poolParams,
      body: PoolUpdate,
      success: { status: 200, description: 'The pool', schema: PoolSchema },
      handler: async ({ params, body, access }) => {
        access.requireOperator();
        const before = await repos.pools.get(params.name!);
        if (!before) throw notFound(`pool ${params.name} not found`);
        const pool = await repos.pools.update(before.name, body);
        if (!pool) throw notFound(`pool ${params.name} not found`);
        await repos.audit.record({
          actor: access.actor,
          action: 'pool.update',
          target: pool.name,
          detail: { before: { cidrs: before.cidrs, state: before.state, ehloName: before.ehloName }, after: { cidrs: pool.cidrs, state: pool.state, ehloName: pool.ehloName } },
        });
        return { body: present(pool) };
      },
    }),
  ];
}
