export { configSchema, type Config } from './config.js';
export { start, type RunningRouter } from './service.js';
export { destinationKey, groupByDestination, recipientDomain, type DestinationGroup } from './destinations.js';
export { retryDelayMs, type RetryPolicy } from './backoff.js';
export { rankPools, refusesPool, poolWeight } from './pool-choice.js';
