import type { Pool } from '@moat/runtime';

// SMTP-time checks (issue 5; migration 1732700021000): the per-tenant SMTP policy (greylisting)
// and the mailbox directory ingress verifies recipients against.

/** Greylisting of inbound mail for one tenant (postgrey's defaults: 5 minutes, 2 days, 35 days). */
export interface GreylistingPolicy {
  enabled: boolean;
  /** A retry earlier than this after the first attempt is greylisted again. */
  delaySeconds: number;
  /** A retry later than this after the first attempt starts over (the first attempt is forgotten). */
  retryWindowHours: number;
  /** How long a triplet that passed stays whitelisted (renewed by every message it carries). */
  passTtlDays: number;
}

export interface SmtpPolicy {
  greylisting: GreylistingPolicy;
}

export const defaultSmtpPolicy: SmtpPolicy = { greylisting: { enabled: false, delaySeconds: 300, retryWindowHours: 48, passTtlDays: 35 } };

interface SmtpPolicyRow {
  greylisting_enabled: boolean;
  greylisting_delay_seconds: number;
  greylisting_retry_window_hours: number;
  greylisting_pass_ttl_days: number;
}

function toPolicy(r: SmtpPolicyRow): SmtpPolicy {
  return {
    greylisting: {
      enabled: r.greylisting_enabled,
      delaySeconds: r.greylisting_delay_seconds,
      retryWindowHours: r.greylisting_retry_window_hours,
      passTtlDays: r.greylisting_pass_ttl_days,
    },
  };
}

export class SmtpPolicyRepository {
  constructor(private readonly pool: Pool) {}

  /** The tenant's SMTP policy (the defaults when it never set one). */
  async get(tenantId: string): Promise<SmtpPolicy> {
    const res = await this.pool.query<SmtpPolicyRow>('SELECT * FROM smtp_policies WHERE tenant_id = $1', [tenantId]);
    const r = res.rows[0];
    return r ? toPolicy(r) : defaultSmtpPolicy;
  }

  /** Stores the whole policy (the caller merged a partial update into the current one). */
  async set(tenantId: string, policy: SmtpPolicy): Promise<SmtpPolicy> {
    const g = policy.greylisting;
    const res = await this.pool.query<SmtpPolicyRow>(
      `INSERT INTO smtp_policies (tenant_id, greylisting_enabled, greylisting_delay_seconds, greylisting_retry_window_hours, greylisting_pass_ttl_days)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id) DO UPDATE SET greylisting_enabled = excluded.greylisting_enabled,
         greylisting_delay_seconds = excluded.greylisting_delay_seconds,
         greylisting_retry_window_hours = excluded.greylisting_retry_window_hours,
         greylisting_pass_ttl_days = excluded.greylisting_pass_ttl_days, updated_at = now()
       RETURNING *`,
      [tenantId, g.enabled, g.delaySeconds, g.retryWindowHours, g.passTtlDays],
    );
    return toPolicy(res.rows[0]!);
  }
}

export class MailboxDirectory {
  constructor(private readonly pool: Pool) {}

  /**
   * Whether the tenant has any mailbox in the domain (`domains`: its spellings, A-label and
   * U-label, since a tenant may have registered either): then its list is authoritative there.
   */
  async hasMailboxes(tenantId: string, domains: readonly string[]): Promise<boolean> {
    const res = await this.pool.query<{ listed: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE tenant_id = $1 AND split_part(address, '@', -1) = ANY($2::text[])) AS listed`,
      [tenantId, domains],
    );
    return res.rows[0]!.listed;
  }

  /** Whether one of the lower-cased candidate addresses is a mailbox of the tenant. */
  async hasAny(tenantId: string, addresses: readonly string[]): Promise<boolean> {
    const res = await this.pool.query<{ known: boolean }>(`SELECT EXISTS (SELECT 1 FROM mailboxes WHERE tenant_id = $1 AND address = ANY($2::text[])) AS known`, [tenantId, addresses]);
    return res.rows[0]!.known;
  }
}
