import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { deleteBrokerNamespace, isolatedStackEnv } from '@moat/testkit';

const run = promisify(execFile);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const services = ['ingress', 'filter', 'archive', 'router', 'sender', 'tracker', 'gateway'] as const;
export type Service = (typeof services)[number];

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A process's children by service name (a sender is named after its binary: sender). */
export async function children(pid: number): Promise<Map<Service, number>> {
  const out = await run('ps', ['-o', 'pid=,args=', '--ppid', String(pid)]).then((r) => r.stdout, () => '');
  const map = new Map<Service, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+.*services\/([a-z]+)\/dist\/main\.js/.exec(line);
    if (m && (services as readonly string[]).includes(m[2]!)) map.set(m[2] as Service, Number(m[1]));
  }
  return map;
}

export interface StackProcess {
  id: string;
  supervisor: ChildProcess;
  smtpPort: number;
  httpPort: number;
  databaseUrl: string;
  /** The supervisor's "<service> exited (…)" lines so far. */
  exitLines: string[];
  /** Every line the stack wrote (warnings and errors). */
  logFile: string;
  /** Every service running, the API ready and the SMTP port open. */
  readyAll(): Promise<void>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** A tenant with one protected domain per route port; returns the domain names. */
  provision(ports: number[]): Promise<string[]>;
  /** Stops the stack and removes its schema and broker namespace. */
  destroy(): Promise<void>;
}

/**
 * The whole stack under the supervisor, as `npm start` runs it (real processes: kill -9 is
 * real), in its own broker namespace, schema and Redis prefix, with static DNS and a compressed
 * retry schedule so that deferred mail comes through within a run.
 */
export async function startStackProcess(prefix: string, extraEnv: Record<string, string> = {}): Promise<StackProcess> {
  const id = `${prefix}${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const smtpPort = await freePort();
  const httpPort = await freePort();
  const token = `${prefix}_${randomBytes(16).toString('hex')}`;
  const databaseUrl = process.env.MOAT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const env = {
    ...process.env,
    ...isolatedStackEnv({ id, smtpPort, httpPort, adminPortBase: await freePort(), bootstrapToken: token, databaseUrl }),
    MOAT_SUPERVISOR_OUTPUT: 'raw',
    MOAT_RETRY_BASE_MS: '500',
    MOAT_RETRY_MAX_MS: '2000',
    MOAT_DESTINATION_BACKOFF_BASE_MS: '500',
    MOAT_DESTINATION_BACKOFF_MAX_MS: '2000',
    MOAT_DESTINATION_PROBE_LEASE_MS: '5000',
    MOAT_RETRY_SWEEP_MS: '2000',
    MOAT_RETRY_SWEEP_GRACE_MS: '2000',
    MOAT_SCHEDULER_INTERVAL_MS: '200',
    MOAT_ROUTE_CACHE_MS: '0',
    // A killed sender's claims are taken over after this lease (production: 5 minutes).
    MOAT_SEND_LEASE_MS: '10000',
    MOAT_RESTART_MIN_DELAY_MS: '100',
    MOAT_RESTART_MAX_DELAY_MS: '1000',
    MOAT_RESTART_MAX_FAST_CRASHES: '1000',
    ...extraEnv,
  };
  const logFile = join(tmpdir(), `moat-${id}.log`);
  const logStream = createWriteStream(logFile);
  const exitLines: string[] = [];
  let recent = '';
  const supervisor = spawn(process.execPath, ['services/supervisor/dist/main.js'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (c: Buffer) => {
    const text = c.toString();
    for (const m of text.matchAll(/"msg":"([a-z:]+ exited \([^"]*)"/g)) exitLines.push(m[1]!);
    recent = (recent + text).slice(-20_000);
    logStream.write(c);
  };
  supervisor.stdout!.on('data', keep);
  supervisor.stderr!.on('data', keep);

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };
  const stack: StackProcess = {
    id,
    supervisor,
    smtpPort,
    httpPort,
    databaseUrl,
    exitLines,
    logFile,
    api,
    async readyAll() {
      await waitFor('every service to run', async () => (await children(supervisor.pid!)).size === services.length, 90_000);
      await waitFor('the API', async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, 90_000);
      await waitFor('SMTP', () => portOpen(smtpPort), 90_000);
    },
    async provision(ports) {
      const tenant = await api('POST', '/api/v1/tenants', { name: prefix });
      const names: string[] = [];
      for (const [i, port] of ports.entries()) {
        const name = `${String.fromCharCode(97 + i)}.${id}.example`;
        const d = await api('POST', `/api/v1/tenants/${tenant.body.id}/domains`, { name, routes: [{ host: '127.0.0.1', port, priority: 10 }] });
        if (d.status !== 201) throw new Error(`provisioning failed: ${JSON.stringify(d.body)}`);
        names.push(name);
      }
      return names;
    },
    async destroy() {
      if (supervisor.exitCode === null && supervisor.signalCode === null) {
        supervisor.kill('SIGTERM');
        await Promise.race([new Promise((r) => supervisor.once('exit', r)), sleep(30_000)]);
      }
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect().then(() => db.query(`DROP SCHEMA IF EXISTS "${id}" CASCADE`)).catch(() => {});
      await db.end().catch(() => {});
      await deleteBrokerNamespace(process.env.MOAT_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', id).catch(() => {});
      logStream.end();
    },
  };
  try {
    await stack.readyAll();
  } catch (err) {
    await stack.destroy();
    throw new Error(`${(err as Error).message}\n${recent}`);
  }
  return stack;
}
