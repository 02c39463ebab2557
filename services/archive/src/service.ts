import { queues } from '@moat/contracts';
import { connectDependencies, type Logger, type RunningService } from '@moat/runtime';
import { ArchiveRepository, DigestRepository, digestLinkKeyFromConfig, keyringFromConfig, MessageStore, QuarantineRepository } from '@moat/store';
import { createArchiveWriter } from './archive-writer.js';
import { Archiver } from './archiver.js';
import type { Config } from './config.js';
import { DigestJob, startDigestJob } from './digests.js';
import { startQuarantineSweeper } from './quarantine-sweeper.js';

export interface ArchiveService extends RunningService {
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
  /** The quarantine digest job (null when MOAT_DIGEST_INTERVAL_MS is unset): runs by itself; runOnce for tests and operators. */
  digests: Pick<DigestJob, 'runOnce'> | null;
}

export async function start(config: Config, log: Logger): Promise<ArchiveService> {
  const deps = await connectDependencies('archive', config, log);
  // One INSERT for the entries of the messages in flight (group commit); each handler awaits its own.
  const writer = createArchiveWriter(new ArchiveRepository(deps.pool), log, { maxItems: 64, maxDelayMs: 0 });
  const quarantine = new QuarantineRepository(deps.pool);
  const archiver = new Archiver({ archive: writer, quarantine, quarantineRetentionDays: config.MOAT_QUARANTINE_RETENTION_DAYS, log });
  try {
    await deps.broker.consume(queues.archive, (delivery) => archiver.handle(delivery.event));
  } catch (err) {
    await writer.close();
    await deps.close();
    throw err;
  }
  const stopSweeper = startQuarantineSweeper({ quarantine, intervalMs: config.MOAT_QUARANTINE_SWEEP_INTERVAL_MS, log });
  const digests = digestJobFrom(config, deps, log);
  // A tick a minute at most: a digest goes out within a minute (plus the settle time) of its period's end.
  const stopDigests = digests ? startDigestJob(digests, { tickMs: Math.min(60_000, config.MOAT_DIGEST_INTERVAL_MS!), log }) : async () => {};
  log.info({ quarantineRetentionDays: config.MOAT_QUARANTINE_RETENTION_DAYS, digestIntervalMs: config.MOAT_DIGEST_INTERVAL_MS ?? null }, 'archive consuming');

  let stopping: Promise<void> | null = null;
  return {
    adminPort: deps.adminPort,
    digests,
    stop() {
      // Stop taking messages, let the ones in flight commit and ack, write any entry still pending
      // (a handler cut off by the drain bound may wait on one), then close the connections.
      stopping ??= (async () => {
        await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await stopSweeper();
        await stopDigests();
        await writer.close();
        await deps.close();
      })();
      return stopping;
    },
  };
}

/** The digest job when MOAT_DIGEST_INTERVAL_MS is set (the config schema then insists on its other variables). */
function digestJobFrom(config: Config, deps: Awaited<ReturnType<typeof connectDependencies>>, log: Logger): DigestJob | null {
  if (config.MOAT_DIGEST_INTERVAL_MS === undefined) return null;
  return new DigestJob({
    digests: new DigestRepository(deps.pool),
    store: new MessageStore(deps.pool, keyringFromConfig({ ...config, MOAT_MASTER_KEY: config.MOAT_MASTER_KEY! })),
    broker: deps.broker,
    intervalMs: config.MOAT_DIGEST_INTERVAL_MS,
    linkKey: digestLinkKeyFromConfig(config.MOAT_DIGEST_LINK_KEY!),
    linkTtlMs: config.MOAT_DIGEST_LINK_TTL_HOURS * 3_600_000,
    publicUrl: config.MOAT_PUBLIC_URL!,
    from: config.MOAT_DIGEST_FROM!,
    maxItems: config.MOAT_DIGEST_MAX_ITEMS,
    log: log.child({ job: 'quarantine-digest' }),
  });
}
