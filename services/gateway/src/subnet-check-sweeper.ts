import type { Logger } from '@moat/runtime';
import type { SubnetCheckRepository } from '@moat/store';

export interface SweeperOptions {
  checks: Pick<SubnetCheckRepository, 'expireOverdue' | 'deleteOlderThan'>;
  /** How often overdue checks are finished. */
  intervalMs: number;
  /** Checks older than this many days are deleted (once an hour). */
  retentionDays: number;
  log: Logger;
}

const retentionEveryMs = 3_600_000;

/**
 * Keeps the subnet_checks table truthful without anyone reading it: finishes checks whose
 * deadline has passed (their missing probes become `timeout`; a read finishes an overdue check
 * too, so answers never wait for this) and deletes checks past their retention. Idempotent
 * statements, so every gateway replica may run it. Returns stop().
 */
export function startSubnetCheckSweeper(opts: SweeperOptions): () => Promise<void> {
  let lastRetention = 0;
  let running: Promise<void> | null = null;
  const sweep = async () => {
    try {
      const finished = await opts.checks.expireOverdue();
      if (finished > 0) opts.log.info({ finished }, 'finished overdue subnet checks (missing probes: timeout)');
      if (Date.now() - lastRetention >= retentionEveryMs) {
        lastRetention = Date.now();
        const deleted = await opts.checks.deleteOlderThan(new Date(Date.now() - opts.retentionDays * 86_400_000));
        if (deleted > 0) opts.log.info({ deleted, retentionDays: opts.retentionDays }, 'deleted old subnet checks');
      }
    } catch (err) {
      // Postgres away: the next round tries again; reads finish overdue checks themselves.
      opts.log.warn({ err: (err as Error).message }, 'subnet-check sweep failed');
    }
  };
  const timer = setInterval(() => {
    running ??= sweep().finally(() => {
      running = null;
    });
  }, opts.intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
