/**
 * The console's places, kept in the URL fragment (#/quarantine?…, #/quarantine/<id>?…,
 * #/archive?…) so a reload or a shared link opens the same view; the fragment never reaches the
 * server's logs.
 */

export const categories = ['virus', 'spoofing', 'spam', 'policy'] as const;
export const states = ['quarantined', 'released', 'deleted', 'expired'] as const;

export interface QuarantineFilters {
  tenant: string | null;
  rcpt: string;
  category: string;
  state: string;
  q: string;
}

/** The LiveArchive search: a tenant's delivered and sent mail. */
export interface ArchiveFilters {
  tenant: string | null;
  q: string;
}

export type Place =
  | { view: 'signin' }
  | { view: 'quarantine'; filters: QuarantineFilters }
  | { view: 'message'; messageId: string; filters: QuarantineFilters }
  | { view: 'archive'; filters: ArchiveFilters };

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function filtersFrom(params: URLSearchParams): QuarantineFilters {
  const pick = (name: string, allowed: readonly string[], fallback: string) => {
    const v = params.get(name) ?? fallback;
    return allowed.includes(v) ? v : fallback;
  };
  const tenant = params.get('tenant');
  return {
    tenant: tenant && uuid.test(tenant) ? tenant : null,
    rcpt: (params.get('rcpt') ?? '').trim().slice(0, 320),
    category: pick('category', ['', ...categories], ''),
    state: pick('state', states, 'quarantined'),
    q: (params.get('q') ?? '').trim().slice(0, 500),
  };
}

export function parsePlace(hash: string): Place {
  const [path = '', query = ''] = hash.replace(/^#/, '').split('?', 2);
  const filters = filtersFrom(new URLSearchParams(query));
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'quarantine' && parts.length === 1) return { view: 'quarantine', filters };
  if (parts[0] === 'quarantine' && parts.length === 2 && uuid.test(parts[1]!)) return { view: 'message', messageId: parts[1]!, filters };
  if (parts[0] === 'archive' && parts.length === 1) return { view: 'archive', filters: { tenant: filters.tenant, q: filters.q } };
  return { view: 'signin' };
}

function query(filters: Partial<QuarantineFilters> | Partial<ArchiveFilters>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
  const s = params.toString();
  return s ? `?${s}` : '';
}

export function quarantineHref(filters: Partial<QuarantineFilters>): string {
  return `#/quarantine${query(filters)}`;
}

export function archiveHref(filters: Partial<ArchiveFilters>): string {
  return `#/archive${query(filters)}`;
}

/** The API query for a page of the archive search. */
export function archiveQuery(filters: ArchiveFilters, before: string | null, limit = 50): string {
  const params = new URLSearchParams();
  if (filters.q) params.set('q', filters.q);
  params.set('limit', String(limit));
  if (before) params.set('before', before);
  return params.toString();
}

/** Where a key lands after signing in: the quarantine, or the archive for a key that may only read that. */
export function homeHref(scopes: readonly string[]): string {
  const may = (scope: string) => scopes.includes(scope) || scopes.includes('*');
  return !may('quarantine:read') && may('archive:read') ? archiveHref({}) : quarantineHref({});
}

export function messageHref(messageId: string, filters: Partial<QuarantineFilters>): string {
  return `#/quarantine/${messageId}${query(filters)}`;
}

/** The API query for a filtered list page. */
export function listQuery(filters: QuarantineFilters, before: string | null, limit = 50): string {
  const params = new URLSearchParams();
  if (filters.rcpt) params.set('rcpt', filters.rcpt);
  if (filters.category) params.set('category', filters.category);
  params.set('state', filters.state);
  if (filters.q) params.set('q', filters.q);
  params.set('limit', String(limit));
  if (before) params.set('before', before);
  return params.toString();
}
