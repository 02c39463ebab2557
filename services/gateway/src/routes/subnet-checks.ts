import { z } from 'zod';
import type { Domain } from '@moat/store';
import { isUuid, type Access } from '../access.js';
import { badRequest, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { SubnetCheck, SubnetCheckList } from '../schemas.js';
import { checkReport } from '../subnet-check-report.js';
import type { SubnetCheckStarter } from '../subnet-checks.js';

const domainParams = z.object({ domainId: z.uuid() });
const checkParams = z.object({ domainId: z.uuid(), checkId: z.uuid() });

/** How many past checks the list shows. */
const listLimit = 20;

/** Subnet checks of a protected domain: does its server accept every pool, and refuse an outsider? */
export function subnetCheckRoutes(repos: GatewayRepositories, starter: Pick<SubnetCheckStarter, 'start'>): RouteDef[] {
  /** The domain when it exists and this key may see it; 404 otherwise (the same answer for both). */
  async function visibleDomain(access: Access, id: string): Promise<Domain> {
    const domain = isUuid(id) ? await repos.tenants.getDomain(id) : null;
    if (!domain || !(await access.canSeeTenantId(domain.tenantId))) throw notFound(`domain ${id} not found`);
    return domain;
  }
  return [
    defineRoute({
      method: 'post',
      path: '/domains/{domainId}/subnet-checks',
      operationId: 'startSubnetCheck',
      summary: 'Check that the domain’s servers accept mail from every sending pool and refuse an outsider',
      description:
        'Every pool that is active, warming or draining probes each of the domain’s configured routes from its own source address: TCP connect, banner, EHLO, STARTTLS when offered, MAIL FROM:<>, RCPT TO:<postmaster@domain>, QUIT — never DATA. An outsider address (in no pool) probes them too, to tell whether the servers are locked down to Moat. Takes no body: probes go only to the configured routes. Answers 201 with the check `running`; poll its Location until `status` is `done`. Rate-limited per tenant (429 with Retry-After); 409 when no pool is there to check.',
      tag: 'subnet-checks',
      params: domainParams,
      success: { status: 201, description: 'The check, running', schema: SubnetCheck, location: true },
      problems: [400, 409, 429, 503],
      handler: async ({ req, params, access }) => {
        access.requireScope('domains:write');
        // A host or port in a body would suggest the probe goes there: refuse rather than ignore.
        if (req.body !== undefined && req.body !== null && (typeof req.body !== 'object' || Object.keys(req.body as object).length > 0)) {
          throw badRequest('this endpoint takes no body: probes go only to the domain’s configured routes');
        }
        const domain = await visibleDomain(access, params.domainId!);
        const check = await starter.start(domain, access.actor);
        await repos.audit.record({ actor: access.actor, action: 'subnet_check.start', target: check.id, detail: { domainId: domain.id, domain: domain.name, routes: domain.routes } });
        return { body: checkReport(check), location: `${apiPrefix}/domains/${domain.id}/subnet-checks/${check.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/domains/{domainId}/subnet-checks/{checkId}',
      operationId: 'getSubnetCheck',
      summary: 'A subnet check: per pool pass/fail with the failing step, the server’s reply, latency and transcript; the lock-down result',
      tag: 'subnet-checks',
      params: checkParams,
      success: { status: 200, description: 'The check', schema: SubnetCheck },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const domain = await visibleDomain(access, params.domainId!);
        const id = params.checkId!;
        const check = isUuid(id) ? await repos.subnetChecks.get(id) : null;
        if (!check || check.domainId !== domain.id) throw notFound(`subnet check ${id} not found`);
        return { body: checkReport(check) };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/domains/{domainId}/subnet-checks',
      operationId: 'listSubnetChecks',
      summary: `The domain’s last ${listLimit} subnet checks, newest first`,
      tag: 'subnet-checks',
      params: domainParams,
      success: { status: 200, description: 'The checks', schema: SubnetCheckList },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const domain = await visibleDomain(access, params.domainId!);
        const checks = await repos.subnetChecks.listForDomain(domain.id, listLimit);
        return {
          body: {
            items: checks.map(checkReport).map((r) => ({ id: r.id, status: r.status, result: r.result, lockdown: r.lockdown.result, createdAt: r.createdAt, finishedAt: r.finishedAt })),
          },
        };
      },
    }),
  ];
}
