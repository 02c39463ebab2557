import { defaultFilterPolicy, TtlCache, type FilterPolicyRepository, type TenantFilterSettings } from '@moat/store';

/** A tenant with no policy, lists or domains: the service's behaviour (the filter without a source). */
export const noTenantSettings: TenantFilterSettings = { policy: defaultFilterPolicy, entries: [], domains: [] };

/**
 * Reads a tenant's filter settings (policy, list entries, protected domains) for the filter,
 * remembered for `cacheTtlMs` (MOAT_FILTER_POLICY_CACHE_MS) so the database is asked once per
 * tenant per period, not per message; a change through the API applies within that bound. A
 * database that cannot be reached throws: the message is filtered again later, never filtered
 * without its tenant's policy.
 */
export class TenantPolicySource {
  private readonly cache: TtlCache<TenantFilterSettings>;

  constructor(
    private readonly repo: Pick<FilterPolicyRepository, 'settingsFor'>,
    cacheTtlMs: number,
  ) {
    this.cache = new TtlCache(cacheTtlMs, 10_000);
  }

  settingsFor(tenantId: string): Promise<TenantFilterSettings> {
    return this.cache.get(tenantId, () => this.repo.settingsFor(tenantId));
  }
}
