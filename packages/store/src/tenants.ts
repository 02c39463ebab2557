import { randomUUID } from 'node:crypto';
import type { Route } from '@moat/contracts';
import { inTransaction, MoatError, type Pool } from '@moat/runtime';

export interface Tenant {
  id: string;
  partnerId: string | null;
  name: string;
  createdAt: string;
}

export interface Domain {
  id: string;
  tenantId: string;
  name: string;
  routes: Route[];
  createdAt: string;
}

/** Lower-case, no trailing dot: the one spelling of a domain name Moat stores and compares. */
export function normalizeDomain(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function toTenant(r: { id: string; partner_id: string | null; name: string; created_at: Date }): Tenant {
  return { id: r.id, partnerId: r.partner_id, name: r.name, createdAt: r.created_at.toISOString() };
}

export class TenantRepository {
  constructor(private readonly pool: Pool) {}

  async createTenant(input: { name: string; partnerId?: string | null }): Promise<Tenant> {
    const res = await this.pool.query('INSERT INTO tenants (id, partner_id, name) VALUES ($1, $2, $3) RETURNING *', [randomUUID(), input.partnerId ?? null, input.name]);
    return toTenant(res.rows[0]);
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const res = await this.pool.query('SELECT * FROM tenants WHERE id = $1', [id]);
    return res.rows[0] ? toTenant(res.rows[0]) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    const res = await this.pool.query('SELECT * FROM tenants ORDER BY created_at');
    return res.rows.map(toTenant);
  }

  /** Adds a protected domain with its routes; CONFLICT when another tenant already has it. */
  async createDomain(tenantId: string, input: { name: string; routes: Route[] }): Promise<Domain> {
    const name = normalizeDomain(input.name);
    return inTransaction(this.pool, async (client) => {
      const id = randomUUID();
      let created: Date;
      try {
        const res = await client.query('INSERT INTO domains (id, tenant_id, name) VALUES ($1, $2, $3) RETURNING created_at', [id, tenantId, name]);
        created = res.rows[0].created_at;
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new MoatError('CONFLICT', `domain ${name} is already protected`);
        if ((err as { code?: string }).code === '23503') throw new MoatError('NOT_FOUND', `tenant ${tenantId} does not exist`);
        throw err;
      }
      for (const r of input.routes) {
        await client.query('INSERT INTO routes (id, domain_id, host, port, priority) VALUES ($1, $2, $3, $4, $5)', [randomUUID(), id, r.host.toLowerCase(), r.port, r.priority]);
      }
      return { id, tenantId, name, routes: sortRoutes(input.routes.map((r) => ({ ...r, host: r.host.toLowerCase() }))), createdAt: created.toISOString() };
    });
  }

  async listDomains(tenantId: string): Promise<Domain[]> {
    const res = await this.pool.query(
      `SELECT d.id, d.tenant_id, d.name, d.created_at,
              coalesce(json_agg(json_build_object('host', r.host, 'port', r.port, 'priority', r.priority)) FILTER (WHERE r.id IS NOT NULL), '[]') AS routes
         FROM domains d LEFT JOIN routes r ON r.domain_id = d.id
        WHERE d.tenant_id = $1 GROUP BY d.id ORDER BY d.name`,
      [tenantId],
    );
    return res.rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, name: r.name, routes: sortRoutes(r.routes), createdAt: r.created_at.toISOString() }));
  }

  async getDomain(id: string): Promise<Domain | null> {
    const res = await this.pool.query(
      `SELECT d.id, d.tenant_id, d.name, d.created_at,
              coalesce(json_agg(json_build_object('host', r.host, 'port', r.port, 'priority', r.priority)) FILTER (WHERE r.id IS NOT NULL), '[]') AS routes
         FROM domains d LEFT JOIN routes r ON r.domain_id = d.id
        WHERE d.id = $1 GROUP BY d.id`,
      [id],
    );
    const r = res.rows[0];
    return r ? { id: r.id, tenantId: r.tenant_id, name: r.name, routes: sortRoutes(r.routes), createdAt: r.created_at.toISOString() } : null;
  }

  /** The protected domain for a recipient domain, with its routes; null when not protected. */
  async findDomainByName(name: string): Promise<Domain | null> {
    const res = await this.pool.query(
      `SELECT d.id, d.tenant_id, d.name, d.created_at,
              coalesce(json_agg(json_build_object('host', r.host, 'port', r.port, 'priority', r.priority)) FILTER (WHERE r.id IS NOT NULL), '[]') AS routes
         FROM domains d LEFT JOIN routes r ON r.domain_id = d.id
        WHERE d.name = $1 GROUP BY d.id`,
      [normalizeDomain(name)],
    );
    const r = res.rows[0];
    return r ? { id: r.id, tenantId: r.tenant_id, name: r.name, routes: sortRoutes(r.routes), createdAt: r.created_at.toISOString() } : null;
  }

  /** The tenant's own retry schedule and queue lifetime; null fields: the router's defaults. Null: no such tenant. */
  async getDeliveryPolicy(tenantId: string): Promise<DeliveryPolicy | null> {
    const res = await this.pool.query('SELECT retry_base_ms, retry_max_ms, queue_lifetime_ms, delay_warning_ms FROM tenants WHERE id = $1', [tenantId]);
    const r = res.rows[0];
    return r ? toDeliveryPolicy(r) : null;
  }

  /** Replaces the tenant's delivery policy (null fields: back to the defaults). Null: no such tenant. */
  async setDeliveryPolicy(tenantId: string, policy: DeliveryPolicy): Promise<DeliveryPolicy | null> {
    const res = await this.pool.query(
      `UPDATE tenants SET retry_base_ms = $2, retry_max_ms = $3, queue_lifetime_ms = $4, delay_warning_ms = $5 WHERE id = $1
       RETURNING retry_base_ms, retry_max_ms, queue_lifetime_ms, delay_warning_ms`,
      [tenantId, policy.retryBaseMs, policy.retryMaxMs, policy.queueLifetimeMs, policy.delayWarningMs],
    );
    const r = res.rows[0];
    return r ? toDeliveryPolicy(r) : null;
  }

  /** The tenant's outbound relay settings; null: no such tenant. */
  async getOutboundPolicy(tenantId: string): Promise<OutboundPolicy | null> {
    const res = await this.pool.query('SELECT outbound_messages_per_minute FROM tenants WHERE id = $1', [tenantId]);
    const r = res.rows[0];
    return r ? { messagesPerMinute: r.outbound_messages_per_minute } : null;
  }

  /** Replaces the tenant's outbound relay settings (null: back to the default); null: no such tenant. */
  async setOutboundPolicy(tenantId: string, policy: OutboundPolicy): Promise<OutboundPolicy | null> {
    const res = await this.pool.query('UPDATE tenants SET outbound_messages_per_minute = $2 WHERE id = $1 RETURNING outbound_messages_per_minute', [tenantId, policy.messagesPerMinute]);
    const r = res.rows[0];
    return r ? { messagesPerMinute: r.outbound_messages_per_minute } : null;
  }
}

/** A tenant's outbound relay settings; a null field takes ingress' default (MOAT_OUTBOUND_RATE_LIMIT). */
export interface OutboundPolicy {
  /** Outbound messages per rate window (a minute unless the operator changed it). */
  messagesPerMinute: number | null;
}

/** A tenant's delivery settings (queue control); each null field takes the router's default. */
export interface DeliveryPolicy {
  retryBaseMs: number | null;
  retryMaxMs: number | null;
  queueLifetimeMs: number | null;
  delayWarningMs: number | null;
}

function toDeliveryPolicy(r: { retry_base_ms: number | null; retry_max_ms: number | null; queue_lifetime_ms: string | number | null; delay_warning_ms: string | number | null }): DeliveryPolicy {
  // bigint columns come back as strings from pg.
  const num = (v: string | number | null) => (v === null ? null : Number(v));
  return { retryBaseMs: r.retry_base_ms, retryMaxMs: r.retry_max_ms, queueLifetimeMs: num(r.queue_lifetime_ms), delayWarningMs: num(r.delay_warning_ms) };
}

/** Routes in delivery order: lowest priority value first, then host for a stable order. */
export function sortRoutes(routes: Route[]): Route[] {
  return [...routes].sort((a, b) => a.priority - b.priority || a.host.localeCompare(b.host) || a.port - b.port);
}

/**
 * A small read-through cache for hot lookups (every RCPT, every routed message). Entries expire
 * after ttlMs, so changes made through the API take effect within that bound without restarts.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.expires > now) return hit.value;
    const value = await load();
    if (this.ttlMs > 0) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, { value, expires: now + this.ttlMs });
    }
    return value;
  }

  /** Forgets one entry (the caller knows it changed). */
  delete(key: string): void {
    this.entries.delete(key);
  }
}
