import { rangeContaining, type SubnetCheck, type SubnetProbe, type SubnetProbeStatus } from '@moat/store';

/**
 * What a subnet check tells the customer, derived from its probe rows (pure; the API answers it):
 * - per pool: did every route accept mail from the pool's address (pass), which step refused it
 *   and with what reply (fail), or could it not be told (error, timeout)?
 * - lock-down: did the servers refuse the outsider (an address in no pool) while accepting a
 *   pool? Then nobody can go around Moat by connecting to them directly.
 */
export type CheckResult = 'pending' | 'pass' | 'fail' | 'error' | 'timeout';
export type LockdownResult = 'pending' | 'locked' | 'open' | 'unknown';

export interface ProbeReport {
  host: string;
  port: number;
  priority: number;
  result: SubnetProbeStatus;
  sourceIp: string | null;
  remoteAddress: string | null;
  tls: boolean | null;
  failedStep: SubnetProbe['failedStep'];
  reply: SubnetProbe['reply'];
  latencyMs: number | null;
  error: string | null;
  transcript: SubnetProbe['transcript'];
  finishedAt: string | null;
}

export interface PoolReport {
  pool: string;
  state: string | null;
  /** The pool's ranges when the check was asked for. */
  ranges: string[];
  result: CheckResult;
  /** The address the probes left from, and the range it lies in. */
  sourceIp: string | null;
  range: string | null;
  routes: ProbeReport[];
}

export interface LockdownReport {
  result: LockdownResult;
  /** Why, in words a customer can act on. */
  detail: string;
  sourceIp: string | null;
  routes: Array<ProbeReport & { lockdown: LockdownResult }>;
}

export interface CheckReport {
  id: string;
  domainId: string;
  domain: string;
  status: 'running' | 'done';
  /** pass when every pool passed on every route; fail when any pool was refused. */
  result: CheckResult;
  routes: SubnetCheck['routes'];
  createdAt: string;
  deadline: string;
  finishedAt: string | null;
  pools: PoolReport[];
  lockdown: LockdownReport;
}

function probeReport(p: SubnetProbe): ProbeReport {
  return {
    host: p.route.host,
    port: p.route.port,
    priority: p.route.priority,
    result: p.status,
    sourceIp: p.sourceIp,
    remoteAddress: p.remoteAddress,
    tls: p.tls,
    failedStep: p.failedStep,
    reply: p.reply,
    latencyMs: p.latencyMs,
    error: p.error,
    transcript: p.transcript,
    finishedAt: p.finishedAt,
  };
}

/**
 * One result for several probes: pending while any is; a refusal outweighs everything else (the
 * customer has something to fix); then what could not be told; pass only when all passed.
 */
export function combine(statuses: readonly SubnetProbeStatus[]): CheckResult {
  for (const s of ['pending', 'fail', 'error', 'timeout'] as const) if (statuses.includes(s)) return s;
  return statuses.length > 0 ? 'pass' : 'error';
}

const label = (p: SubnetProbe) => `${p.route.host}:${p.route.port}`;

/**
 * A route's lock-down from the outsider's probe and the pools' probes of the same route:
 * - open: the server accepted RCPT from the outsider;
 * - locked: it refused the outsider for good (no connection, or a 5xx) while accepting a pool;
 * - unknown: a temporary 4xx (greylisting, rate limits), no answer, or no pool got through
 *   either (then a refusal says nothing: the server may be down for everyone).
 */
export function routeLockdown(outsider: SubnetProbe, pools: readonly SubnetProbe[]): { result: LockdownResult; why: string } {
  if (outsider.status === 'pending') return { result: 'pending', why: `${label(outsider)}: waiting for the outsider probe` };
  if (outsider.status === 'pass') return { result: 'open', why: `${label(outsider)} accepted mail from the outsider address ${outsider.sourceIp ?? ''}` };
  if (outsider.status !== 'fail') return { result: 'unknown', why: `${label(outsider)}: the outsider probe did not run (${outsider.error ?? outsider.status})` };
  // A refusal means something only next to what the pools got.
  if (pools.some((p) => p.status === 'pending')) return { result: 'pending', why: `${label(outsider)}: waiting for the pools' probes` };
  const temporary = outsider.reply?.code !== undefined && outsider.reply?.code !== null && outsider.reply.code >= 400 && outsider.reply.code <= 499;
  if (temporary) return { result: 'unknown', why: `${label(outsider)} refused the outsider only temporarily (${outsider.reply!.code}: greylisting or a rate limit?); run the check again later` };
  if (outsider.failedStep === 'resolve') return { result: 'unknown', why: `${label(outsider)}: ${outsider.error ?? 'the route does not resolve'}` };
  if (!pools.some((p) => p.status === 'pass')) return { result: 'unknown', why: `${label(outsider)} refused the outsider, but no pool got through either: the server may be unreachable for everyone` };
  return { result: 'locked', why: `${label(outsider)} refused the outsider at ${outsider.failedStep ?? 'connect'}` };
}

function lockdownReport(check: SubnetCheck): LockdownReport {
  const outsider = check.probes.filter((p) => p.source === 'outsider');
  const poolProbes = check.probes.filter((p) => p.source === 'pool');
  const routes = outsider.map((o) => {
    const verdict = routeLockdown(
      o,
      poolProbes.filter((p) => p.route.host === o.route.host && p.route.port === o.route.port),
    );
    return { ...probeReport(o), lockdown: verdict.result, why: verdict.why };
  });
  const sourceIp = outsider.find((o) => o.sourceIp)?.sourceIp ?? null;
  const results = routes.map((r) => r.lockdown);
  const reasons = (which: LockdownResult) => routes.filter((r) => r.lockdown === which).map((r) => r.why);
  let result: LockdownResult;
  let detail: string;
  if (routes.length === 0) {
    result = 'unknown';
    detail = 'no outsider probe was made';
  } else if (results.includes('open')) {
    result = 'open';
    detail = `${reasons('open').join('; ')}: anyone can reach the server without going through Moat. Recommended: accept port 25 only from the published ranges (GET /api/v1/pools?format=txt).`;
  } else if (results.includes('pending')) {
    result = 'pending';
    detail = 'waiting for the probes';
  } else if (results.every((r) => r === 'locked')) {
    result = 'locked';
    detail = `${reasons('locked').join('; ')}, while accepting Moat's ranges: the server is locked down to Moat (recommended).`;
  } else {
    result = 'unknown';
    detail = reasons('unknown').join('; ');
  }
  return { result, detail, sourceIp, routes: routes.map(({ why: _why, ...r }) => r) };
}

export function checkReport(check: SubnetCheck): CheckReport {
  const byPool = new Map<string, SubnetProbe[]>();
  for (const p of check.probes) if (p.source === 'pool' && p.pool !== null) byPool.set(p.pool, [...(byPool.get(p.pool) ?? []), p]);
  const pools: PoolReport[] = [...byPool].map(([pool, probes]) => {
    const first = probes[0]!;
    const sourceIp = probes.find((p) => p.sourceIp)?.sourceIp ?? null;
    return {
      pool,
      state: first.poolState,
      ranges: first.cidrs,
      result: combine(probes.map((p) => p.status)),
      sourceIp,
      range: sourceIp ? rangeContaining(sourceIp, first.cidrs) : null,
      routes: probes.map(probeReport),
    };
  });
  return {
    id: check.id,
    domainId: check.domainId,
    domain: check.domain,
    status: check.status,
    result: combine(check.probes.filter((p) => p.source === 'pool').map((p) => p.status)),
    routes: check.routes,
    createdAt: check.createdAt,
    deadline: check.deadline,
    finishedAt: check.finishedAt,
    pools,
    lockdown: lockdownReport(check),
  };
}
