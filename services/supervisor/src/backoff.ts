/** When and whether to restart a service process that exited on its own. */
export interface RestartPolicy {
  /** Delay before the first restart of a series. */
  minDelayMs: number;
  /** Cap of the doubling delay. */
  maxDelayMs: number;
  /** A process that ran at least this long counts as stable: a crash after that starts a new series. */
  stableAfterMs: number;
  /** Consecutive fast crashes after which restarting is pointless. */
  maxFastCrashes: number;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  uptimeMs: number;
}

export type RestartDecision =
  | { action: 'restart'; delayMs: number; fastCrashes: number }
  | { action: 'give-up'; reason: string; fastCrashes: number };

/** sysexits.h EX_CONFIG: the service's configuration is invalid (runtime's configOrExit uses it). */
export const exitConfigError = 78;

/**
 * Decides what to do after a process exited while the stack was running. Pure, so the policy
 * is tested without processes.
 *
 * - Exit 78 is a configuration error: the same environment fails the same way, so restarting
 *   only hides the message in a loop. Give up at once.
 * - A crash within `stableAfterMs` of starting is "fast": the delay doubles per consecutive
 *   fast crash (1 s, 2 s, 4 s, … up to the cap) so a dependency that is briefly away gets
 *   time to come back, and after `maxFastCrashes` in a row the supervisor gives up loudly
 *   rather than spinning forever with the stack half up.
 * - A crash after a stable run restarts after the minimum delay and starts a new series.
 * No jitter: the processes are on one machine and restart independently already.
 */
export function decideRestart(exit: ExitInfo, previousFastCrashes: number, policy: RestartPolicy): RestartDecision {
  if (exit.code === exitConfigError) {
    return { action: 'give-up', reason: 'configuration error (exit 78): fix the variables it names', fastCrashes: previousFastCrashes + 1 };
  }
  if (exit.uptimeMs >= policy.stableAfterMs) {
    return { action: 'restart', delayMs: policy.minDelayMs, fastCrashes: 0 };
  }
  const fastCrashes = previousFastCrashes + 1;
  if (fastCrashes >= policy.maxFastCrashes) {
    const window = formatDuration(policy.stableAfterMs);
    return { action: 'give-up', reason: `crashed ${fastCrashes} times in a row, each within ${window} of starting`, fastCrashes };
  }
  return { action: 'restart', delayMs: backoffDelay(fastCrashes, policy), fastCrashes };
}

/** The delay before restart number `attempt` (1-based) of a series: min · 2^(attempt-1), capped. */
export function backoffDelay(attempt: number, policy: Pick<RestartPolicy, 'minDelayMs' | 'maxDelayMs'>): number {
  const exponent = Math.max(0, attempt - 1);
  // 2^exponent overflows to Infinity long after the cap applies; Math.min handles it.
  return Math.min(policy.maxDelayMs, policy.minDelayMs * 2 ** exponent);
}

/** `850ms`, `1.5s`, `2m5s`: for log lines. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(1))}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1_000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

/** `exit code 1`, `signal SIGKILL`: how a process ended, for log lines. */
export function describeExit(exit: Pick<ExitInfo, 'code' | 'signal'>): string {
  if (exit.signal) return `signal ${exit.signal}`;
  return `exit code ${exit.code ?? 'unknown'}`;
}
