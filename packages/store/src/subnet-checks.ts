import { randomUUID } from 'node:crypto';
import type { Route, SmtpReply, SubnetCheckSource } from '@moat/contracts';
import { inTransaction, type Pool } from '@moat/runtime';

// =============================================================================================
// Subnet checks: the gateway creates a check with one probe row per (source, route); senders
// fill the rows in; a check whose deadline passes is finished with its missing rows `timeout`,
// so that every check reaches `done`.
// =============================================================================================

export const subnetProbeStatuses = ['pending', 'pass', 'fail', 'error', 'timeout'] as const;
export type SubnetProbeStatus = (typeof subnetProbeStatuses)[number];

/** The steps of a probe, in order; a failed probe names the one the server (or the network) refused. */
export const subnetProbeSteps = ['resolve', 'connect', 'banner', 'ehlo', 'starttls', 'mail', 'rcpt'] as const;
export type SubnetProbeStep = (typeof subnetProbeSteps)[number];

/** One line of a probe's SMTP conversation: what we sent, what the server said, or a note (connected, TLS, timeout). */
export interface TranscriptLine {
  /** Milliseconds since the probe started. */
  at: number;
  from: 'client' | 'server' | 'note';
  text: string;
}

export interface SubnetProbe {
  id: string;
  source: SubnetCheckSource;
  pool: string | null;
  poolState: string | null;
  /** The pool's ranges when the check was asked for (empty for the outsider). */
  cidrs: string[];
  route: Route;
  status: SubnetProbeStatus;
  sourceIp: string | null;
  /** `address:port` actually connected to. */
  remoteAddress: string | null;
  tls: boolean | null;
  failedStep: SubnetProbeStep | null;
  reply: SmtpReply | null;
  latencyMs: number | null;
  error: string | null;
  transcript: TranscriptLine[];
  finishedAt: string | null;
}

export interface SubnetCheck {
  id: string;
  tenantId: string;
  domainId: string;
  domain: string;
  routes: Route[];
  status: 'running' | 'done';
  requestedBy: string;
  createdAt: string;
  deadline: string;
  finishedAt: string | null;
  probes: SubnetProbe[];
}

/** What a sender found for one probe row. */
export interface SubnetProbeResult {
  id: string;
  status: Exclude<SubnetProbeStatus, 'pending' | 'timeout'>;
  sourceIp: string | null;
  remoteAddress: string | null;
  tls: boolean | null;
  failedStep: SubnetProbeStep | null;
  reply: SmtpReply | null;
  latencyMs: number | null;
  error: string | null;
  transcript: TranscriptLine[];
}

export interface NewSubnetCheck {
  tenantId: string;
  domainId: string;
  domain: string;
  routes: Route[];
  deadline: Date;
  requestedBy: string;
  /** One entry per source to probe from; every source probes every route. */
  sources: Array<{ source: SubnetCheckSource; pool: string | null; poolState: string | null; cidrs: string[] }>;
}

/** The reason written on probes that had no result when the deadline passed. */
export const timeoutReason = 'no result before the deadline: no sender of this source took the probe in time';

interface CheckRow {
  id: string;
  tenant_id: string;
  domain_id: string;
  domain: string;
  routes: Route[];
  status: 'running' | 'done';
  requested_by: string;
  created_at: Date;
  deadline_at: Date;
  finished_at: Date | null;
}

interface ProbeRow {
  id: string;
  source: SubnetCheckSource;
  pool: string | null;
  pool_state: string | null;
  cidrs: string[];
  route_host: string;
  route_port: number;
  route_priority: number;
  status: SubnetProbeStatus;
  source_ip: string | null;
  remote_address: string | null;
  tls: boolean | null;
  failed_step: SubnetProbeStep | null;
  reply: SmtpReply | null;
  latency_ms: number | null;
  error: string | null;
  transcript: TranscriptLine[];
  finished_at: Date | null;
}

function toProbe(r: ProbeRow): SubnetProbe {
  return {
    id: r.id,
    source: r.source,
    pool: r.pool,
    poolState: r.pool_state,
    cidrs: r.cidrs,
    route: { host: r.route_host, port: r.route_port, priority: r.route_priority },
    status: r.status,
    sourceIp: r.source_ip,
    remoteAddress: r.remote_address,
    tls: r.tls,
    failedStep: r.failed_step,
    reply: r.reply,
    latencyMs: r.latency_ms,
    error: r.error,
    transcript: r.transcript,
    finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
  };
}

function toCheck(r: CheckRow, probes: ProbeRow[]): SubnetCheck {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    domainId: r.domain_id,
    domain: r.domain,
    routes: r.routes,
    status: r.status,
    requestedBy: r.requested_by,
    createdAt: r.created_at.toISOString(),
    deadline: r.deadline_at.toISOString(),
    finishedAt: r.finished_at ? r.finished_at.toISOString() : null,
    probes: probes.map(toProbe),
  };
}

/** Sources first (pools by name, the outsider last), then routes in delivery order. */
const probeOrder = "ORDER BY source = 'outsider', pool, route_priority, route_host, route_port";

export class SubnetCheckRepository {
  constructor(private readonly pool: Pool) {}

  /** The check and its probe rows (all `pending`), in one transaction. */
  async create(input: NewSubnetCheck): Promise<SubnetCheck> {
    const id = randomUUID();
    const probes = input.sources.flatMap((s) =>
      input.routes.map((r) => ({ id: randomUUID(), source: s.source, pool: s.pool, pool_state: s.poolState, cidrs: s.cidrs, route_host: r.host, route_port: r.port, route_priority: r.priority })),
    );
    await inTransaction(this.pool, async (client) => {
      await client.query('INSERT INTO subnet_checks (id, tenant_id, domain_id, domain, routes, requested_by, deadline_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        id,
        input.tenantId,
        input.domainId,
        input.domain,
        JSON.stringify(input.routes),
        input.requestedBy,
        input.deadline,
      ]);
      await client.query(
        `INSERT INTO subnet_check_probes (id, check_id, source, pool, pool_state, cidrs, route_host, route_port, route_priority)
         SELECT p.id, $1, p.source, p.pool, p.pool_state, ARRAY(SELECT jsonb_array_elements_text(p.cidrs)), p.route_host, p.route_port, p.route_priority
           FROM jsonb_to_recordset($2::jsonb) AS p(id uuid, source text, pool text, pool_state text, cidrs jsonb, route_host text, route_port integer, route_priority integer)`,
        [id, JSON.stringify(probes)],
      );
    });
    const created = await this.read(id);
    if (!created) throw new Error(`subnet check ${id} vanished after its creation`);
    return created;
  }

  /** A check with its probes; an overdue check is finished first, so the answer is never stale. */
  async get(id: string): Promise<SubnetCheck | null> {
    await this.expireOverdue(id);
    return this.read(id);
  }

  private async read(id: string): Promise<SubnetCheck | null> {
    const check = await this.pool.query<CheckRow>('SELECT * FROM subnet_checks WHERE id = $1', [id]);
    const row = check.rows[0];
    if (!row) return null;
    const probes = await this.pool.query<ProbeRow>(`SELECT * FROM subnet_check_probes WHERE check_id = $1 ${probeOrder}`, [id]);
    return toCheck(row, probes.rows);
  }

  /** The domain's most recent checks, newest first (overdue ones finished first). */
  async listForDomain(domainId: string, limit: number): Promise<SubnetCheck[]> {
    await this.expireOverdue();
    const checks = await this.pool.query<CheckRow>('SELECT * FROM subnet_checks WHERE domain_id = $1 ORDER BY created_at DESC, id LIMIT $2', [domainId, limit]);
    if (checks.rows.length === 0) return [];
    const probes = await this.pool.query<ProbeRow & { check_id: string }>(`SELECT * FROM subnet_check_probes WHERE check_id = ANY($1::uuid[]) ${probeOrder}`, [checks.rows.map((c) => c.id)]);
    return checks.rows.map((c) => toCheck(c, probes.rows.filter((p) => p.check_id === c.id)));
  }

  /**
   * The probe rows a sender still has to answer for one source of a check; none once the check
   * is done or its deadline has passed (a late request is dropped, not probed).
   */
  async pendingProbes(checkId: string, source: SubnetCheckSource, pool: string | null): Promise<Array<{ id: string; route: Route }>> {
    const res = await this.pool.query<{ id: string; route_host: string; route_port: number; route_priority: number }>(
      `SELECT p.id, p.route_host, p.route_port, p.route_priority
         FROM subnet_check_probes p JOIN subnet_checks c ON c.id = p.check_id
        WHERE p.check_id = $1 AND p.source = $2 AND p.pool IS NOT DISTINCT FROM $3 AND p.status = 'pending'
          AND c.status = 'running' AND c.deadline_at > now()
        ORDER BY p.route_priority, p.route_host, p.route_port`,
      [checkId, source, pool],
    );
    return res.rows.map((r) => ({ id: r.id, route: { host: r.route_host, port: r.route_port, priority: r.route_priority } }));
  }

  /**
   * Writes probe results and finishes the check when none is pending any more. Idempotent: only
   * pending rows of a running check change (a redelivered request, or a result after the check
   * was finished by its deadline, changes nothing). The check's row lock serialises concurrent
   * writers, so exactly one of them sees the last pending row go and finishes the check.
   * Returns how many rows were written.
   */
  async recordResults(checkId: string, results: readonly SubnetProbeResult[]): Promise<number> {
    if (results.length === 0) return 0;
    return inTransaction(this.pool, async (client) => {
      const check = await client.query<{ status: string }>('SELECT status FROM subnet_checks WHERE id = $1 FOR UPDATE', [checkId]);
      if (check.rows[0]?.status !== 'running') return 0;
      const updated = await client.query(
        `UPDATE subnet_check_probes p
            SET status = r.status, source_ip = r.source_ip, remote_address = r.remote_address, tls = r.tls, failed_step = r.failed_step,
                reply = r.reply, latency_ms = r.latency_ms, error = r.error, transcript = coalesce(r.transcript, '[]'::jsonb), finished_at = now()
           FROM jsonb_to_recordset($2::jsonb) AS r(id uuid, status text, source_ip text, remote_address text, tls boolean, failed_step text, reply jsonb, latency_ms integer, error text, transcript jsonb)
          WHERE p.id = r.id AND p.check_id = $1 AND p.status = 'pending'`,
        [
          checkId,
          JSON.stringify(
            results.map((r) => ({
              id: r.id,
              status: r.status,
              source_ip: r.sourceIp,
              remote_address: r.remoteAddress,
              tls: r.tls,
              failed_step: r.failedStep,
              reply: r.reply,
              latency_ms: r.latencyMs === null ? null : Math.round(r.latencyMs),
              error: r.error,
              transcript: r.transcript,
            })),
          ),
        ],
      );
      await client.query(
        `UPDATE subnet_checks SET status = 'done', finished_at = now()
          WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM subnet_check_probes WHERE check_id = $1 AND status = 'pending')`,
        [checkId],
      );
      return updated.rowCount ?? 0;
    });
  }

  /**
   * Finishes running checks whose deadline has passed (one, or all): their pending probes become
   * `timeout`. Safe to run from several gateways at once. Returns how many checks it finished.
   */
  async expireOverdue(id?: string): Promise<number> {
    const res = await this.pool.query(
      `WITH overdue AS (
         UPDATE subnet_checks SET status = 'done', finished_at = now()
          WHERE status = 'running' AND deadline_at <= now() AND ($1::uuid IS NULL OR id = $1::uuid)
         RETURNING id
       ), timed_out AS (
         UPDATE subnet_check_probes p SET status = 'timeout', error = $2, finished_at = now()
           FROM overdue WHERE p.check_id = overdue.id AND p.status = 'pending'
         RETURNING p.id
       )
       SELECT (SELECT count(*) FROM overdue)::int AS checks, (SELECT count(*) FROM timed_out)::int AS probes`,
      [id ?? null, timeoutReason],
    );
    return res.rows[0]?.checks ?? 0;
  }

  /** Removes a check that could not be started (its requests were not all queued). */
  async delete(id: string): Promise<void> {
    await this.pool.query('DELETE FROM subnet_checks WHERE id = $1', [id]);
  }

  /** Retention: drops checks created before the cutoff. Returns how many. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    const res = await this.pool.query('DELETE FROM subnet_checks WHERE created_at < $1', [cutoff]);
    return res.rowCount ?? 0;
  }
}
