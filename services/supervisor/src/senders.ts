import { isIP } from 'node:net';

/** One sender process: a pool name and the source address it binds for every outbound connection. */
export interface SenderSpec {
  pool: string;
  sourceIp: string;
}

/**
 * Pool names become part of routing keys (`delivery.requested.<pool>`) and queue names
 * (`sender.<pool>`): a dot, `*` or `#` would change what an AMQP topic binding matches, so
 * only lowercase letters, digits, `_` and `-` are allowed.
 */
export const poolNamePattern = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export class SendersSyntaxError extends Error {
  override readonly name = 'SendersSyntaxError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

/**
 * Parses MOAT_SENDERS: `pool=sourceIp` entries, comma separated, one sender process per entry
 * (`default=127.0.1.1,default=127.0.1.2,bulk=127.0.2.1`). A pool with several addresses has
 * several senders competing on its queue. The same address twice would be two processes
 * binding one address for the same job: rejected as a typo rather than silently doubled.
 */
export function parseSenders(value: string): SenderSpec[] {
  const problems: string[] = [];
  const senders: SenderSpec[] = [];
  const seen = new Set<string>();
  const entries = value.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  if (entries.length === 0) problems.push('at least one pool=sourceIp entry is needed');
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq < 0) {
      problems.push(`"${entry}" is not pool=sourceIp`);
      continue;
    }
    const pool = entry.slice(0, eq).trim();
    const sourceIp = entry.slice(eq + 1).trim();
    if (!poolNamePattern.test(pool)) problems.push(`pool "${pool}" must match ${poolNamePattern.source}`);
    if (isIP(sourceIp) === 0) problems.push(`"${sourceIp}" (pool ${pool}) is not an IP address`);
    const key = `${pool}=${sourceIp}`;
    if (seen.has(key)) problems.push(`"${key}" is listed twice`);
    seen.add(key);
    senders.push({ pool, sourceIp });
  }
  if (problems.length > 0) throw new SendersSyntaxError(problems);
  return senders;
}

/**
 * The name a sender appears under in the output: `sender:<pool>` when the pool has one
 * address, `sender:<pool>@<ip>` when it has several (names must tell processes apart).
 */
export function senderProcessName(sender: SenderSpec, all: readonly SenderSpec[]): string {
  const poolSize = all.filter((s) => s.pool === sender.pool).length;
  return poolSize > 1 ? `sender:${sender.pool}@${sender.sourceIp}` : `sender:${sender.pool}`;
}
