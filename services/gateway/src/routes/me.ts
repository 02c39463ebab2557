import { z } from 'zod';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';

const Me = z
  .object({
    keyId: z.string(),
    name: z.string(),
    role: z.enum(['operator', 'partner', 'tenant']),
    partnerId: z.string().nullable(),
    tenantId: z.string().nullable(),
    tenantName: z.string().nullable().meta({ description: "A tenant key's own tenant name (no tenants:read needed to know it)" }),
    scopes: z.array(z.string()),
  })
  .meta({ id: 'Me' });

/**
 * Who the bearer token is: what the console shows after sign-in (and how it knows which tenant a
 * tenant key belongs to without the tenants:read scope). Needs no scope: it only tells a key
 * about itself.
 */
export function meRoutes(repos: Pick<GatewayRepositories, 'tenants'>): RouteDef[] {
  return [
    defineRoute({
      method: 'get',
      path: '/me',
      operationId: 'getCurrentKey',
      summary: 'The API key making the request: its role, tenant or partner, and scopes',
      tag: 'api-keys',
      success: { status: 200, description: 'The key', schema: Me },
      handler: async ({ access }) => {
        const p = access.principal;
        const tenantName = p.tenantId ? ((await repos.tenants.getTenant(p.tenantId))?.name ?? null) : null;
        return { body: { keyId: p.keyId, name: p.name, role: p.role, partnerId: p.partnerId, tenantId: p.tenantId, tenantName, scopes: p.role === 'operator' ? ['*'] : p.scopes } };
      },
    }),
  ];
}
