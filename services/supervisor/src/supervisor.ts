import { existsSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { migrate } from '@moat/store';
import { describeExit, formatDuration } from './backoff.js';
import { readyBanner, secretsNotice } from './banner.js';
import type { Config } from './config.js';
import { PrefixedOutput, prettyLogLine, type TextSink } from './output.js';
import { missingEntryPoints, planProcesses, type PlannedProcess } from './plan.js';
import { dependenciesOf, formatPreflightReport, preflight } from './preflight.js';
import { ProcessManager, type ManagerEvent } from './process-manager.js';
import { adminUrl, waitForReadiness } from './readiness.js';
import { resolveSecrets } from './secrets.js';

/** What the supervisor needs from its surroundings (main.ts passes the real ones). */
export interface SupervisorIo {
  stdout: TextSink;
  stderr: TextSink;
  /** The environment the services inherit. */
  env: Record<string, string | undefined>;
  /** The repository root: default home of `.moat/` and `services/`. */
  repoRoot: string;
  cwd: string;
  /** The node binary that runs the services. */
  nodePath: string;
}

export interface Supervisor {
  plan: readonly PlannedProcess[];
  /** Resolves with the process exit code once the stack has stopped. */
  done: Promise<number>;
  /** SIGTERM to all, wait within the bound, SIGKILL stragglers. Idempotent. */
  stop(reason: string): Promise<number>;
  /** SIGKILL to all now. Synchronous (safe in an 'exit' handler). */
  kill(): void;
}

/** Start-up stopped before any service ran; the reason has been printed. */
export class StartupFailed extends Error {
  override readonly name = 'StartupFailed';
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** Grace on top of the services' own shutdown bound before the supervisor kills them. */
const killGraceMs = 5_000;
const preflightTimeoutMs = 5_000;

/**
 * Preflight (RabbitMQ, Postgres, Redis reachable), migrations, secrets, then every service as
 * its own process, kept running until stop().
 */
export async function startSupervisor(config: Config, io: SupervisorIo): Promise<Supervisor> {
  const stateDir = config.MOAT_STATE_DIR ? resolve(io.cwd, config.MOAT_STATE_DIR) : join(io.repoRoot, '.moat');
  const servicesDir = config.MOAT_SERVICES_DIR ? resolve(io.cwd, config.MOAT_SERVICES_DIR) : join(io.repoRoot, 'services');
  const showPath = (path: string) => {
    const rel = relative(io.cwd, path);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
  };

  // Secrets first: in production a missing one is a ConfigError, reported like every other one.
  const secrets = resolveSecrets({
    production: config.MOAT_ENV === 'production',
    stateDir,
    masterKey: config.MOAT_MASTER_KEY,
    bootstrapToken: config.MOAT_BOOTSTRAP_TOKEN,
    previewKey: config.MOAT_QUARANTINE_PREVIEW_KEY,
  });
  const plan = planProcesses({
    services: config.MOAT_SERVICES,
    senders: config.MOAT_SENDERS,
    adminPortBase: config.MOAT_ADMIN_PORT_BASE,
    servicesDir,
    nodePath: io.nodePath,
    nodeArgs: config.MOAT_NODE_ARGS.split(/\s+/).filter(Boolean),
    env: io.env,
    shared: {
      MOAT_MASTER_KEY: secrets.masterKey.value,
      MOAT_BOOTSTRAP_TOKEN: secrets.bootstrapToken.value,
      ...(secrets.previewKey ? { MOAT_QUARANTINE_PREVIEW_KEY: secrets.previewKey.value } : {}),
    },
  });

  const names = ['supervisor', ...plan.map((p) => p.name)];
  const stdout = new PrefixedOutput(io.stdout, names, config.MOAT_SUPERVISOR_OUTPUT);
  const stderr = new PrefixedOutput(io.stderr, names, config.MOAT_SUPERVISOR_OUTPUT);
  const log = supervisorLogger(stdout, config.MOAT_LOG_LEVEL);

  const failures = await preflight(dependenciesOf(config), preflightTimeoutMs);
  if (failures.length > 0) {
    for (const line of formatPreflightReport(failures)) log.error(line);
    throw new StartupFailed(1, 'dependencies unreachable');
  }

  const missing = missingEntryPoints(plan, existsSync);
  if (missing.length > 0) {
    for (const p of missing) log.error(`${showPath(p.script)} is missing: build first (npm run build; npm start builds too)`);
    throw new StartupFailed(1, 'services not built');
  }

  try {
    const applied = await migrate({ databaseUrl: config.MOAT_DATABASE_URL, schema: config.MOAT_DB_SCHEMA, log });
    log.info(applied.length > 0 ? `applied migrations to schema ${config.MOAT_DB_SCHEMA}: ${applied.join(', ')}` : `schema ${config.MOAT_DB_SCHEMA} is up to date`);
  } catch (err) {
    log.error(`migrations failed: ${(err as Error).message}`);
    throw new StartupFailed(1, 'migrations failed');
  }

  for (const line of secretsNotice(secrets, showPath)) log.info(line);

  const restart = {
    minDelayMs: config.MOAT_RESTART_MIN_DELAY_MS,
    maxDelayMs: Math.max(config.MOAT_RESTART_MIN_DELAY_MS, config.MOAT_RESTART_MAX_DELAY_MS),
    stableAfterMs: config.MOAT_RESTART_STABLE_MS,
    maxFastCrashes: config.MOAT_RESTART_MAX_FAST_CRASHES,
  };
  // Each service bounds its own shutdown by MOAT_SHUTDOWN_TIMEOUT_MS (it inherits the same
  // value); the supervisor waits a little longer before it kills.
  const stopTimeoutMs = config.MOAT_SHUTDOWN_TIMEOUT_MS + killGraceMs;
  const ports = new Map(plan.map((p) => [p.name, p.adminPort]));
  const pretty = config.MOAT_SUPERVISOR_OUTPUT === 'pretty';

  let stopping: Promise<number> | null = null;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  const readinessAbort = new AbortController();

  const onEvent = (event: ManagerEvent) => {
    switch (event.type) {
      case 'started':
        if (event.restarts === 0) log.info(`started ${event.name} (pid ${event.pid}, admin port ${ports.get(event.name)})`);
        else log.warn(`restarted ${event.name} (pid ${event.pid}, restart ${event.restarts})`);
        break;
      case 'spawn-failed':
        log.error(`cannot start ${event.name}: ${event.error}`);
        break;
      case 'exited':
        if (event.duringStop) log.info(`${event.name} stopped (${describeExit(event.exit)})`);
        break;
      case 'restarting': {
        const series = event.fastCrashes > 0 ? ` (fast crash ${event.fastCrashes} of ${restart.maxFastCrashes} allowed)` : '';
        log.warn(`${event.name} exited (${describeExit(event.exit)}) after ${formatDuration(event.exit.uptimeMs)}: restarting in ${formatDuration(event.delayMs)}${series}`);
        break;
      }
      case 'gave-up':
        log.error(`${event.name} ${event.reason} (last: ${describeExit(event.exit)}): giving up, stopping the stack`);
        if (event.lastLines.length > 0) {
          log.error(`last output of ${event.name}:`);
          for (const line of event.lastLines) for (const l of pretty ? prettyLogLine(line) : [line]) log.error(`  ${l}`);
        }
        void stop(`${event.name} gave up`, 1);
        break;
      case 'killed':
        log.error(`${event.name} (pid ${event.pid}) did not stop within ${formatDuration(stopTimeoutMs)}: killed`);
        break;
    }
  };

  const manager = new ProcessManager(plan, { restart, stopTimeoutMs, stdout, stderr, onEvent });

  async function stop(reason: string, exitCode = 0): Promise<number> {
    if (stopping) return stopping;
    stopping = (async () => {
      readinessAbort.abort();
      const running = manager.running().length;
      log.info(`stopping (${reason}): SIGTERM to ${running} process${running === 1 ? '' : 'es'}, waiting up to ${formatDuration(stopTimeoutMs)}`);
      const result = await manager.stop();
      const code = result.killed.length > 0 ? 1 : exitCode;
      log.info(result.killed.length > 0 ? `stopped; killed: ${result.killed.join(', ')}` : 'stopped');
      resolveDone(code);
      return code;
    })();
    return stopping;
  }

  manager.start();

  const targets = plan.map((p) => ({ name: p.name, url: adminUrl(config.MOAT_ADMIN_HOST, p.adminPort) }));
  void waitForReadiness(targets, { timeoutMs: config.MOAT_READY_TIMEOUT_MS, signal: readinessAbort.signal }).then((result) => {
    if (readinessAbort.signal.aborted) return;
    if (result.notReady.length === 0) {
      for (const line of readyBanner({ plan, smtpPort: config.MOAT_SMTP_PORT, submissionPort: config.MOAT_SUBMISSION_PORT, httpPort: config.MOAT_HTTP_PORT, bootstrapToken: secrets.bootstrapToken, showPath })) {
        log.info(line);
      }
    } else {
      const which = result.notReady.map((n) => `${n} (${adminUrl(config.MOAT_ADMIN_HOST, ports.get(n) ?? 0)})`).join(', ');
      log.warn(`not ready after ${formatDuration(config.MOAT_READY_TIMEOUT_MS)}: ${which}; see their output above`);
    }
  });

  return {
    plan,
    done,
    stop: (reason) => stop(reason),
    kill: () => manager.killAll(),
  };
}

/** The supervisor's own log: pino, written through the same prefixed output as the services'. */
function supervisorLogger(out: PrefixedOutput, level: string): Logger {
  return pino(
    { level, base: { service: 'supervisor' }, timestamp: pino.stdTimeFunctions.isoTime },
    { write: (line: string) => out.line('supervisor', line.replace(/\n$/, '')) },
  );
}
