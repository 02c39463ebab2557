import { z } from 'zod';
import { dmarcHandlings, filterEntryKinds, filterLists, normalizeDomain, normalizeListValue, scannerFallbacks, type FilterListEntry as StoredEntry, type FilterPolicy as StoredPolicy } from '@moat/store';
import { isUuid } from '../access.js';
import { badRequest, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { tenantParams } from './tenants.js';

// A tenant's filter policy and allow/block lists (issue 5, "Tenant policy"). The filter reads
// them (cached for MOAT_FILTER_POLICY_CACHE_MS), so a change applies within that bound.

const id = z.uuid();
const timestamp = z.iso.datetime({ offset: true });
const score = (what: string) => z.number().finite().min(0).max(1000).nullable().meta({ description: `${what}; null: the filter's default` });

export const FilterPolicy = z
  .object({
    spamTagScore: score('Spam score at or above which delivered mail is tagged (X-Moat-Spam-Status: unsure, and the subject tag)'),
    subjectTag: z
      .string()
      .min(1)
      .max(40)
      .regex(/^[^\x00-\x1f\x7f]+$/, 'must be one line of printable text')
      .nullable()
      .meta({ description: 'Prefixed to the Subject of tagged mail when it is delivered; null: the subject is left alone', example: '[SPAM]' }),
    quarantineScore: score('Spam score at or above which mail is quarantined'),
    rejectScore: z
      .number()
      .finite()
      .min(0)
      .max(1000)
      .nullable()
      .meta({ description: 'Spam score at or above which mail is rejected (its sender gets a DSN); null: spam is never rejected. Needs quarantineScore, and must not be below it' }),
    dmarc: z.enum(dmarcHandlings).meta({ description: '`honour`: a DMARC failure is quarantined or rejected as the sender domain’s p= (sp=) asks; `tag`: only recorded (the default)' }),
    scannerUnavailable: z
      .enum(scannerFallbacks)
      .nullable()
      .meta({ description: 'When a scanner gives no verdict (or anti-spoofing cannot be settled): `retry` (the message waits) or `deliver` (delivered, marked); null: MOAT_FILTER_SCANNER_UNAVAILABLE' }),
    quarantineDigests: z
      .boolean()
      .meta({ description: 'Quarantine digests for the tenant’s mailboxes (true, the default, when the archive sends digests at all). Turned back on, digests list only messages quarantined from then on' }),
  })
  .strict()
  .meta({ id: 'FilterPolicy' });

export const FilterListEntryCreate = z
  .strictObject({
    list: z.enum(filterLists).meta({ description: '`allow`: the spam verdict is not applied (never virus scanning); `block`: quarantined' }),
    kind: z.enum(filterEntryKinds).meta({ description: '`address`: a whole address; `domain`: the domain and all its subdomains; `ip`: an IPv4/IPv6 address or CIDR range of the client' }),
    value: z.string().trim().min(1).max(320).meta({ example: 'newsletter@shop.example' }),
    mailbox: z.string().trim().toLowerCase().min(3).max(320).nullable().optional().meta({ description: 'The recipient address the entry is for (one of the tenant’s domains); null or left out: every recipient of the tenant' }),
    comment: z.string().trim().max(500).nullable().optional(),
  })
  .superRefine((body, ctx) => {
    try {
      normalizeListValue(body.kind, body.value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: (err as Error).message });
    }
  })
  .meta({ id: 'FilterListEntryCreate' });

export const FilterListEntry = z
  .object({
    id,
    tenantId: id,
    mailbox: z.string().nullable().meta({ description: 'null: tenant-wide' }),
    list: z.enum(filterLists),
    kind: z.enum(filterEntryKinds),
    value: z.string().meta({ description: 'Normalised: lower case; an ip entry in CIDR form (one address as /32 or /128)' }),
    comment: z.string().nullable(),
    createdAt: timestamp,
  })
  .meta({ id: 'FilterListEntry' });

export const FilterListEntryList = z.object({ items: z.array(FilterListEntry) }).meta({ id: 'FilterListEntryList' });

export const FilterListQuery = z.strictObject({
  mailbox: z.string().trim().toLowerCase().min(3).max(320).optional().meta({ description: 'Only the entries of this mailbox' }),
  tenantWide: z.enum(['true', 'false']).optional().meta({ description: '`true`: only tenant-wide entries; `false`: only mailbox entries' }),
  list: z.enum(filterLists).optional().meta({ description: 'Only the allow or the block list' }),
});

const entryParams = tenantParams.extend({ entryId: z.uuid() });

/** Field errors for a policy whose scores are out of order (null scores take the filter's defaults, which the API does not know). */
function orderProblems(p: StoredPolicy): Array<{ field: string; message: string }> {
  const problems: Array<{ field: string; message: string }> = [];
  if (p.spamTagScore !== null && p.quarantineScore !== null && p.spamTagScore > p.quarantineScore) {
    problems.push({ field: 'spamTagScore', message: `must not be above quarantineScore (${p.quarantineScore})` });
  }
  if (p.rejectScore !== null && p.quarantineScore === null) {
    problems.push({ field: 'rejectScore', message: 'needs quarantineScore: set both, so that the reject score can never fall below the quarantine score' });
  }
  if (p.rejectScore !== null && p.quarantineScore !== null && p.rejectScore < p.quarantineScore) {
    problems.push({ field: 'rejectScore', message: `must not be below quarantineScore (${p.quarantineScore})` });
  }
  return problems;
}

export function filterPolicyRoutes(repos: GatewayRepositories): RouteDef[] {
  /** The entry when it belongs to this tenant; another tenant's answers 404 like an unknown one. */
  async function entryOf(tenantId: string, entryId: string): Promise<StoredEntry> {
    const entry = isUuid(entryId) ? await repos.filterPolicies.getEntry(entryId) : null;
    if (!entry || entry.tenantId !== tenantId) throw notFound(`filter list entry ${entryId} not found`);
    return entry;
  }
  return [
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/filter-policy',
      operationId: 'getFilterPolicy',
      summary: "Read a tenant's filter policy: spam thresholds, subject tag, DMARC handling, scanner fallback",
      tag: 'filter-policy',
      params: tenantParams,
      success: { status: 200, description: 'The policy (null fields take the filter’s defaults)', schema: FilterPolicy },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: await repos.filterPolicies.getPolicy(tenant.id) };
      },
    }),
    defineRoute({
      method: 'patch',
      path: '/tenants/{tenantId}/filter-policy',
      operationId: 'setFilterPolicy',
      summary: "Change a tenant's filter policy",
      description:
        'Fields left out keep their value; null restores the filter’s default. The scores must be in order: spamTagScore ≤ quarantineScore ≤ rejectScore (rejectScore needs quarantineScore). The filter applies the change within MOAT_FILTER_POLICY_CACHE_MS.',
      tag: 'filter-policy',
      params: tenantParams,
      body: FilterPolicy.partial().meta({ id: 'FilterPolicyChange' }),
      success: { status: 200, description: 'The policy now in force', schema: FilterPolicy },
      handler: async ({ params, body, access }) => {
        access.requireScope('tenants:write');
        const tenant = await access.tenant(params.tenantId!);
        const next: StoredPolicy = { ...(await repos.filterPolicies.getPolicy(tenant.id)), ...body };
        const problems = orderProblems(next);
        if (problems.length > 0) throw badRequest(`the scores are out of order: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
        const policy = await repos.filterPolicies.setPolicy(tenant.id, next);
        await repos.audit.record({ actor: access.actor, action: 'tenant.filter-policy', target: tenant.id, detail: policy as unknown as Record<string, unknown> });
        return { body: policy };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/filter-lists',
      operationId: 'createFilterListEntry',
      summary: 'Add an allow or block list entry, tenant-wide or for one mailbox',
      description:
        'Matched against the envelope sender, the From header address(es) (address and domain entries; a domain matches its subdomains) and the client IP (ip entries). A block entry wins over an allow entry. A mailbox entry decides for that recipient only: when the recipients of one message end differently, the message is split (README: Tenant filter policy), e.g. delivered to the others and quarantined for the mailbox that blocks the sender. 409 when the same entry exists.',
      tag: 'filter-policy',
      params: tenantParams,
      body: FilterListEntryCreate,
      success: { status: 201, description: 'The entry', schema: FilterListEntry, location: true },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('tenants:write');
        const tenant = await access.tenant(params.tenantId!);
        const mailbox = body.mailbox ?? null;
        if (mailbox !== null) {
          const at = mailbox.lastIndexOf('@');
          const domain = at > 0 ? normalizeDomain(mailbox.slice(at + 1)) : '';
          const domains = await repos.tenants.listDomains(tenant.id);
          if (at <= 0 || !domains.some((d) => d.name === domain)) {
            const message = at <= 0 ? 'not an email address' : `${domain} is not one of this tenant's domains`;
            throw badRequest(`mailbox: ${message}`, [{ field: 'mailbox', message }]);
          }
        }
        const entry = await repos.filterPolicies.addEntry(tenant.id, { mailbox, list: body.list, kind: body.kind, value: body.value, comment: body.comment ?? null });
        await repos.audit.record({ actor: access.actor, action: 'filter-list.add', target: entry.id, detail: { tenantId: tenant.id, mailbox, list: entry.list, kind: entry.kind, value: entry.value } });
        return { body: entry, location: `${apiPrefix}/tenants/${tenant.id}/filter-lists/${entry.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/filter-lists',
      operationId: 'listFilterListEntries',
      summary: "A tenant's allow and block list entries, oldest first",
      tag: 'filter-policy',
      params: tenantParams,
      query: FilterListQuery,
      success: { status: 200, description: 'The entries', schema: FilterListEntryList },
      handler: async ({ params, query, access }) => {
        access.requireScope('tenants:read');
        const tenant = await access.tenant(params.tenantId!);
        if (query.mailbox !== undefined && query.tenantWide === 'true') {
          throw badRequest('mailbox and tenantWide=true exclude each other', [{ field: 'tenantWide', message: 'cannot be true with mailbox' }]);
        }
        const items = await repos.filterPolicies.listEntries(tenant.id, {
          ...(query.mailbox !== undefined ? { mailbox: query.mailbox } : query.tenantWide === 'true' ? { mailbox: null } : {}),
          ...(query.list ? { list: query.list } : {}),
        });
        return { body: { items: query.tenantWide === 'false' ? items.filter((e) => e.mailbox !== null) : items } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/filter-lists/{entryId}',
      operationId: 'getFilterListEntry',
      summary: 'One allow or block list entry',
      tag: 'filter-policy',
      params: entryParams,
      success: { status: 200, description: 'The entry', schema: FilterListEntry },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: await entryOf(tenant.id, params.entryId!) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/tenants/{tenantId}/filter-lists/{entryId}',
      operationId: 'deleteFilterListEntry',
      summary: 'Remove an allow or block list entry (the filter stops applying it within MOAT_FILTER_POLICY_CACHE_MS)',
      tag: 'filter-policy',
      params: entryParams,
      success: { status: 200, description: 'The entry removed', schema: FilterListEntry },
      handler: async ({ params, access }) => {
        access.requireScope('tenants:write');
        const tenant = await access.tenant(params.tenantId!);
        const before = await entryOf(tenant.id, params.entryId!);
        const removed = await repos.filterPolicies.deleteEntry(before.id);
        if (!removed) throw notFound(`filter list entry ${before.id} not found`);
        await repos.audit.record({ actor: access.actor, action: 'filter-list.delete', target: removed.id, detail: { tenantId: tenant.id, mailbox: removed.mailbox, list: removed.list, kind: removed.kind, value: removed.value } });
        return { body: removed };
      },
    }),
  ];
}
