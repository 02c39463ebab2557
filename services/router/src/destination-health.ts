import type { DeliveryResultPayload } from '@moat/contracts';

/**
 * What an attempt's result says about its destination server as a whole (not about the message
 * or its recipients):
 * - 'up': the server answered the transaction (any reply code but 421 to any recipient);
 * - 'down': the attempt reached no server that would talk: every route refused or timed out, the
 *   connection broke before any reply, or the server said 421 (closing, RFC 5321 §3.8) — every
 *   recipient deferred;
 * - 'unknown': the attempt never tried the destination (the body was unavailable, no route was
 *   known yet): it tells nothing.
 */
export function destinationVerdict(r: Pick<DeliveryResultPayload, 'recipients' | 'remoteHost'>): 'up' | 'down' | 'unknown' {
  if (r.recipients.some((x) => x.reply.code !== null && x.reply.code !== 421)) return 'up';
  // remoteHost is null when no route was tried at all (the sender did not get that far).
  if (r.remoteHost === null || r.recipients.length === 0) return 'unknown';
  return r.recipients.every((x) => x.outcome === 'deferred') ? 'down' : 'unknown';
}

export interface DestinationBackoff {
  /** Back-off after the first failure. */
  baseMs: number;
  /** Ceiling of the doubling. */
  maxMs: number;
}

/** Back-off of a destination found down `failures` times in a row: base · 2^(failures-1), capped. */
export function destinationBackoffMs(failures: number, policy: DestinationBackoff): number {
  return Math.min(policy.baseMs * 2 ** Math.max(0, failures - 1), policy.maxMs);
}
