import type { NextFunction, Request, Response } from 'express';
import type { ApiKeyRepository, Principal, Tenant, TenantRepository } from '@moat/store';
import type { PartnerRepository } from './data/partners.js';
import { forbidden, notFound, unauthorized } from './problem.js';

/**
 * What an API key may do. Roles decide *which* tenants a key sees (DESIGN.md, Promise 6):
 * an operator sees all, a partner its tenants, a tenant key its own tenant. Another tenant's
 * resources answer 404, exactly like resources that do not exist, so a key never learns what
 * exists outside its reach. Scopes decide *what* a partner or tenant key may do there.
 */
export const apiScopes = ['tenants:read', 'tenants:write', 'domains:read', 'domains:write', 'mailboxes:read', 'mailboxes:write', 'api-keys:write', 'messages:read', 'archive:read', 'queue:read', 'queue:write', 'outbound:read', 'outbound:write', 'quarantine:read', 'quarantine:write', 'quarantine:release-dangerous', 'spam-feedback:read', 'spam-feedback:write', '*'] as const;
export type ApiScope = (typeof apiScopes)[number];

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(v: string): boolean {
  return uuidPattern.test(v);
}

export class Access {
  constructor(
    readonly principal: Principal,
    private readonly tenants: TenantRepository,
    private readonly partners: PartnerRepository,
  ) {}

  /** The audit log's actor: the key's name and id. */
  get actor(): string {
    return `${this.principal.name}/${this.principal.keyId}`;
  }

  get isOperator(): boolean {
    return this.principal.role === 'operator';
  }

  requireOperator(): void {
    if (!this.isOperator) throw forbidden('this endpoint needs an operator API key');
  }

  /** Operators hold every scope; other keys need the scope (or `*`). */
  holds(scope: ApiScope): boolean {
    return this.isOperator || this.principal.scopes.includes('*') || this.principal.scopes.includes(scope);
  }

  requireScope(scope: ApiScope): void {
    if (!this.holds(scope)) throw forbidden(`this API key lacks the scope ${scope}`);
  }

  /** A key can hand out only scopes it holds itself. */
  requireGrantable(scopes: readonly string[]): void {
    for (const scope of scopes) {
      if (!this.holds(scope as ApiScope)) throw forbidden(`this API key cannot grant the scope ${scope}, which it does not hold`);
    }
  }

  canSeeTenant(tenant: Pick<Tenant, 'id' | 'partnerId'>): boolean {
    switch (this.principal.role) {
      case 'operator':
        return true;
      case 'partner':
        return this.principal.partnerId !== null && tenant.partnerId === this.principal.partnerId;
      case 'tenant':
        return this.principal.tenantId !== null && tenant.id === this.principal.tenantId;
    }
  }

  /** The tenant, when it exists and this key may see it; 404 otherwise (the same answer for both). */
  async tenant(id: string): Promise<Tenant> {
    const tenant = isUuid(id) ? await this.tenants.getTenant(id) : null;
    if (!tenant || !this.canSeeTenant(tenant)) throw notFound(`tenant ${id} not found`);
    return tenant;
  }

  /** Whether a resource of this tenant (null: not attributed to any) is visible to this key. */
  async canSeeTenantId(tenantId: string | null): Promise<boolean> {
    if (this.isOperator) return true;
    if (tenantId === null) return false;
    if (this.principal.role === 'tenant') return tenantId === this.principal.tenantId;
    const tenant = await this.tenants.getTenant(tenantId);
    return tenant !== null && this.canSeeTenant(tenant);
  }

  async visibleTenants(): Promise<Tenant[]> {
    const all = await this.tenants.listTenants();
    return all.filter((t) => this.canSeeTenant(t));
  }

  /** The tenant filter for a query: the requested tenant when visible, else all visible tenants. */
  async tenantFilter(requested: string | undefined): Promise<{ tenantId?: string; tenantIds?: string[] }> {
    if (requested !== undefined) return { tenantId: (await this.tenant(requested)).id };
    switch (this.principal.role) {
      case 'operator':
        return {};
      case 'tenant':
        return { tenantIds: this.principal.tenantId ? [this.principal.tenantId] : [] };
      case 'partner':
        return { tenantIds: this.principal.partnerId ? await this.partners.tenantIds(this.principal.partnerId) : [] };
    }
  }
}

/** Bearer authentication (RFC 6750 §2.1) for everything mounted after it. */
export function authenticate(deps: { apiKeys: ApiKeyRepository; tenants: TenantRepository; partners: PartnerRepository }) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const header = req.headers.authorization;
    if (!header) throw unauthorized('missing bearer token: send the header Authorization: Bearer <API key>', false);
    const match = /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header);
    if (!match) throw unauthorized('the Authorization header must use the Bearer scheme: Authorization: Bearer <API key>', false);
    const principal = await deps.apiKeys.authenticate(match[1]!);
    if (!principal) throw unauthorized('the bearer token is not a valid API key (unknown or revoked)', true);
    res.locals.access = new Access(principal, deps.tenants, deps.partners);
    next();
  };
}

export function accessOf(res: Response): Access {
  const access = res.locals.access as Access | undefined;
  // Routes behind authenticate() always have it; reaching here without it is a wiring bug.
  if (!access) throw new Error('route reached without authentication');
  return access;
}
