import type { MessageAcceptedPayload } from '@moat/contracts';
import { defaultFilterPolicy, TtlCache, type FilterPolicyRepository, type TenantFilterSettings } from '@moat/store';
import { headerFromAddresses } from './headers.js';
import type { TenantContext } from './tenant-policy.js';

/** A tenant with no policy, lists or domains: the service's behaviour (the filter without a source). */
export const noTenantPolicy: TenantContext = { settings: { policy: defaultFilterPolicy, entries: [], domains: [] }, headerFrom: [] };

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

  async forMessage(raw: Buffer, accepted: Pick<MessageAcceptedPayload, 'tenantId' | 'direction'>): Promise<TenantContext> {
    const [settings, headerFrom] = await Promise.all([
      this.cache.get(accepted.tenantId, () => this.repo.settingsFor(accepted.tenantId)),
      // Only inbound mail is judged on who sent it; a header section the parser refuses has no From to match.
      accepted.direction === 'inbound' ? headerFromAddresses(raw).catch(() => []) : [],
    ]);
    return { settings, headerFrom };
  }
}
