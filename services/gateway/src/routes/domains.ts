import { z } from 'zod';
import { normalizeDomain } from '@moat/store';
import { isUuid } from '../access.js';
import { notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { Domain, DomainCreate, DomainList } from '../schemas.js';
import { tenantParams } from './tenants.js';

export function domainRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/domains',
      operationId: 'createDomain',
      summary: 'Protect a domain and route its mail to the customer’s servers',
      description: 'Answers 409 when the domain is already protected (by this or another tenant).',
      tag: 'domains',
      params: tenantParams,
      body: DomainCreate,
      success: { status: 201, description: 'The domain', schema: Domain, location: true },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('domains:write');
        const tenant = await access.tenant(params.tenantId!);
        // Host names are case-insensitive (RFC 4343): store and answer one spelling.
        const routes = body.routes.map((r) => ({ ...r, host: r.host.toLowerCase().replace(/\.$/, '') }));
        // Throws CONFLICT (→ 409) when the name is taken; which tenant has it is not disclosed.
        const domain = await repos.tenants.createDomain(tenant.id, { name: normalizeDomain(body.name), routes });
        await repos.audit.record({ actor: access.actor, action: 'domain.create', target: domain.id, detail: { tenantId: tenant.id, name: domain.name, routes: domain.routes } });
        return { body: domain, location: `${apiPrefix}/domains/${domain.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/domains',
      operationId: 'listDomains',
      summary: 'List a tenant’s protected domains',
      tag: 'domains',
      params: tenantParams,
      success: { status: 200, description: 'The domains', schema: DomainList },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: { items: await repos.tenants.listDomains(tenant.id) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/domains/{domainId}',
      operationId: 'getDomain',
      summary: 'Read a protected domain with its routes',
      tag: 'domains',
      params: z.object({ domainId: z.uuid() }),
      success: { status: 200, description: 'The domain', schema: Domain },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const id = params.domainId!;
        const domain = isUuid(id) ? await repos.tenants.getDomain(id) : null;
        if (!domain || !(await access.canSeeTenantId(domain.tenantId))) throw notFound(`domain ${id} not found`);
        return { body: domain };
      },
    }),
  ];
}
