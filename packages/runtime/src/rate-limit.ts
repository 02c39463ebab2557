import { MoatError } from './errors.js';
import type { Redis } from './redis.js';

export interface RateDecision {
  allowed: boolean;
  /** Requests counted in the current window, this one included. */
  count: number;
  /** Until the window ends (and a refused request may be tried again). */
  retryAfterMs: number;
}

/**
 * INCR the window's counter, start the window's expiry with the first request, and answer the
 * count and the time left — atomically, so concurrent requests (and several gateways) never
 * see a counter without an expiry (which would lock a tenant out for good).
 */
const takeScript = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

/**
 * A fixed-window limit per key in Redis (shared by every replica: the gateway's subnet checks,
 * ingress' outbound messages per tenant and AUTH failures per client): at most `limit` requests per
 * `windowMs`. Refused requests count too, so hammering does not help; the window never slides,
 * so Retry-After is exact. Redis unreachable → DEPENDENCY_UNAVAILABLE (503): an expensive
 * operation is refused rather than run without a limit.
 */
export class FixedWindowRateLimiter {
  constructor(
    private readonly redis: Pick<Redis, 'eval' | 'get'>,
    private readonly opts: { name: string; limit: number; windowMs: number },
  ) {}

  /** Counts one request under `key` and says whether it is within the limit (`limit`: this key's own, when it has one). */
  async take(key: string, limit = this.opts.limit): Promise<RateDecision> {
    let answer: unknown;
    try {
      answer = await this.redis.eval(takeScript, 1, this.redisKey(key), String(this.opts.windowMs));
    } catch (err) {
      throw new MoatError('DEPENDENCY_UNAVAILABLE', `rate limiter unavailable: ${(err as Error).message}`, { cause: err });
    }
    const [count, ttl] = answer as [number, number];
    return { allowed: count <= limit, count, retryAfterMs: Math.max(0, ttl) };
  }

  /** Whether `key` is already over the limit in the current window, without counting anything. */
  async exceeded(key: string): Promise<boolean> {
    let count: string | null;
    try {
      count = await this.redis.get(this.redisKey(key));
    } catch (err) {
      throw new MoatError('DEPENDENCY_UNAVAILABLE', `rate limiter unavailable: ${(err as Error).message}`, { cause: err });
    }
    return count !== null && Number(count) >= this.opts.limit;
  }

  private redisKey(key: string): string {
    return `ratelimit:${this.opts.name}:${key}`;
  }
}
