import { z } from 'zod';
import { defaultDkimSelector, dkimDnsRecord, generateDkimKeyPair, type DkimKey as StoredDkimKey, type Domain } from '@moat/store';
import { isUuid, type Access } from '../access.js';
import { notFound, ProblemError } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { apiPrefix, defineRoute, type RouteDef } from '../route.js';
import { DkimKey, DkimKeyCreate, DkimKeyList } from '../schemas.js';

const domainParams = z.object({ domainId: z.uuid() });
const keyParams = z.object({ domainId: z.uuid(), keyId: z.uuid() });

/** A key as the API shows it: the DNS record to publish instead of key material (the private key never leaves). */
function present(key: StoredDkimKey): z.infer<typeof DkimKey> {
  return {
    id: key.id,
    domainId: key.domainId,
    tenantId: key.tenantId,
    domain: key.domain,
    selector: key.selector,
    algorithm: key.algorithm,
    state: key.state,
    dnsRecord: dkimDnsRecord(key.domain, key.selector, key.algorithm, key.publicKey),
    createdAt: key.createdAt,
    activatedAt: key.activatedAt,
    retiredAt: key.retiredAt,
  };
}

/** DKIM signing keys of a protected domain: the filter signs the tenant's outbound mail with the active one. */
export function dkimKeyRoutes(repos: GatewayRepositories): RouteDef[] {
  /** The domain when it exists and this key may see it; 404 otherwise (the same answer for both). */
  async function visibleDomain(access: Access, id: string): Promise<Domain> {
    const domain = isUuid(id) ? await repos.tenants.getDomain(id) : null;
    if (!domain || !(await access.canSeeTenantId(domain.tenantId))) throw notFound(`domain ${id} not found`);
    return domain;
  }
  /** A key of that domain; a key of another domain answers 404 like an unknown one. */
  async function keyOfDomain(domain: Domain, id: string): Promise<StoredDkimKey> {
    const key = isUuid(id) ? await repos.dkimKeys.get(id) : null;
    if (!key || key.domainId !== domain.id) throw notFound(`DKIM key ${id} not found`);
    return key;
  }
  return [
    defineRoute({
      method: 'post',
      path: '/domains/{domainId}/dkim-keys',
      operationId: 'createDkimKey',
      summary: 'Generate a DKIM signing key for the domain; answers the DNS record to publish',
      description:
        'Generates a key pair in Moat (rsa-sha256 with a 2048-bit key by default, or ed25519-sha256); the private key is stored encrypted (sealed to the filter’s key: the API itself cannot read it back) and never returned. Publish `dnsRecord` (TXT at `<selector>._domainkey.<domain>`), then activate the key: from then on the tenant’s outbound mail whose From (or else envelope sender) domain is this one is signed with it. With `activate: true` it signs at once and the active key is retired. The body may be left out (all defaults). 409 when the selector is already used by a key of this domain; 503 until a filter has started once (it publishes the key private keys are sealed to).',
      tag: 'dkim-keys',
      params: domainParams,
      body: DkimKeyCreate,
      bodyOptional: true,
      success: { status: 201, description: 'The key, with the DNS record to publish', schema: DkimKey, location: true },
      problems: [409, 503],
      handler: async ({ params, body, access }) => {
        access.requireScope('domains:write');
        const domain = await visibleDomain(access, params.domainId!);
        // The gateway holds no master key: it seals the private key to the key the filter published.
        const sealingKey = await repos.dkimKeys.sealingKey();
        if (!sealingKey) throw new ProblemError(503, 'no filter has published its DKIM sealing key yet: start the filter service (it publishes the key DKIM private keys are sealed to), then retry');
        const pair = await generateDkimKeyPair(body.algorithm);
        const { key, retired } = await repos.dkimKeys.create({ domainId: domain.id, selector: body.selector ?? defaultDkimSelector(), pair, activate: body.activate, sealingKey });
        await repos.audit.record({
          actor: access.actor,
          action: 'dkim_key.create',
          target: key.id,
          detail: { domainId: domain.id, domain: domain.name, selector: key.selector, algorithm: key.algorithm, state: key.state, ...(retired ? { retiredKeyId: retired.id } : {}) },
        });
        return { body: present(key), location: `${apiPrefix}/domains/${domain.id}/dkim-keys/${key.id}` };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/domains/{domainId}/dkim-keys',
      operationId: 'listDkimKeys',
      summary: 'The domain’s DKIM keys, newest first (retired ones included, so their DNS records can be cleaned up)',
      tag: 'dkim-keys',
      params: domainParams,
      success: { status: 200, description: 'The keys', schema: DkimKeyList },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const domain = await visibleDomain(access, params.domainId!);
        return { body: { items: (await repos.dkimKeys.listForDomain(domain.id)).map(present) } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/domains/{domainId}/dkim-keys/{keyId}',
      operationId: 'getDkimKey',
      summary: 'One DKIM key of the domain, with its DNS record',
      tag: 'dkim-keys',
      params: keyParams,
      success: { status: 200, description: 'The key', schema: DkimKey },
      handler: async ({ params, access }) => {
        access.requireScope('domains:read');
        const domain = await visibleDomain(access, params.domainId!);
        return { body: present(await keyOfDomain(domain, params.keyId!)) };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/domains/{domainId}/dkim-keys/{keyId}/activate',
      operationId: 'activateDkimKey',
      summary: 'Sign the domain’s outbound mail with this key from now on; the key active until now is retired',
      description:
        'Publish the key’s DNS record before activating it. Activating the active key changes nothing. 409 for a retired key: it never signs again (create a new key). The filter picks the change up within MOAT_FILTER_DKIM_KEY_CACHE_MS.',
      tag: 'dkim-keys',
      params: keyParams,
      success: { status: 200, description: 'The key, active', schema: DkimKey },
      problems: [409],
      handler: async ({ params, access }) => {
        access.requireScope('domains:write');
        const domain = await visibleDomain(access, params.domainId!);
        const before = await keyOfDomain(domain, params.keyId!);
        const { key, retired } = await repos.dkimKeys.activate(before.id);
        if (before.state !== 'active') {
          await repos.audit.record({
            actor: access.actor,
            action: 'dkim_key.activate',
            target: key.id,
            detail: { domainId: domain.id, domain: domain.name, selector: key.selector, ...(retired ? { retiredKeyId: retired.id, retiredSelector: retired.selector } : {}) },
          });
        }
        return { body: present(key) };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/domains/{domainId}/dkim-keys/{keyId}',
      operationId: 'retireDkimKey',
      summary: 'Retire a DKIM key: it never signs again (retiring the active key leaves the domain’s mail unsigned)',
      description:
        'The key stays listed as `retired`, so its DNS record can be removed once the mail signed with it has been delivered (a few days). Retiring a retired key changes nothing.',
      tag: 'dkim-keys',
      params: keyParams,
      success: { status: 200, description: 'The key, retired', schema: DkimKey },
      handler: async ({ params, access }) => {
        access.requireScope('domains:write');
        const domain = await visibleDomain(access, params.domainId!);
        const before = await keyOfDomain(domain, params.keyId!);
        const key = await repos.dkimKeys.retire(before.id);
        if (before.state !== 'retired') {
          await repos.audit.record({ actor: access.actor, action: 'dkim_key.retire', target: key.id, detail: { domainId: domain.id, domain: domain.name, selector: key.selector, wasActive: before.state === 'active' } });
        }
        return { body: present(key) };
      },
    }),
  ];
}
