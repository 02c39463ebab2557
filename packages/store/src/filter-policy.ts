import { isIP } from 'node:net';
import { randomUUID } from 'node:crypto';
import { MoatError, type Pool } from '@moat/runtime';
import { CidrError, normalizeCidr } from './cidr.js';
import { normalizeDomain } from './tenants.js';

// =============================================================================================
// Tenant filter policy (issue 5, "Tenant policy"; migration 1732700020000): spam thresholds,
// DMARC handling, the scanner-unavailable fallback, and allow/block list entries per tenant and
// per mailbox. The gateway writes them; the filter reads them (cached, filter-policy-cache.ts).
// =============================================================================================

export const dmarcHandlings = ['honour', 'tag'] as const;
export type DmarcHandling = (typeof dmarcHandlings)[number];
export const scannerFallbacks = ['retry', 'deliver'] as const;
export type ScannerFallback = (typeof scannerFallbacks)[number];

/**
 * A tenant's filter policy. A null field takes the filter's service-wide value (its config), so a
 * tenant that never set anything is filtered exactly as before tenant policy existed.
 */
export interface FilterPolicy {
  /** At or above: delivered tagged (X-Moat-Spam-Status: unsure). */
  spamTagScore: number | null;
  /** Prefixed to the Subject of tagged mail ("[SPAM]"); null: the subject is left alone. */
  subjectTag: string | null;
  /** At or above: quarantined. */
  quarantineScore: number | null;
  /** At or above: rejected (a DSN goes to the sender); null: spam is never rejected. */
  rejectScore: number | null;
  /** `honour`: DMARC p=quarantine / p=reject act on failing mail; `tag`: only recorded. */
  dmarc: DmarcHandling;
  /** What a scanner without a verdict means; null: MOAT_FILTER_SCANNER_UNAVAILABLE. */
  scannerUnavailable: ScannerFallback | null;
  /** Quarantine digests for the tenant's mailboxes (when the archive sends digests at all). */
  quarantineDigests: boolean;
}

export const defaultFilterPolicy: FilterPolicy = Object.freeze({ spamTagScore: null, subjectTag: null, quarantineScore: null, rejectScore: null, dmarc: 'tag', scannerUnavailable: null, quarantineDigests: true });

export const filterLists = ['allow', 'block'] as const;
export type FilterList = (typeof filterLists)[number];
export const filterEntryKinds = ['address', 'domain', 'ip'] as const;
export type FilterEntryKind = (typeof filterEntryKinds)[number];

export interface FilterListEntry {
  id: string;
  tenantId: string;
  /** The recipient address the entry is for; null: every recipient of the tenant. */
  mailbox: string | null;
  list: FilterList;
  kind: FilterEntryKind;
  /** Normalised: a lower-case address or domain, or a CIDR range in cidr.ts spelling. */
  value: string;
  comment: string | null;
  createdAt: string;
}

/** What the filter needs of a tenant for one message: its policy, its list entries, its protected domains. */
export interface TenantFilterSettings {
  policy: FilterPolicy;
  entries: FilterListEntry[];
  /** The tenant's protected domains, lower case (anti-spoofing). */
  domains: string[];
}

const invalid = (message: string) => new MoatError('VALIDATION_FAILED', message);

/** A host name as a list entry may name it: labels of letters, digits and hyphens (IDNs in their A-label form). */
const domainPattern = /^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The one spelling an entry is stored and matched in, or VALIDATION_FAILED saying what is wrong:
 * - address: `local@domain`, lower-cased (Moat compares addresses case-insensitively, as receivers do in practice);
 * - domain: a host name, lower-cased, without a trailing dot; it matches its subdomains too, so
 *   `*.` is refused as redundant rather than silently dropped;
 * - ip: a CIDR range (IPv4 or IPv6; host bits must be clear) or one address (stored as /32, /128).
 */
export function normalizeListValue(kind: FilterEntryKind, value: string): string {
  const text = value.trim();
  switch (kind) {
    case 'address': {
      const at = text.lastIndexOf('@');
      if (at <= 0 || at === text.length - 1) throw invalid(`${text || '(empty)'} is not an email address (local@domain)`);
      if (/\s/.test(text)) throw invalid(`${text} is not an email address: it contains white space`);
      const domain = normalizeDomain(text.slice(at + 1));
      if (!domainPattern.test(domain)) throw invalid(`${text}: ${domain} is not a domain name`);
      return `${text.slice(0, at).toLowerCase()}@${domain}`;
    }
    case 'domain': {
      if (text.startsWith('*.')) throw invalid(`${text}: write the domain without "*." — a domain entry matches its subdomains too`);
      if (text.includes('@')) throw invalid(`${text} is an address; use kind "address" for it`);
      const domain = normalizeDomain(text);
      if (!domainPattern.test(domain)) throw invalid(`${text || '(empty)'} is not a domain name`);
      return domain;
    }
    case 'ip': {
      const version = isIP(text);
      if (version === 0 && !text.includes('/')) throw invalid(`${text || '(empty)'} is not an IPv4 or IPv6 address or a CIDR range (address/prefix)`);
      try {
        return normalizeCidr(version === 0 ? text : `${text}/${version === 4 ? 32 : 128}`);
      } catch (err) {
        if (err instanceof CidrError) throw invalid(err.message);
        throw err;
      }
    }
  }
}

interface PolicyRow {
  spam_tag_score: number | null;
  subject_tag: string | null;
  quarantine_score: number | null;
  reject_score: number | null;
  dmarc: DmarcHandling;
  scanner_unavailable: ScannerFallback | null;
  quarantine_digests: boolean;
}

function toPolicy(r: PolicyRow | undefined): FilterPolicy {
  if (!r) return { ...defaultFilterPolicy };
  return {
    spamTagScore: r.spam_tag_score,
    subjectTag: r.subject_tag,
    quarantineScore: r.quarantine_score,
    rejectScore: r.reject_score,
    dmarc: r.dmarc,
    scannerUnavailable: r.scanner_unavailable,
    quarantineDigests: r.quarantine_digests,
  };
}

interface EntryRow {
  id: string;
  tenant_id: string;
  mailbox: string | null;
  list: FilterList;
  kind: FilterEntryKind;
  value: string;
  comment: string | null;
  created_at: Date;
}

function toEntry(r: EntryRow): FilterListEntry {
  return { id: r.id, tenantId: r.tenant_id, mailbox: r.mailbox, list: r.list, kind: r.kind, value: r.value, comment: r.comment, createdAt: r.created_at.toISOString() };
}

const entryColumns = 'id, tenant_id, mailbox, list, kind, value, comment, created_at';
const policyColumns = 'spam_tag_score, subject_tag, quarantine_score, reject_score, dmarc, scanner_unavailable, quarantine_digests';

/** Entries per tenant: a bound so one tenant cannot make every message's policy check slow. */
export const maxFilterListEntries = 10_000;

export class FilterPolicyRepository {
  constructor(private readonly pool: Pool) {}

  /** The tenant's policy; the defaults (all null, DMARC `tag`) when it never set one. */
  async getPolicy(tenantId: string): Promise<FilterPolicy> {
    const res = await this.pool.query(`SELECT ${policyColumns} FROM tenant_filter_policies WHERE tenant_id = $1`, [tenantId]);
    return toPolicy(res.rows[0]);
  }

  /**
   * Replaces the tenant's policy. VALIDATION_FAILED when the scores are out of order (the gateway
   * checks first, with field names; this is the schema's last word); NOT_FOUND for an unknown tenant.
   */
  async setPolicy(tenantId: string, p: FilterPolicy): Promise<FilterPolicy> {
    try {
      const res = await this.pool.query(
        // Digests turned back on start from now (quarantine_digests_since): what waited while they
        // were off is not listed (digests.ts).
        `INSERT INTO tenant_filter_policies (tenant_id, ${policyColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id) DO UPDATE SET spam_tag_score = EXCLUDED.spam_tag_score, subject_tag = EXCLUDED.subject_tag,
           quarantine_score = EXCLUDED.quarantine_score, reject_score = EXCLUDED.reject_score, dmarc = EXCLUDED.dmarc,
           scanner_unavailable = EXCLUDED.scanner_unavailable, quarantine_digests = EXCLUDED.quarantine_digests,
           quarantine_digests_since = CASE WHEN EXCLUDED.quarantine_digests AND NOT tenant_filter_policies.quarantine_digests THEN now()
                                           ELSE tenant_filter_policies.quarantine_digests_since END,
           updated_at = now()
         RETURNING ${policyColumns}`,
        [tenantId, p.spamTagScore, p.subjectTag, p.quarantineScore, p.rejectScore, p.dmarc, p.scannerUnavailable, p.quarantineDigests],
      );
      return toPolicy(res.rows[0]);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '23514') throw invalid(`the filter policy is inconsistent: ${(err as Error).message}`);
      if (code === '23503') throw new MoatError('NOT_FOUND', `tenant ${tenantId} does not exist`);
      throw err;
    }
  }

  /**
   * Adds an entry (its value normalised, see normalizeListValue). CONFLICT when the same entry
   * exists; VALIDATION_FAILED for a value that does not parse or a tenant at the entry bound.
   */
  async addEntry(tenantId: string, input: { mailbox: string | null; list: FilterList; kind: FilterEntryKind; value: string; comment?: string | null | undefined }): Promise<FilterListEntry> {
    const value = normalizeListValue(input.kind, input.value);
    const mailbox = input.mailbox === null ? null : input.mailbox.trim().toLowerCase();
    const count = await this.pool.query('SELECT count(*)::int AS n FROM filter_list_entries WHERE tenant_id = $1', [tenantId]);
    if ((count.rows[0].n as number) >= maxFilterListEntries) throw invalid(`a tenant has at most ${maxFilterListEntries} list entries; remove some first`);
    try {
      const res = await this.pool.query(`INSERT INTO filter_list_entries (${entryColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, now()) RETURNING ${entryColumns}`, [
        randomUUID(),
        tenantId,
        mailbox,
        input.list,
        input.kind,
        value,
        input.comment ?? null,
      ]);
      return toEntry(res.rows[0]);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '23505') throw new MoatError('CONFLICT', `the ${input.list} list${mailbox ? ` of ${mailbox}` : ''} already has the ${input.kind} entry ${value}`);
      if (code === '23503') throw new MoatError('NOT_FOUND', `tenant ${tenantId} does not exist`);
      throw err;
    }
  }

  /** The tenant's entries, oldest first; `mailbox: null` filters tenant-wide entries, a string that mailbox's. */
  async listEntries(tenantId: string, filter: { mailbox?: string | null; list?: FilterList } = {}): Promise<FilterListEntry[]> {
    const where = ['tenant_id = $1'];
    const args: unknown[] = [tenantId];
    if (filter.mailbox === null) where.push('mailbox IS NULL');
    else if (filter.mailbox !== undefined) {
      args.push(filter.mailbox.trim().toLowerCase());
      where.push(`mailbox = $${args.length}`);
    }
    if (filter.list !== undefined) {
      args.push(filter.list);
      where.push(`list = $${args.length}`);
    }
    const res = await this.pool.query(`SELECT ${entryColumns} FROM filter_list_entries WHERE ${where.join(' AND ')} ORDER BY created_at, id`, args);
    return res.rows.map(toEntry);
  }

  async getEntry(id: string): Promise<FilterListEntry | null> {
    const res = await this.pool.query(`SELECT ${entryColumns} FROM filter_list_entries WHERE id = $1`, [id]);
    return res.rows[0] ? toEntry(res.rows[0]) : null;
  }

  /** Removes the entry; the removed entry, or null when there was none. */
  async deleteEntry(id: string): Promise<FilterListEntry | null> {
    const res = await this.pool.query(`DELETE FROM filter_list_entries WHERE id = $1 RETURNING ${entryColumns}`, [id]);
    return res.rows[0] ? toEntry(res.rows[0]) : null;
  }

  /** Everything the filter needs of a tenant, read in one round trip. */
  async settingsFor(tenantId: string): Promise<TenantFilterSettings> {
    const res = await this.pool.query(
      `SELECT
         (SELECT row_to_json(p) FROM (SELECT ${policyColumns} FROM tenant_filter_policies WHERE tenant_id = $1) p) AS policy,
         (SELECT coalesce(json_agg(e ORDER BY e.created_at, e.id), '[]'::json) FROM (SELECT ${entryColumns} FROM filter_list_entries WHERE tenant_id = $1) e) AS entries,
         (SELECT coalesce(json_agg(name ORDER BY name), '[]'::json) FROM domains WHERE tenant_id = $1) AS domains`,
      [tenantId],
    );
    const r = res.rows[0] as { policy: PolicyRow | null; entries: Array<Omit<EntryRow, 'created_at'> & { created_at: string }>; domains: string[] };
    return {
      policy: toPolicy(r.policy ?? undefined),
      entries: r.entries.map((e) => toEntry({ ...e, created_at: new Date(e.created_at) })),
      domains: r.domains.map((d) => d.toLowerCase()),
    };
  }
}
