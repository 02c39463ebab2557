import { Redis } from 'ioredis';
import type { Logger } from './logger.js';

export type { Redis };

/** A Redis client with Moat's key prefix; commands queue while it reconnects. */
export function createRedis(opts: { url: string; prefix: string; log: Logger }): Redis {
  const redis = new Redis(opts.url, {
    keyPrefix: opts.prefix,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    lazyConnect: true,
    connectTimeout: 5_000,
    retryStrategy: (times) => Math.min(times * 200, 5_000),
  });
  redis.on('error', (err: Error) => opts.log.warn({ err: err.message }, 'redis error'));
  return redis;
}
