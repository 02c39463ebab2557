import { queues } from '@moat/contracts';
import { connectDependencies, createResolver, type Logger, type RunningService } from '@moat/runtime';
import { DkimSigningKeys, FilterPolicyRepository, keyringFromConfig, MessageStore, previewKeyringFromConfig, SpamLearningRepository } from '@moat/store';
import type { Config } from './config.js';
import { createBatchedBodyReader } from './body-reader.js';
import { OutboundSigner } from './dkim-signing.js';
import { scanWithClamd } from './clamd.js';
import { parseHostPort } from './scanner-config.js';
import { spamScannersFromConfig } from './spam-scanners-config.js';
import { MessageFilter } from './filter.js';
import { TenantPolicySource } from './tenant-policy-source.js';
import { loadModel } from './spam/model.js';
import { SpamCheck, type TenantLearning } from './spam/spam-check.js';
import { defaultTenantLearning } from './spam/tenant-model.js';
import { SpamTrainer } from './spam/trainer.js';

export interface FilterService extends RunningService {
  /** The admin port actually bound (-1 when off). */
  adminPort: number;
}

export async function start(config: Config, log: Logger): Promise<FilterService> {
  // Built first: a missing or malformed static zone file stops the start before anything connects.
  const resolver = createResolver({
    mode: config.MOAT_DNS_MODE,
    servers: config.MOAT_DNS_SERVERS,
    staticFile: config.MOAT_DNS_STATIC_FILE,
    timeoutMs: config.MOAT_DNS_TIMEOUT_MS,
  });
  const keyring = keyringFromConfig(config);
  const previewKeyring = previewKeyringFromConfig(config);
  if (!previewKeyring) log.warn('MOAT_QUARANTINE_PREVIEW_KEY is not set: quarantined messages get no preview');
  // Loaded once, before anything connects: a missing or stale model stops the start.
  const spamModel = loadModel(config.MOAT_FILTER_SPAM_MODEL_FILE);
  const deps = await connectDependencies('filter', config, log);
  const learning = new SpamLearningRepository(deps.pool);
  const tenantLearning: TenantLearning = {
    counts: learning,
    params: { ...defaultTenantLearning, weight: config.MOAT_FILTER_SPAM_TENANT_WEIGHT },
    timeoutMs: config.MOAT_FILTER_CHECK_TIMEOUT_MS,
    untaughtCacheMs: config.MOAT_FILTER_SPAM_TENANT_CACHE_MS,
  };
  const spam = new SpamCheck(spamModel, { quarantine: config.MOAT_FILTER_SPAM_QUARANTINE_SCORE, unsure: config.MOAT_FILTER_SPAM_UNSURE_SCORE }, tenantLearning);
  // Reads only are batched (one SELECT for the messages in flight); checks and publishing stay per
  // message. Two reads at once so a slow batch does not hold the next one back.
  const bodies = createBatchedBodyReader(new MessageStore(deps.pool, keyring), { maxItems: 32, maxDelayMs: 0, maxConcurrentWrites: 2 });
  const dkimKeys = new DkimSigningKeys(deps.pool, keyring);
  const filter = new MessageFilter({
    store: bodies,
    broker: deps.broker,
    resolver,
    authservId: config.MOAT_FILTER_AUTHSERV_ID,
    checkTimeoutMs: config.MOAT_FILTER_CHECK_TIMEOUT_MS,
    signer: new OutboundSigner({ keys: dkimKeys, cacheTtlMs: config.MOAT_FILTER_DKIM_KEY_CACHE_MS, log }),
    scanViruses: clamdAt(config.MOAT_CLAMD_ADDRESS, config.MOAT_CLAMD_TIMEOUT_MS),
    scannerUnavailable: config.MOAT_FILTER_SCANNER_UNAVAILABLE,
    scannerRetryMs: config.MOAT_CLAMD_RETRY_MS,
    previewKeyring,
    spam,
    spamScanners: spamScannersFromConfig(config),
    mimeLimits: { maxDepth: config.MOAT_FILTER_MAX_MIME_DEPTH, maxParts: config.MOAT_FILTER_MAX_MIME_PARTS },
    tenantPolicy: new TenantPolicySource(new FilterPolicyRepository(deps.pool), config.MOAT_FILTER_POLICY_CACHE_MS),
    log,
  });
  // Trains from bodies read directly (not through the batched reader: its batches are for the mail path).
  const trainer =
    config.MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS > 0
      ? new SpamTrainer({ repo: learning, store: new MessageStore(deps.pool, keyring), intervalMs: config.MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS, batchSize: config.MOAT_FILTER_SPAM_TRAIN_BATCH, log })
      : null;
  try {
    // The gateway seals the DKIM private keys it generates to this key (it holds no master key).
    await dkimKeys.publishSealingKey();
    await deps.broker.consume(queues.filter, (delivery) => filter.handle(delivery.event));
  } catch (err) {
    await bodies.close();
    await deps.close();
    throw err;
  }
  log.info(
    { authservId: config.MOAT_FILTER_AUTHSERV_ID, dns: config.MOAT_DNS_MODE, spamModel: spamModel.source, spamTokens: spamModel.counts.tokens.size, spamThresholds: spam.thresholds, tenantWeight: tenantLearning.params.weight, trainEveryMs: config.MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS },
    'filter consuming',
  );
  trainer?.start();

  let stopping: Promise<void> | null = null;
  return {
    adminPort: deps.adminPort,
    stop() {
      // Stop taking messages, let the ones in flight publish and ack, finish any read still
      // pending (a handler cut off by the drain bound may wait on one), then close the connections.
      stopping ??= (async () => {
        // The batch in flight commits or rolls back before the pool closes.
        await trainer?.stop();
        await deps.broker.drain(config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await bodies.close();
        await deps.close();
      })();
      return stopping;
    },
  };
}

/** The scanner for MOAT_CLAMD_ADDRESS (host:port), or null when unset. */
function clamdAt(address: string | undefined, timeoutMs: number) {
  if (!address) return null;
  const { host, port } = parseHostPort(address);
  return (raw: Buffer) => scanWithClamd(raw, { host, port, timeoutMs });
}
