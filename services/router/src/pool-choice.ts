import { createHash } from 'node:crypto';
import type { DeliveryResultPayload } from '@moat/contracts';
import type { SendingPool } from '@moat/store';

/** A pool the router may send through, with its weight (1 active; warming: its share so far). */
export interface PoolCandidate {
  name: string;
  weight: number;
}

/**
 * A pool's weight: active 1; warming its share so far — growing linearly from 5 % on the day it
 * was created to 100 % after `warmupDays` — so a new range takes a small, growing part of each
 * destination; draining and disabled 0 (no new mail).
 */
export function poolWeight(pool: Pick<SendingPool, 'state' | 'createdAt'>, now: Date, warmupDays: number): number {
  switch (pool.state) {
    case 'active':
      return 1;
    case 'warming': {
      const days = (now.getTime() - Date.parse(pool.createdAt)) / 86_400_000;
      return Math.min(1, Math.max(0.05, days / Math.max(1, warmupDays)));
    }
    default:
      return 0;
  }
}

/** A stable number in (0, 1) for (destination, pool). */
function unitHash(destination: string, pool: string): number {
  const h = createHash('sha256').update(destination).update('\u0000').update(pool).digest();
  // 52 bits of the hash, shifted off zero.
  const n = h.readUIntBE(0, 6) * 16 + (h[6]! >> 4);
  return (n + 0.5) / 2 ** 52;
}

/**
 * Weighted rendezvous hashing (highest random weight): each destination ranks the pools by
 * −weight / ln(hash(destination, pool)) and takes the first. One customer's server therefore sees
 * a stable pool; adding or losing a pool moves only the destinations that pool wins or won; a
 * pool of weight w wins a share of destinations proportional to w. Returns the ranking, best
 * first (the caller skips pools it cannot use).
 */
export function rankPools(destination: string, candidates: readonly PoolCandidate[]): string[] {
  return candidates
    .filter((c) => c.weight > 0)
    .map((c) => ({ name: c.name, score: -c.weight / Math.log(unitHash(destination, c.name)) }))
    .sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : 1))
    .map((c) => c.name);
}

/**
 * Whether an attempt's result says the destination refuses this pool (its firewall resets or
 * refuses the pool's address, or a reply says the address is blocked), as opposed to a problem
 * of the message or the recipient. The router then avoids the (pool, destination) pair for a
 * while and the next attempt goes through another pool.
 */
export function refusesPool(result: Pick<DeliveryResultPayload, 'error' | 'recipients'>): boolean {
  // What the attempt heard: its error, and the replies that refused (a reply without a code is
  // the sender's own account of a connection that failed, e.g. a 554 banner or a reset).
  const heard = [result.error ?? '', ...result.recipients.filter((r) => r.reply.code === null || r.reply.code >= 400).map((r) => `${r.reply.enhanced ?? ''} ${r.reply.text}`)];
  return heard.some((text) => connectionRefused.test(text) || addressBlocked.test(text));
}

const connectionRefused = /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|connection (?:refused|reset)/i;
const addressBlocked = /\b(?:block(?:ed|list)|blacklist|denylist|listed (?:at|in|on)|spamhaus|poor reputation|(?:client|ip|address|host)\b[^.]{0,40}\b(?:not (?:allowed|permitted)|refused|rejected|denied))/i;

/** The result with its refused (failed) recipients deferred instead: the pool was refused, not they. */
export function asDeferred(result: DeliveryResultPayload): DeliveryResultPayload {
  return { ...result, recipients: result.recipients.map((r) => (r.outcome === 'failed' ? { ...r, outcome: 'deferred' as const } : r)) };
}
