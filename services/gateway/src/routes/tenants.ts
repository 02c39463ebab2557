import { z } from 'zod';
import { forbidden, badRequest } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { Tenant, TenantCreate, TenantList } from '../schemas.js';

export const tenantParams = z.object({ tenantId: z.uuid() });

export function tenantRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'post',
      path: '/tenants',
      operationId: 'createTenant',
      summary: 'Create a tenant',
      description: 'Operators and partner keys only; a partner key creates tenants of its own partner.',
      tag: 'tenants',
      body: TenantCreate,
      success: { status: 201, description: 'The tenant', schema: Tenant, location: true },
      handler: async ({ body, access }) => {
        if (access.principal.role === 'tenant') throw forbidden('a tenant-scoped API key cannot create tenants');
        access.requireScope('tenants:write');
        let partnerId: string | null = null;
        if (access.principal.role === 'partner') {
          if (body.partnerId !== undefined && body.partnerId !== access.principal.partnerId) throw forbidden('partnerId: a partner key can only create tenants of its own partner');
          partnerId = access.principal.partnerId;
        } else if (body.partnerId !== undefined) {
          if (!(await repos.partners.get(body.partnerId))) throw badRequest(`partnerId: no partner ${body.partnerId}`, [{ field: 'partnerId', message: 'no such partner' }]);
          partnerId = body.partnerId;
        }
        const tenant = await repos.tenants.createTenant({ name: body.name, partnerId });
        await repos.audit.record({ actor: access.actor, action: 'tenant.create', target: tenant.id, detail: { name: tenant.name, partnerId } });
        return { body: tenant, location: `${apiPrefix}/tenants/${tenant.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants',
      operationId: 'listTenants',
      summary: 'List the tenants this key can see',
      tag: 'tenants',
      success: { status: 200, description: 'The tenants', schema: TenantList },
      handler: async ({ access }) => {
        access.requireScope('tenants:read');
        return { body: { items: await access.visibleTenants() } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}',
      operationId: 'getTenant',
      summary: 'Read a tenant',
      tag: 'tenants',
      params: tenantParams,
      success: { status: 200, description: 'The tenant', schema: Tenant },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:read');
        return { body: await access.tenant(params.tenantId!) };
      },
    }),
  ];
}
