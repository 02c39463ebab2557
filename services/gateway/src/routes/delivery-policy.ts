import { z } from 'zod';
import { badRequest } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { tenantParams } from './tenants.js';

const ms = (max: number, what: string) =>
  z
    .number()
    .int()
    .positive()
    .max(max)
    .nullable()
    .meta({ description: `${what} in milliseconds; null: the installation's default` });

export const DeliveryPolicy = z
  .object({
    retryBaseMs: ms(86_400_000, 'First retry delay (doubles per attempt, ±10 % jitter)'),
    retryMaxMs: ms(7 * 86_400_000, 'Ceiling of the retry delay'),
    queueLifetimeMs: ms(60 * 86_400_000, 'How long deferred mail is retried before it expires and its sender gets a DSN'),
    delayWarningMs: z.number().int().min(0).max(60 * 86_400_000).nullable().meta({ description: 'A delay warning DSN after mail waited this long (0: none); null: the default' }),
  })
  .strict()
  .meta({ id: 'DeliveryPolicy' });

/**
 * A tenant's retry schedule and queue lifetime (issue: "both configurable per tenant"). The
 * router reads it per delivery result (cached like routes, so a change applies within seconds).
 */
export function deliveryPolicyRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/delivery-policy',
      operationId: 'getDeliveryPolicy',
      summary: "Read a tenant's retry schedule and queue lifetime",
      tag: 'tenants',
      params: tenantParams,
      success: { status: 200, description: 'The policy (null fields take the defaults)', schema: DeliveryPolicy },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:read');
        await access.tenant(params.tenantId!);
        return { body: (await repos.tenants.getDeliveryPolicy(params.tenantId!))! };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/tenants/{tenantId}/delivery-policy',
      operationId: 'setDeliveryPolicy',
      summary: "Change a tenant's retry schedule and queue lifetime",
      description: 'Fields left out keep their value; null restores the default. retryMaxMs must not be below retryBaseMs.',
      tag: 'tenants',
      params: tenantParams,
      body: DeliveryPolicy.partial().meta({ id: 'DeliveryPolicyChange' }),
      success: { status: 200, description: 'The policy now in force', schema: DeliveryPolicy },
      handler: async ({ params, body, access }) => {
        access.requireScope('tenants:write');
        await access.tenant(params.tenantId!);
        const current = (await repos.tenants.getDeliveryPolicy(params.tenantId!))!;
        const next = { ...current, ...body };
        if (next.retryBaseMs !== null && next.retryMaxMs !== null && next.retryMaxMs < next.retryBaseMs) {
          throw badRequest('retryMaxMs must not be below retryBaseMs', [{ field: 'retryMaxMs', message: 'below retryBaseMs' }]);
        }
        const policy = (await repos.tenants.setDeliveryPolicy(params.tenantId!, next))!;
        await repos.audit.record({ actor: access.actor, action: 'tenant.delivery-policy', target: params.tenantId!, detail: policy as unknown as Record<string, unknown> });
        return { body: policy };
      },
    }),
  ];
}
