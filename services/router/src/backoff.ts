import { uuidFrom } from '@moat/runtime';

export interface RetryPolicy {
  /** Delay after the first failed attempt. */
  baseMs: number;
  /** Ceiling of the doubling. */
  maxMs: number;
}

/** ±10 %: enough to spread retries of many deliveries that failed together (a server outage). */
export const jitterFraction = 0.1;

/**
 * Delay before the next attempt, after `attempt` (from 1) failed: base · 2^(attempt-1), capped at
 * max, then scaled by a jitter factor in [0.9, 1.1). `random` is a number in [0, 1).
 * The cap applies before the jitter, so deliveries at the ceiling still spread out.
 */
export function retryDelayMs(attempt: number, policy: RetryPolicy, random: number): number {
  const exponent = Math.max(0, attempt - 1);
  const raw = Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
  const factor = 1 + jitterFraction * (2 * random - 1);
  return Math.max(0, Math.round(raw * factor));
}

/**
 * A number in [0, 1) derived from the parts (deterministic): the jitter of an attempt is the
 * same when its result is processed twice, so a redelivered result publishes the same schedule.
 */
export function stableRandom(...parts: string[]): number {
  const hex = uuidFrom(...parts).replace(/-/g, '').slice(0, 8);
  return Number.parseInt(hex, 16) / 2 ** 32;
}
