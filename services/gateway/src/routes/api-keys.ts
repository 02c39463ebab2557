import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { ApiKeyCreate, ApiKeyCreated } from '../schemas.js';
import { tenantParams } from './tenants.js';

export function apiKeyRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/api-keys',
      operationId: 'createTenantApiKey',
      summary: 'Create a tenant-scoped key; the key is shown once',
      description: 'The key sees only this tenant. A key can grant only scopes it holds itself.',
      tag: 'api-keys',
      params: tenantParams,
      body: ApiKeyCreate,
      success: { status: 201, description: 'The key, shown once', schema: ApiKeyCreated },
      handler: async ({ params, body, access }) => {
        access.requireScope('api-keys:write');
        const tenant = await access.tenant(params.tenantId!);
        access.requireGrantable(body.scopes);
        const created = await repos.apiKeys.create({ role: 'tenant', name: body.name, scopes: body.scopes, tenantId: tenant.id });
        // The key itself is never logged or audited: only its id.
        await repos.audit.record({ actor: access.actor, action: 'api-key.create', target: created.id, detail: { role: 'tenant', tenantId: tenant.id, name: body.name, scopes: body.scopes } });
        return { body: { id: created.id, key: created.key, name: body.name, role: 'tenant', tenantId: tenant.id, partnerId: null, scopes: body.scopes } };
      },
    }),
  ];
}
