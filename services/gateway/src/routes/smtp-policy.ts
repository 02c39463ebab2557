import { z } from 'zod';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { tenantParams } from './tenants.js';

const greylistingFields = {
  enabled: z.boolean().meta({ description: 'Greylist inbound mail: the first attempt of an unknown (client network, sender, recipient) triplet gets 451 4.7.1; a retry after the delay passes. Off by default' }),
  delaySeconds: z.number().int().min(1).max(86_400).meta({ description: 'A retry earlier than this after the first attempt is greylisted again (default 300)', example: 300 }),
  retryWindowHours: z.number().int().min(1).max(168).meta({ description: 'A retry later than this after the first attempt counts as a new first attempt (default 48)', example: 48 }),
  passTtlDays: z.number().int().min(1).max(365).meta({ description: 'How long a triplet that passed stays whitelisted, renewed by each message (default 35)', example: 35 }),
};

export const SmtpPolicy = z
  .object({ greylisting: z.object(greylistingFields).meta({ id: 'Greylisting' }) })
  .meta({ id: 'SmtpPolicy', description: 'The tenant’s SMTP-time policy in ingress (README “SMTP-time checks”)' });

export const SmtpPolicyUpdate = z
  .strictObject({ greylisting: z.strictObject(greylistingFields).partial().meta({ id: 'GreylistingUpdate' }).optional() })
  .meta({ id: 'SmtpPolicyUpdate', description: 'Fields left out keep their value' });

export function smtpPolicyRoutes(repos: GatewayRepositories): RouteDef[] {
  const policies = repos.smtpPolicies;
  return [
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/smtp-policy',
      operationId: 'getSmtpPolicy',
      summary: 'The tenant’s SMTP-time policy (greylisting)',
      tag: 'tenants',
      params: tenantParams,
      success: { status: 200, description: 'The policy in force (the defaults until changed)', schema: SmtpPolicy },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: await policies.get(tenant.id) };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/tenants/{tenantId}/smtp-policy',
      operationId: 'setSmtpPolicy',
      summary: 'Change the tenant’s SMTP-time policy; ingress applies it within MOAT_DOMAIN_CACHE_MS',
      tag: 'tenants',
      params: tenantParams,
      body: SmtpPolicyUpdate,
      success: { status: 200, description: 'The policy now in force', schema: SmtpPolicy },
      handler: async ({ params, body, access }) => {
        access.requireScope('tenants:write');
        const tenant = await access.tenant(params.tenantId!);
        const current = await policies.get(tenant.id);
        const policy = await policies.set(tenant.id, { greylisting: { ...current.greylisting, ...body.greylisting } });
        await repos.audit.record({ actor: access.actor, action: 'tenant.smtp-policy', target: tenant.id, detail: { greylisting: policy.greylisting } });
        return { body: policy };
      },
    }),
  ];
}
