import { loadConfig, type Logger } from '@moat/runtime';
import { silentLog } from '@moat/testkit';
import * as ingress from '@moat/ingress';
import * as filter from '@moat/filter';
import * as archive from '@moat/archive';
import * as router from '@moat/router';
import * as sender from '@moat/sender';
import * as tracker from '@moat/tracker';
import * as gateway from '@moat/gateway';

export type ServiceName = 'ingress' | 'filter' | 'archive' | 'router' | 'sender' | 'tracker' | 'gateway';

export interface Stack {
  smtpPort: number;
  /** Submission (STARTTLS + AUTH) and implicit-TLS submission ports of ingress. */
  submissionPort: number;
  submissionsPort: number;
  httpPort: number;
  stopService(name: ServiceName): Promise<void>;
  startService(name: ServiceName): Promise<void>;
  /** A running service as its start() returned it (its extra handles: ports, the digest job…). */
  service?(name: ServiceName): Record<string, unknown> | undefined;
  stop(): Promise<void>;
}

const modules = { ingress, filter, archive, router, sender, tracker, gateway } as const;

/**
 * Starts every service in this process, each through its own start() exactly as its main.ts
 * does, sharing one isolated environment (broker namespace, schema, Redis prefix). Services talk
 * only through RabbitMQ, Postgres and Redis, as in production.
 */
export async function startStack(env: Record<string, string>, overrides: Partial<Record<ServiceName, Record<string, string>>> = {}, log: Logger = silentLog): Promise<Stack> {
  const running = new Map<ServiceName, { stop(): Promise<void> } & Record<string, unknown>>();
  const base: Record<string, string> = { MOAT_SMTP_PORT: '0', MOAT_SUBMISSION_PORT: '0', MOAT_SUBMISSIONS_PORT: '0', MOAT_HTTP_PORT: '0', MOAT_SMTP_HOST: '127.0.0.1', MOAT_HTTP_HOST: '127.0.0.1', ...env };
  const order: ServiceName[] = ['tracker', 'archive', 'router', 'sender', 'filter', 'gateway', 'ingress'];
  const ports = { smtp: 0, submission: 0, submissions: 0, http: 0 };
  async function startService(name: ServiceName): Promise<void> {
    const mod = modules[name] as unknown as { configSchema: Parameters<typeof loadConfig>[0]; start: (c: unknown, l: Logger) => Promise<{ stop(): Promise<void> } & Record<string, unknown>> };
    const svcEnv = { ...base, ...(overrides[name] ?? {}) };
    // Keep the ports a restarted service had, so clients find it again.
    if (name === 'ingress' && ports.smtp) {
      svcEnv.MOAT_SMTP_PORT = String(ports.smtp);
      if (ports.submission > 0) svcEnv.MOAT_SUBMISSION_PORT = String(ports.submission);
      if (ports.submissions > 0) svcEnv.MOAT_SUBMISSIONS_PORT = String(ports.submissions);
    }
    if (name === 'gateway' && ports.http) svcEnv.MOAT_HTTP_PORT = String(ports.http);
    const svc = await mod.start(loadConfig(mod.configSchema, svcEnv), log.child({ service: name }));
    running.set(name, svc);
    if (name === 'ingress') {
      ports.smtp = svc.smtpPort as number;
      ports.submission = svc.submissionPort as number;
      ports.submissions = svc.submissionsPort as number;
    }
    if (name === 'gateway') ports.http = svc.httpPort as number;
  }
  for (const name of order) await startService(name);
  return {
    get smtpPort() {
      return ports.smtp;
    },
    get submissionPort() {
      return ports.submission;
    },
    get submissionsPort() {
      return ports.submissions;
    },
    get httpPort() {
      return ports.http;
    },
    async stopService(name) {
      const svc = running.get(name);
      running.delete(name);
      await svc?.stop();
    },
    startService,
    service: (name) => running.get(name),
    async stop() {
      for (const name of [...order].reverse()) {
        const svc = running.get(name);
        running.delete(name);
        await svc?.stop().catch(() => {});
      }
    },
  };
}
