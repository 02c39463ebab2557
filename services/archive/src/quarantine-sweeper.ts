import type { Logger } from '@moat/runtime';
import type { QuarantineRepository } from '@moat/store';

/**
 * The quarantine retention sweep: every interval, expires what is due, in batches until none is
 * left. Safe on several replicas at once (the repository skips rows another sweeper holds). A
 * database outage is logged and tried again at the next interval. Returns stop(), which waits for
 * a sweep in progress.
 */
export function startQuarantineSweeper(opts: { quarantine: Pick<QuarantineRepository, 'expireDue'>; intervalMs: number; log: Logger; batch?: number }): () => Promise<void> {
  const batch = opts.batch ?? 500;
  let running: Promise<void> | null = null;
  let stopped = false;
  const sweep = async () => {
    let total = 0;
    for (;;) {
      const n = await opts.quarantine.expireDue(new Date(), batch);
      total += n;
      if (n < batch || stopped) break;
    }
    if (total > 0) opts.log.info({ expired: total }, 'quarantine retention: expired messages deleted');
  };
  const tick = () => {
    if (running || stopped) return;
    running = sweep()
      .catch((err: unknown) => opts.log.warn({ err: (err as Error).message }, 'quarantine retention sweep failed; trying again at the next interval'))
      .finally(() => (running = null));
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
