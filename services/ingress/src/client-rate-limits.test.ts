import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FixedWindowRateLimiter } from '@moat/runtime';
import { ClientRateLimits, isExemptAddress } from './client-rate-limits.js';

const log = pino({ level: 'silent' });

/** The limiter's Redis calls answered from memory (counter per key, a fixed 30 s left in the window). */
function memoryRedis(down = false) {
  const counters = new Map<string, number>();
  const keys: string[] = [];
  return {
    keys,
    eval: async (_script: string, _n: number, key: string) => {
      if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      keys.push(key);
      const n = (counters.get(key) ?? 0) + 1;
      counters.set(key, n);
      return [n, 30_000];
    },
    get: async () => null,
  } as unknown as ConstructorParameters<typeof FixedWindowRateLimiter>[0] & { keys: string[] };
}

function limits(redis: ReturnType<typeof memoryRedis>, limit = 2) {
  const make = (name: string) => new FixedWindowRateLimiter(redis, { name, limit, windowMs: 60_000 });
  return new ClientRateLimits({ connections: make('c'), messages: make('m'), recipients: make('r') }, 200, log);
}

describe('ClientRateLimits', () => {
  it('when a client goes over the limit, then connections get 421 4.7.0 and messages/recipients 451 4.7.1 with the time left', async () => {
    const l = limits(memoryRedis());
    for (const kind of ['connections', 'messages', 'recipients'] as const) {
      expect(await l.take(kind, '192.0.2.1')).toEqual({ result: 'pass' });
      expect(await l.take(kind, '192.0.2.1')).toEqual({ result: 'pass' });
      const over = await l.take(kind, '192.0.2.1');
      expect(over).toMatchObject({ result: 'limited', count: 3, retryAfterMs: 30_000 });
      if (over.result !== 'limited') throw new Error('not limited');
      expect([over.reply.responseCode, over.reply.message]).toEqual(
        kind === 'connections' ? [421, '4.7.0 Too many connections from your IP address, try again in 30 seconds'] : [451, `4.7.1 Too many ${kind} from your IP address, try again in 30 seconds`],
      );
    }
  });

  it('when IPv6 clients share a /64, then they share a counter; other clients have their own', async () => {
    const redis = memoryRedis();
    const l = limits(redis, 1);
    expect(await l.take('messages', '2001:db8::1')).toEqual({ result: 'pass' });
    expect((await l.take('messages', '2001:db8::2')).result).toBe('limited');
    expect(await l.take('messages', '192.0.2.2')).toEqual({ result: 'pass' });
    expect(redis.keys).toEqual(['ratelimit:m:2001:db8:0:0::/64', 'ratelimit:m:2001:db8:0:0::/64', 'ratelimit:m:192.0.2.2']);
  });

  it('when Redis is unavailable, then the client passes (fails open)', async () => {
    expect(await limits(memoryRedis(true)).take('recipients', '192.0.2.1')).toEqual({ result: 'error' });
  });
});

describe('isExemptAddress', () => {
  it('when the client is in an exempt range (IPv4-mapped too), then it is exempt; otherwise not', () => {
    expect(isExemptAddress('198.51.100.7', ['198.51.100.0/24'])).toBe(true);
    expect(isExemptAddress('::ffff:198.51.100.7', ['198.51.100.0/24'])).toBe(true);
    expect(isExemptAddress('2001:db8::1', ['2001:db8::/32'])).toBe(true);
    expect(isExemptAddress('198.51.101.7', ['198.51.100.0/24'])).toBe(false);
    expect(isExemptAddress('198.51.100.7', [])).toBe(false);
  });
});
