import { MoatError, type FixedWindowRateLimiter, type Logger } from '@moat/runtime';
import { rangeContaining } from '@moat/store';
import { withinDeadline } from './check-deadline.js';
import { clientKey, unmappedIp } from './client-connections.js';
import { replies } from './replies.js';

/** What is counted per client: new connections (at connect), messages (first RCPT), recipients (each RCPT). */
export type ClientRate = 'connections' | 'messages' | 'recipients';

export type ClientRateResult =
  | { result: 'pass' }
  | { result: 'limited'; reply: MoatError; count: number; retryAfterMs: number }
  /** Redis could not count: the client passes (a rate limiter must not stop mail). */
  | { result: 'error' };

/**
 * Whether the client address lies in one of the operator's exempt ranges
 * (MOAT_INGRESS_EXEMPT_CIDRS): no per-client rate limit, DNSBL or greylisting applies to it.
 */
export function isExemptAddress(ip: string, cidrs: readonly string[]): boolean {
  return cidrs.length > 0 && rangeContaining(unmappedIp(ip), cidrs) !== null;
}

/**
 * Per-client rate limits in Redis, shared by every ingress replica: fixed windows per client
 * (an IPv4 address, or the /64 of an IPv6 one: clientKey). Over the limit the reply is temporary
 * (421 4.7.0 at connect, 451 4.7.1 at RCPT): a real server retries later, a flood waits. When
 * Redis is unreachable the check fails OPEN with a warning — unlike a filter check, a rate
 * limiter protects capacity, not mail, and refusing everything while Redis is away would stop
 * all inbound mail for nothing.
 */
export class ClientRateLimits {
  constructor(
    private readonly limiters: Record<ClientRate, FixedWindowRateLimiter>,
    /** Bound on one Redis round trip; beyond it the check fails open like an outage. */
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  async take(kind: ClientRate, ip: string): Promise<ClientRateResult> {
    let decision;
    try {
      decision = await withinDeadline(this.limiters[kind].take(clientKey(ip)), this.timeoutMs, 'client rate limit');
    } catch (err) {
      if (!(err instanceof MoatError) || err.code !== 'DEPENDENCY_UNAVAILABLE') throw err;
      this.log.warn({ client: ip, limit: kind, err: err.message }, 'client rate limit not checked (Redis unavailable): passing');
      return { result: 'error' };
    }
    if (decision.allowed) return { result: 'pass' };
    const reply = kind === 'connections' ? replies.clientConnectionRate(decision.retryAfterMs) : replies.clientRate(kind, decision.retryAfterMs);
    return { result: 'limited', reply, count: decision.count, retryAfterMs: decision.retryAfterMs };
  }
}
