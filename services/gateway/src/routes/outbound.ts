import { z } from 'zod';
import { isSmtpUsername, outboundRange, type OutboundIp as StoredOutboundIp, type SmtpCredential as StoredSmtpCredential } from '@moat/store';
import { isUuid } from '../access.js';
import { notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { tenantParams } from './tenants.js';

// The outbound relay's settings per tenant: SMTP AUTH credentials for the submission ports, the
// addresses its servers send from, and its rate limit. Ingress reads them (cached for
// MOAT_DOMAIN_CACHE_MS), so a change applies within seconds.

const id = z.uuid();
const timestamp = z.iso.datetime({ offset: true });
const description = z.string().trim().max(200).nullable().optional().meta({ description: 'What this is for (free text, shown in lists)', example: 'Exchange at the head office' });

export const SmtpCredentialCreate = z
  .strictObject({
    username: z
      .string()
      .trim()
      .toLowerCase()
      .refine(isSmtpUsername, 'must be 3–64 letters, digits, ".", "_", "-", "+" or "@", starting with a letter or digit')
      .optional()
      .meta({ description: 'The SMTP AUTH username (case-insensitive, never reused). Default: smtp-<10 hex digits>', example: 'relay@acme.example' }),
    description,
  })
  .meta({ id: 'SmtpCredentialCreate' });

export const SmtpCredential = z
  .object({
    id,
    tenantId: id,
    username: z.string(),
    description: z.string().nullable(),
    createdAt: timestamp,
    revokedAt: timestamp.nullable().meta({ description: 'Set once revoked: the credential no longer authenticates' }),
  })
  .meta({ id: 'SmtpCredential', description: 'An SMTP AUTH credential of the tenant (its password is never shown again)' });

export const SmtpCredentialCreated = SmtpCredential.extend({
  password: z.string().meta({ description: 'The generated password. Shown once: only a scrypt hash is stored.' }),
}).meta({ id: 'SmtpCredentialCreated' });

export const SmtpCredentialList = z.object({ items: z.array(SmtpCredential) }).meta({ id: 'SmtpCredentialList' });

export const OutboundIpCreate = z
  .strictObject({
    cidr: z
      .string()
      .trim()
      .max(64)
      .superRefine((value, ctx) => {
        try {
          outboundRange(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .meta({ description: 'An IPv4 or IPv6 range in CIDR notation, or one address', example: '198.51.100.25' }),
    description,
  })
  .meta({ id: 'OutboundIpCreate' });

export const OutboundIp = z
  .object({ id, tenantId: id, cidr: z.string().meta({ description: 'Normalised CIDR (one address: /32 or /128)', example: '198.51.100.25/32' }), description: z.string().nullable(), createdAt: timestamp })
  .meta({ id: 'OutboundIp', description: 'An address range the tenant’s servers send from: they relay without SMTP AUTH' });

export const OutboundIpList = z.object({ items: z.array(OutboundIp) }).meta({ id: 'OutboundIpList' });

export const OutboundPolicy = z
  .strictObject({
    messagesPerMinute: z
      .number()
      .int()
      .positive()
      .max(10_000_000)
      .nullable()
      .meta({ description: 'Outbound messages the tenant may relay per minute; beyond it MAIL FROM gets 451 4.7.1 and the client retries. null: the installation’s default (MOAT_OUTBOUND_RATE_LIMIT)' }),
  })
  .meta({ id: 'OutboundPolicy' });

const credentialParams = z.object({ tenantId: id, credentialId: id });
const ipParams = z.object({ tenantId: id, ipId: id });

function presentCredential(c: StoredSmtpCredential): z.infer<typeof SmtpCredential> {
  return { id: c.id, tenantId: c.tenantId, username: c.username, description: c.description, createdAt: c.createdAt, revokedAt: c.revokedAt };
}

function presentIp(i: StoredOutboundIp): z.infer<typeof OutboundIp> {
  return { id: i.id, tenantId: i.tenantId, cidr: i.cidr, description: i.description, createdAt: i.createdAt };
}

export function outboundRoutes(repos: GatewayRepositories): RouteDef[] {
  /** A credential of the tenant; one of another tenant answers 404 like an unknown one. */
  async function credentialOf(tenantId: string, credentialId: string): Promise<StoredSmtpCredential> {
    const c = isUuid(credentialId) ? await repos.smtpCredentials.get(credentialId) : null;
    if (!c || c.tenantId !== tenantId) throw notFound(`SMTP credential ${credentialId} not found`);
    return c;
  }
  async function ipOf(tenantId: string, ipId: string): Promise<StoredOutboundIp> {
    const i = isUuid(ipId) ? await repos.outboundIps.get(ipId) : null;
    if (!i || i.tenantId !== tenantId) throw notFound(`outbound IP ${ipId} not found`);
    return i;
  }
  return [
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/smtp-credentials',
      operationId: 'createSmtpCredential',
      summary: 'Create an SMTP AUTH credential for the submission ports; the password is shown once',
      description:
        'Moat generates the password (32 characters) and keeps only a scrypt hash: store it now, it cannot be shown again (create a new credential and revoke the old one to rotate). Clients use it with AUTH PLAIN or LOGIN after STARTTLS on the submission port, or on the implicit-TLS port; the envelope sender must be in one of the tenant’s domains. The body may be left out (a username is generated). 409 when the username is taken (usernames are never reused, not even after revocation).',
      tag: 'outbound',
      params: tenantParams,
      body: SmtpCredentialCreate,
      bodyOptional: true,
      success: { status: 201, description: 'The credential, with its password (shown once)', schema: SmtpCredentialCreated, location: true },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('outbound:write');
        const tenant = await access.tenant(params.tenantId!);
        const { credential, password } = await repos.smtpCredentials.create(tenant.id, { username: body.username, description: body.description ?? null });
        // The password is never logged or audited.
        await repos.audit.record({ actor: access.actor, action: 'smtp-credential.create', target: credential.id, detail: { tenantId: tenant.id, username: credential.username } });
        return { body: { ...presentCredential(credential), password }, location: `${apiPrefix}/tenants/${tenant.id}/smtp-credentials/${credential.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/smtp-credentials',
      operationId: 'listSmtpCredentials',
      summary: 'The tenant’s SMTP AUTH credentials (revoked ones included), oldest first; never their passwords',
      tag: 'outbound',
      params: tenantParams,
      success: { status: 200, description: 'The credentials', schema: SmtpCredentialList },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: { items: (await repos.smtpCredentials.list(tenant.id)).map(presentCredential) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/smtp-credentials/{credentialId}',
      operationId: 'getSmtpCredential',
      summary: 'One SMTP AUTH credential of the tenant',
      tag: 'outbound',
      params: credentialParams,
      success: { status: 200, description: 'The credential', schema: SmtpCredential },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: presentCredential(await credentialOf(tenant.id, params.credentialId!)) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/tenants/{tenantId}/smtp-credentials/{credentialId}',
      operationId: 'revokeSmtpCredential',
      summary: 'Revoke an SMTP AUTH credential: it no longer authenticates (sessions already authenticated finish)',
      description: 'The credential stays listed with `revokedAt`; revoking it again changes nothing.',
      tag: 'outbound',
      params: credentialParams,
      success: { status: 200, description: 'The credential, revoked', schema: SmtpCredential },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:write');
        const tenant = await access.tenant(params.tenantId!);
        const before = await credentialOf(tenant.id, params.credentialId!);
        const revoked = (await repos.smtpCredentials.revoke(before.id))!;
        if (before.revokedAt === null) {
          await repos.audit.record({ actor: access.actor, action: 'smtp-credential.revoke', target: revoked.id, detail: { tenantId: tenant.id, username: revoked.username } });
        }
        return { body: presentCredential(revoked) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/outbound-ips',
      operationId: 'addOutboundIp',
      summary: 'Register an address range the tenant’s servers send from: they relay its outbound mail without SMTP AUTH',
      description:
        'From these addresses the tenant’s servers may send mail to any domain through the MX port or the submission ports, without AUTH, as long as the envelope sender is in one of the tenant’s domains (or is <>). A range belongs to one tenant only: 409 when it overlaps a registered range (yours is named, another organisation’s is not).',
      tag: 'outbound',
      params: tenantParams,
      body: OutboundIpCreate,
      success: { status: 201, description: 'The registered range', schema: OutboundIp, location: true },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('outbound:write');
        const tenant = await access.tenant(params.tenantId!);
        const entry = await repos.outboundIps.add(tenant.id, { cidr: body.cidr, description: body.description ?? null });
        await repos.audit.record({ actor: access.actor, action: 'outbound-ip.create', target: entry.id, detail: { tenantId: tenant.id, cidr: entry.cidr } });
        return { body: presentIp(entry), location: `${apiPrefix}/tenants/${tenant.id}/outbound-ips/${entry.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/outbound-ips',
      operationId: 'listOutboundIps',
      summary: 'The tenant’s registered sending ranges, oldest first',
      tag: 'outbound',
      params: tenantParams,
      success: { status: 200, description: 'The ranges', schema: OutboundIpList },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: { items: (await repos.outboundIps.list(tenant.id)).map(presentIp) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/outbound-ips/{ipId}',
      operationId: 'getOutboundIp',
      summary: 'One registered sending range of the tenant',
      tag: 'outbound',
      params: ipParams,
      success: { status: 200, description: 'The range', schema: OutboundIp },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: presentIp(await ipOf(tenant.id, params.ipId!)) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/tenants/{tenantId}/outbound-ips/{ipId}',
      operationId: 'deleteOutboundIp',
      summary: 'Remove a registered sending range: its addresses relay no more (new transactions, within seconds)',
      tag: 'outbound',
      params: ipParams,
      success: { status: 200, description: 'The range removed', schema: OutboundIp },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:write');
        const tenant = await access.tenant(params.tenantId!);
        const entry = await ipOf(tenant.id, params.ipId!);
        const removed = await repos.outboundIps.delete(entry.id);
        if (!removed) throw notFound(`outbound IP ${params.ipId} not found`);
        await repos.audit.record({ actor: access.actor, action: 'outbound-ip.delete', target: removed.id, detail: { tenantId: tenant.id, cidr: removed.cidr } });
        return { body: presentIp(removed) };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/outbound-policy',
      operationId: 'getOutboundPolicy',
      summary: 'The tenant’s outbound rate limit',
      tag: 'outbound',
      params: tenantParams,
      success: { status: 200, description: 'The policy (null: the default)', schema: OutboundPolicy },
      handler: async ({ params, access }) => {
        access.requireScope('outbound:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: (await repos.tenants.getOutboundPolicy(tenant.id))! };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/tenants/{tenantId}/outbound-policy',
      operationId: 'setOutboundPolicy',
      summary: 'Set the tenant’s outbound rate limit (null: back to the default)',
      tag: 'outbound',
      params: tenantParams,
      body: OutboundPolicy,
      success: { status: 200, description: 'The policy now in force', schema: OutboundPolicy },
      handler: async ({ params, body, access }) => {
        access.requireScope('outbound:write');
        const tenant = await access.tenant(params.tenantId!);
        const policy = (await repos.tenants.setOutboundPolicy(tenant.id, { messagesPerMinute: body.messagesPerMinute }))!;
        await repos.audit.record({ actor: access.actor, action: 'tenant.outbound-policy', target: tenant.id, detail: { messagesPerMinute: policy.messagesPerMinute } });
        return { body: policy };
      },
    }),
  ];
}
