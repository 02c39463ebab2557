import { z } from 'zod';
import { normalizeDomain } from '@moat/store';
import { isUuid } from '../access.js';
import { badRequest, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { Mailbox, MailboxCreate, MailboxList } from '../schemas.js';
import { tenantParams } from './tenants.js';

export function mailboxRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/mailboxes',
      operationId: 'createMailbox',
      summary: 'Create a mailbox in one of the tenant’s domains',
      tag: 'mailboxes',
      params: tenantParams,
      body: MailboxCreate,
      success: { status: 201, description: 'The mailbox', schema: Mailbox, location: true },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('mailboxes:write');
        const tenant = await access.tenant(params.tenantId!);
        const address = body.address.toLowerCase();
        const domain = normalizeDomain(address.slice(address.lastIndexOf('@') + 1));
        const domains = await repos.tenants.listDomains(tenant.id);
        if (!domains.some((d) => d.name === domain)) {
          throw badRequest(`address: ${domain} is not one of this tenant's domains`, [{ field: 'address', message: `${domain} is not one of this tenant's domains` }]);
        }
        const mailbox = await repos.mailboxes.create(tenant.id, { address, liveArchive: body.liveArchive });
        await repos.audit.record({ actor: access.actor, action: 'mailbox.create', target: mailbox.id, detail: { tenantId: tenant.id, address, liveArchive: body.liveArchive } });
        return { body: mailbox, location: `${apiPrefix}/tenants/${tenant.id}/mailboxes/${mailbox.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/mailboxes',
      operationId: 'listMailboxes',
      summary: 'List a tenant’s mailboxes',
      tag: 'mailboxes',
      params: tenantParams,
      success: { status: 200, description: 'The mailboxes', schema: MailboxList },
      handler: async ({ params, access }) => {
        access.requireScope('mailboxes:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: { items: await repos.mailboxes.list(tenant.id) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/mailboxes/{mailboxId}',
      operationId: 'getMailbox',
      summary: 'Read a mailbox',
      tag: 'mailboxes',
      params: tenantParams.extend({ mailboxId: z.uuid() }),
      success: { status: 200, description: 'The mailbox', schema: Mailbox },
      handler: async ({ params, access }) => {
        access.requireScope('mailboxes:read');
        const tenant = await access.tenant(params.tenantId!);
        const id = params.mailboxId!;
        const mailbox = isUuid(id) ? await repos.mailboxes.get(id) : null;
        if (!mailbox || mailbox.tenantId !== tenant.id) throw notFound(`mailbox ${id} not found`);
        return { body: mailbox };
      },
    }),
  ];
}
