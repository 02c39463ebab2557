/**
 * The delivery backlog scenario's arithmetic (`npm run bench -- --backlog`, issue 3): how the
 * drain after the customer's server comes back is summarised, and how Redis memory per queued
 * delivery is derived. Pure, so it is unit-tested; bench/run.ts drives the scenario.
 */

export interface DrainStats {
  /** Messages that arrived after the sink came up. */
  delivered: number;
  /** Sink up → first arrival (mostly the wait for the first retry to come due). */
  firstArrivalMs: number;
  /** Sink up → last arrival: the drain time. */
  drainMs: number;
  /** delivered / drain time. */
  averagePerSec: number;
  /** delivered / (last − first arrival): the rate once deliveries flowed. */
  flowingPerSec: number;
  /** The most arrivals in any one-second window (from the first arrival on). */
  peakPerSec: number;
  /** Sink up → 90 % and 99 % of the arrivals (a few stragglers on their own retry schedule can dominate drainMs). */
  p90Ms: number;
  p99Ms: number;
}

/** Drain figures from arrival times (ms, any clock) and the moment the sink came up (same clock). */
export function drainStats(arrivals: readonly number[], upAt: number): DrainStats {
  const after = arrivals.filter((a) => a >= upAt).sort((a, b) => a - b);
  if (after.length === 0) return { delivered: 0, firstArrivalMs: NaN, drainMs: NaN, averagePerSec: 0, flowingPerSec: 0, peakPerSec: 0, p90Ms: NaN, p99Ms: NaN };
  const first = after[0]!;
  const last = after[after.length - 1]!;
  const buckets = new Map<number, number>();
  for (const a of after) {
    const b = Math.floor((a - first) / 1000);
    buckets.set(b, (buckets.get(b) ?? 0) + 1);
  }
  const drainMs = last - upAt;
  const flowingMs = last - first;
  return {
    delivered: after.length,
    firstArrivalMs: first - upAt,
    drainMs,
    averagePerSec: drainMs > 0 ? after.length / (drainMs / 1000) : after.length,
    flowingPerSec: flowingMs > 0 ? after.length / (flowingMs / 1000) : after.length,
    peakPerSec: Math.max(...buckets.values()),
    p90Ms: after[Math.ceil(0.9 * after.length) - 1]! - upAt,
    p99Ms: after[Math.ceil(0.99 * after.length) - 1]! - upAt,
  };
}

/** `used_memory` from the text of Redis's `INFO memory`. */
export function usedMemory(info: string): number {
  const m = /^used_memory:(\d+)\r?$/m.exec(info);
  if (!m) throw new Error('INFO memory has no used_memory line');
  return Number(m[1]);
}

/** Bytes per queued delivery: the growth of Redis's memory divided by the deliveries queued. */
export function bytesPerDelivery(before: number, atBacklog: number, queued: number): number {
  if (queued <= 0) return NaN;
  return (atBacklog - before) / queued;
}

export interface Delivery {
  benchId: string;
  /** Recipients the sink received for this message, over all its copies. */
  rcpts: number;
}

/**
 * Nothing lost and nothing twice: every accepted message arrived, each exactly once with all its
 * recipients (a second copy shows up as a recipient count above `rcptsPerMessage`).
 */
export function verifyExactlyOnce(accepted: readonly string[], arrivals: ReadonlyMap<string, Delivery>, rcptsPerMessage: number): { lost: string[]; duplicated: string[] } {
  const lost: string[] = [];
  const duplicated: string[] = [];
  for (const id of accepted) {
    const a = arrivals.get(id);
    if (!a || a.rcpts < rcptsPerMessage) lost.push(id);
    else if (a.rcpts > rcptsPerMessage) duplicated.push(id);
  }
  return { lost, duplicated };
}
