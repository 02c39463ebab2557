import { routingKeys, type SubnetCheckRequestedPayload } from '@moat/contracts';
import { MoatError, uuidFrom, type Broker, type Logger, type RateDecision } from '@moat/runtime';
import { compareCidrs, formatCidr, parseCidr, type Domain, type PoolRepository, type SendingPool, type SubnetCheck, type SubnetCheckRepository, type SubnetProbeResult } from '@moat/store';
import { conflict, tooManyRequests } from './problem.js';

export interface SubnetCheckStarterOptions {
  checks: SubnetCheckRepository;
  pools: PoolRepository;
  broker: Pick<Broker, 'publish' | 'envelope'>;
  /** Checks per tenant (a check opens connections to the tenant's servers from every pool). */
  limiter: { take(key: string): Promise<RateDecision> };
  /** How long the senders get to answer. */
  deadlineMs: number;
  log: Logger;
}

/** Pools whose ranges are published, and so must be let through by a locked-down server. */
export function probedPools(pools: readonly SendingPool[]): SendingPool[] {
  return pools.filter((p) => p.state !== 'disabled');
}

/** Every published range, sorted: the outsider address must lie in none of them. */
function publishedCidrs(pools: readonly SendingPool[]): string[] {
  return [...new Set(pools.flatMap((p) => p.cidrs))].map(parseCidr).sort(compareCidrs).map(formatCidr);
}

/**
 * Starts a subnet check of a domain: one probe row per (source, route) in Postgres, then one
 * `subnetcheck.requested` per pool (to `subnet-check.<pool>`, consumed by that pool's senders,
 * which probe from their own source address) and one for the outsider. Probes go only to the
 * domain's routes as stored: nothing in the request can name a host or a port.
 *
 * A source no consumer has ever declared a queue for (a pool without senders, or no sender
 * with an outsider address) is unroutable: its probes are reported `error` at once instead of
 * waiting for the deadline. Any other publish failure removes the check and fails the request
 * (503), so a check either has all its requests queued or does not exist.
 */
export class SubnetCheckStarter {
  constructor(private readonly opts: SubnetCheckStarterOptions) {}

  async start(domain: Domain, requestedBy: string): Promise<SubnetCheck> {
    const { opts } = this;
    const pools = probedPools(await opts.pools.list());
    // Nothing to check is the operator's configuration, not the caller's fault: no quota spent.
    if (pools.length === 0) throw conflict('no sending pool is active, warming or draining: there is no range to check');
    if (domain.routes.length === 0) throw conflict(`domain ${domain.name} has no routes to probe`);
    const decision = await opts.limiter.take(domain.tenantId);
    if (!decision.allowed) {
      throw tooManyRequests(`this tenant has started ${decision.count - 1} subnet checks in the current window; the next one is possible in ${Math.ceil(decision.retryAfterMs / 1000)} s`, decision.retryAfterMs);
    }
    const published = publishedCidrs(pools);
    const deadline = new Date(Date.now() + opts.deadlineMs);
    const check = await opts.checks.create({
      tenantId: domain.tenantId,
      domainId: domain.id,
      domain: domain.name,
      routes: domain.routes,
      deadline,
      requestedBy,
      sources: [...pools.map((p) => ({ source: 'pool' as const, pool: p.name, poolState: p.state, cidrs: p.cidrs })), { source: 'outsider' as const, pool: null, poolState: null, cidrs: [] }],
    });
    const requests: Array<{ routingKey: string; payload: SubnetCheckRequestedPayload; unroutable: string }> = [
      ...pools.map((p) => ({
        routingKey: routingKeys.subnetCheckRequested(p.name),
        payload: this.payload(check, domain, 'pool', p.name, p.cidrs, deadline),
        unroutable: `no sender of pool ${p.name} has ever run: nothing consumes its subnet-check probes (start a sender with MOAT_POOL=${p.name})`,
      })),
      {
        routingKey: routingKeys.subnetCheckOutsider,
        payload: this.payload(check, domain, 'outsider', null, published, deadline),
        unroutable: 'no sender runs outsider probes: set MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS (an address of its host in no pool range) on a sender',
      },
    ];
    const failed: SubnetProbeResult[] = [];
    try {
      for (const r of requests) {
        const event = opts.broker.envelope('subnetcheck.requested', r.payload, uuidFrom(check.id, r.payload.source, r.payload.pool ?? ''));
        try {
          await opts.broker.publish(r.routingKey, event);
        } catch (err) {
          if (!(err instanceof MoatError && err.code === 'PUBLISH_UNROUTABLE')) throw err;
          for (const p of check.probes) {
            if (p.source === r.payload.source && p.pool === r.payload.pool) {
              failed.push({ id: p.id, status: 'error', sourceIp: null, remoteAddress: null, tls: null, failedStep: null, reply: null, latencyMs: null, error: r.unroutable, transcript: [] });
            }
          }
        }
      }
    } catch (err) {
      await opts.checks.delete(check.id).catch((e: unknown) => opts.log.warn({ checkId: check.id, err: (e as Error).message }, 'could not remove a subnet check whose requests were not queued'));
      throw err;
    }
    if (failed.length > 0) await opts.checks.recordResults(check.id, failed);
    opts.log.info({ checkId: check.id, domain: domain.name, pools: pools.map((p) => p.name), unroutable: failed.length }, 'subnet check started');
    return (await opts.checks.get(check.id)) ?? check;
  }

  private payload(check: SubnetCheck, domain: Domain, source: 'pool' | 'outsider', pool: string | null, cidrs: string[], deadline: Date): SubnetCheckRequestedPayload {
    return { checkId: check.id, tenantId: domain.tenantId, domain: domain.name, routes: domain.routes, source, pool, cidrs, deadline: deadline.toISOString() };
  }
}
