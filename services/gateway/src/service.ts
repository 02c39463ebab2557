import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { connectDependencies, FixedWindowRateLimiter, type Logger, type RunningService } from '@moat/runtime';
import { digestLinkKeyFromConfig, previousDigestLinkKeysFromConfig, previewKeyringFromConfig, RetrySchedule } from '@moat/store';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { createRepositories } from './repositories.js';
import { startSubnetCheckSweeper } from './subnet-check-sweeper.js';
import { SubnetCheckStarter } from './subnet-checks.js';

export interface GatewayService extends RunningService {
  /** The port the API listens on (MOAT_HTTP_PORT, or the one picked for 0). */
  httpPort: number;
  adminPort: number;
}

export async function start(config: Config, log: Logger): Promise<GatewayService> {
  const deps = await connectDependencies('gateway', config, log);
  const repos = createRepositories(deps.pool, new RetrySchedule(deps.redis));
  const subnetChecks = new SubnetCheckStarter({
    checks: repos.subnetChecks,
    pools: repos.pools,
    broker: deps.broker,
    limiter: new FixedWindowRateLimiter(deps.redis, { name: 'subnet-check', limit: config.MOAT_SUBNET_CHECK_RATE_LIMIT, windowMs: config.MOAT_SUBNET_CHECK_RATE_WINDOW_MS }),
    deadlineMs: config.MOAT_SUBNET_CHECK_DEADLINE_MS,
    log,
  });
  let server: http.Server;
  try {
    if (config.MOAT_BOOTSTRAP_TOKEN) await repos.apiKeys.ensureBootstrapToken(config.MOAT_BOOTSTRAP_TOKEN);
    const previewKeyring = previewKeyringFromConfig(config);
    if (!previewKeyring) log.warn('MOAT_QUARANTINE_PREVIEW_KEY is not set: quarantine previews are not shown');
    // The current key first; earlier ones only verify (the archive signs with the current key).
    const digestLinkKeys = config.MOAT_DIGEST_LINK_KEY ? [digestLinkKeyFromConfig(config.MOAT_DIGEST_LINK_KEY), ...previousDigestLinkKeysFromConfig(config.MOAT_DIGEST_LINK_PREVIOUS_KEYS)] : null;
    const app = createApp({ repos, broker: deps.broker, subnetChecks, health: deps.health, log, bodyLimitBytes: config.MOAT_HTTP_BODY_LIMIT_BYTES, previewKeyring, digestLinkKeys });
    server = http.createServer(app);
    // Slowloris bounds: a client gets 30 s to send its headers and 60 s for the whole request.
    server.headersTimeout = 30_000;
    server.requestTimeout = 60_000;
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.MOAT_HTTP_PORT, config.MOAT_HTTP_HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await deps.close();
    throw err;
  }
  const httpPort = (server.address() as AddressInfo).port;
  // Overdue checks are finished within a quarter of the deadline (at most every 10 s).
  const stopSweeper = startSubnetCheckSweeper({
    checks: repos.subnetChecks,
    intervalMs: Math.min(10_000, Math.ceil(config.MOAT_SUBNET_CHECK_DEADLINE_MS / 4)),
    retentionDays: config.MOAT_SUBNET_CHECK_RETENTION_DAYS,
    log,
  });
  log.info({ host: config.MOAT_HTTP_HOST, port: httpPort, bootstrapToken: Boolean(config.MOAT_BOOTSTRAP_TOKEN) }, 'gateway listening');

  let stopped: Promise<void> | null = null;
  return {
    httpPort,
    adminPort: deps.adminPort,
    stop() {
      stopped ??= (async () => {
        // Readiness goes 503 first, then stop accepting and let requests in flight finish (bounded).
        deps.health.markShuttingDown();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), config.MOAT_SHUTDOWN_TIMEOUT_MS);
        await closed;
        clearTimeout(timer);
        await stopSweeper();
        await deps.close();
      })();
      return stopped;
    },
  };
}
