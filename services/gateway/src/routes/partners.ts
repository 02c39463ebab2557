import { z } from 'zod';
import { notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { ApiKeyCreate, ApiKeyCreated, Partner, PartnerCreate, PartnerList } from '../schemas.js';
import { isUuid } from '../access.js';

const partnerParams = z.object({ partnerId: z.uuid() });

/** Partners (MSPs) and their keys: operators only. */
export function partnerRoutes(repos: GatewayRepositories): RouteDef[] {
  async function partner(id: string) {
    const p = isUuid(id) ? await repos.partners.get(id) : null;
    if (!p) throw notFound(`partner ${id} not found`);
    return p;
  }
  return [
    defineRoute({
      method: 'post',
      path: '/partners',
      operationId: 'createPartner',
      summary: 'Create a partner (operators only)',
      tag: 'partners',
      body: PartnerCreate,
      success: { status: 201, description: 'The partner', schema: Partner, location: true },
      handler: async ({ body, access }) => {
        access.requireOperator();
        const created = await repos.partners.create(body.name);
        await repos.audit.record({ actor: access.actor, action: 'partner.create', target: created.id, detail: { name: created.name } });
        return { body: created, location: `${apiPrefix}/partners/${created.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/partners',
      operationId: 'listPartners',
      summary: 'List partners (operators only)',
      tag: 'partners',
      success: { status: 200, description: 'The partners', schema: PartnerList },
      handler: async ({ access }) => {
        access.requireOperator();
        return { body: { items: await repos.partners.list() } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/partners/{partnerId}',
      operationId: 'getPartner',
      summary: 'Read a partner (operators only)',
      tag: 'partners',
      params: partnerParams,
      success: { status: 200, description: 'The partner', schema: Partner },
      handler: async ({ params, access }) => {
        access.requireOperator();
        return { body: await partner(params.partnerId!) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/partners/{partnerId}/api-keys',
      operationId: 'createPartnerApiKey',
      summary: "Create a partner key (operators only); the key is shown once",
      description: 'A partner key sees and manages only its partner’s tenants.',
      tag: 'partners',
      params: partnerParams,
      body: ApiKeyCreate,
      success: { status: 201, description: 'The key, shown once', schema: ApiKeyCreated },
      handler: async ({ params, body, access }) => {
        access.requireOperator();
        const p = await partner(params.partnerId!);
        const created = await repos.apiKeys.create({ role: 'partner', name: body.name, scopes: body.scopes, partnerId: p.id });
        await repos.audit.record({ actor: access.actor, action: 'api-key.create', target: created.id, detail: { role: 'partner', partnerId: p.id, name: body.name, scopes: body.scopes } });
        return { body: { id: created.id, key: created.key, name: body.name, role: 'partner', tenantId: null, partnerId: p.id, scopes: body.scopes } };
      },
    }),
  ];
}
