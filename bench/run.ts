/**
 * `pnpm bench`: starts the whole stack under the supervisor (isolated broker namespace, schema
 * and Redis prefix), points a protected domain at a fast local sink, and drives real SMTP load:
 * N messages over 20 sessions, 3 recipients each, at 4 KiB and 100 KiB; then a paced run.
 * Prints accepted and delivered msg/s, end-to-end latency (sink arrival − send start) p50/p99,
 * CPU per message and the peak RSS of each service.
 *
 * Options: --messages N (per size, default 3000) --sizes 4096,102400 --sessions 20 --rcpts 3
 *          --paced-rate 100 --paced-seconds 15
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { deleteBrokerNamespace } from '@moat/testkit';
import { Sink } from './sink.js';
import { runLoad, type Sent } from './load.js';
import { childProcesses, percentile, pidsOf, sample, type ProcSample } from './procs.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '3000' },
    sizes: { type: 'string', default: '4096,102400' },
    sessions: { type: 'string', default: '20' },
    rcpts: { type: 'string', default: '3' },
    'paced-rate': { type: 'string', default: '100' },
    'paced-seconds': { type: 'string', default: '15' },
  },
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(fn: () => Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
}

interface RunResult {
  label: string;
  size: number;
  messages: number;
  acceptedPerSec: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  refused: number;
  lost: number;
  duplicates: number;
  cpuMsPerMessage: number;
  /** CPU ms per delivered message, per process group (each service, rabbitmq, postgres, redis). */
  cpuBreakdown: Record<string, number>;
  /** Postgres counters per delivered message. */
  pg: string[];
}

/** Postgres work counters: commits, WAL and row changes per table in the bench schema. */
interface PgCounters {
  commits: number;
  walRecords: number;
  walBytes: number;
  walSyncs: number;
  tables: Record<string, { ins: number; upd: number; del: number; hot: number }>;
}

async function pgCounters(client: pg.Client, schema: string): Promise<PgCounters> {
  const db = await client.query(`SELECT xact_commit::bigint AS c FROM pg_stat_database WHERE datname = current_database()`);
  const wal = await client.query(`SELECT wal_records::bigint AS r, wal_bytes::bigint AS b, wal_sync::bigint AS s FROM pg_stat_wal`);
  // Partitions are summed into their parent's name (tracking tables are partitioned by day).
  const t = await client.query(
    `SELECT coalesce(p.relname, s.relname) AS name, sum(n_tup_ins)::bigint AS ins, sum(n_tup_upd)::bigint AS upd, sum(n_tup_del)::bigint AS del, sum(n_tup_hot_upd)::bigint AS hot
       FROM pg_stat_user_tables s
       LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
       LEFT JOIN pg_class p ON p.oid = i.inhparent
      WHERE s.schemaname = $1 GROUP BY 1`,
    [schema],
  );
  return {
    commits: Number(db.rows[0].c),
    walRecords: Number(wal.rows[0].r),
    walBytes: Number(wal.rows[0].b),
    walSyncs: Number(wal.rows[0].s),
    tables: Object.fromEntries(t.rows.map((r) => [r.name, { ins: Number(r.ins), upd: Number(r.upd), del: Number(r.del), hot: Number(r.hot) }])),
  };
}

/** One line per counter, per delivered message (whole database for commits and WAL: other sessions add noise). */
function describePg(a: PgCounters, b: PgCounters, messages: number): string[] {
  const per = (x: number) => (x / Math.max(1, messages)).toFixed(2);
  const lines = [`commits ${per(b.commits - a.commits)}, WAL records ${per(b.walRecords - a.walRecords)}, WAL KiB ${per((b.walBytes - a.walBytes) / 1024)}, WAL syncs ${per(b.walSyncs - a.walSyncs)}`];
  for (const [name, t] of Object.entries(b.tables).sort()) {
    const o = a.tables[name] ?? { ins: 0, upd: 0, del: 0, hot: 0 };
    const d = { ins: t.ins - o.ins, upd: t.upd - o.upd, del: t.del - o.del, hot: t.hot - o.hot };
    if (d.ins + d.upd + d.del === 0) continue;
    lines.push(`${name}: ins ${per(d.ins)} upd ${per(d.upd)} (hot ${per(d.hot)}) del ${per(d.del)}`);
  }
  return lines;
}

interface StageLatency {
  stage: string;
  p50: number;
  p99: number;
}

/**
 * Where the time goes between stages, read from the tracker's timeline: every event carries the
 * moment its stage published it (accepted by ingress, filtered, delivery requested by the
 * router, delivery result by the sender after the remote 250).
 */
async function stageLatencies(client: pg.Client, schema: string, since: Date): Promise<StageLatency[]> {
  const res = await client.query(
    `WITH m AS (
       SELECT message_id,
              min(at) FILTER (WHERE type = 'accepted') AS accepted,
              min(at) FILTER (WHERE type = 'filtered') AS filtered,
              min(at) FILTER (WHERE type = 'delivery_requested') AS requested,
              min(at) FILTER (WHERE type = 'delivery_attempt') AS delivered
         FROM "${schema}".message_events WHERE at >= $1 GROUP BY message_id)
     SELECT extract(epoch FROM filtered - accepted) * 1000 AS a,
            extract(epoch FROM requested - filtered) * 1000 AS b,
            extract(epoch FROM delivered - requested) * 1000 AS c
       FROM m WHERE accepted IS NOT NULL AND delivered IS NOT NULL`,
    [since],
  );
  const column = (k: 'a' | 'b' | 'c') => res.rows.map((r) => Number(r[k])).sort((x, y) => x - y);
  return [
    { stage: 'ingress 250 → filter published', values: column('a') },
    { stage: 'filter → router published request', values: column('b') },
    { stage: 'router → sender got remote 250', values: column('c') },
  ].map((s) => ({ stage: s.stage, p50: percentile(s.values, 50), p99: percentile(s.values, 99) }));
}

async function main(): Promise<void> {
  const id = `bench${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const smtpPort = await freePort();
  const httpPort = await freePort();
  const token = `bench_${randomBytes(16).toString('hex')}`;
  const sink = new Sink();
  await sink.start();
  const env = {
    ...process.env,
    MOAT_NAMESPACE: id,
    MOAT_DB_SCHEMA: id,
    MOAT_REDIS_PREFIX: `${id}:`,
    MOAT_DATABASE_URL: process.env.MOAT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    MOAT_MASTER_KEY: randomBytes(32).toString('base64'),
    MOAT_BOOTSTRAP_TOKEN: token,
    MOAT_DNS_MODE: 'static',
    MOAT_SMTP_PORT: String(smtpPort),
    MOAT_SMTP_HOST: '127.0.0.1',
    MOAT_HTTP_PORT: String(httpPort),
    MOAT_HTTP_HOST: '127.0.0.1',
    MOAT_ADMIN_PORT_BASE: String(await freePort()),
    MOAT_LOG_LEVEL: 'warn',
    MOAT_REVERSE_DNS: 'false',
  };
  const supervisor: ChildProcess = spawn(process.execPath, ['services/supervisor/dist/main.js'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let supervisorOut = '';
  supervisor.stdout!.on('data', (c: Buffer) => (supervisorOut = (supervisorOut + c.toString()).slice(-20_000)));
  supervisor.stderr!.on('data', (c: Buffer) => (supervisorOut = (supervisorOut + c.toString()).slice(-20_000)));
  const peak = new Map<string, ProcSample>();
  const sampler = setInterval(() => {
    for (const child of childProcesses(supervisor.pid!)) {
      const s = sample(child.pid, child.name);
      if (s && (peak.get(child.name)?.peakRssKiB ?? 0) <= s.peakRssKiB) peak.set(child.name, s);
    }
  }, 500);
  const results: RunResult[] = [];
  let pacedStart = new Date();
  let stages: StageLatency[] = [];
  const stats = new pg.Client({ connectionString: env.MOAT_DATABASE_URL });
  await stats.connect();
  try {
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    };
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, 90_000, () => `the stack to be ready\n${supervisorOut}`);
    await waitFor(async () => new Promise<boolean>((resolve) => net.connect(smtpPort, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).once('error', () => resolve(false))), 30_000, 'SMTP');
    const tenant = await api('POST', '/api/v1/tenants', { name: 'Bench' });
    const domain = `${id}.example`;
    const d = await api('POST', `/api/v1/tenants/${tenant.body.id}/domains`, { name: domain, routes: [{ host: '127.0.0.1', port: sink.port, priority: 10 }] });
    if (d.status !== 201) throw new Error(`provisioning failed: ${JSON.stringify(d.body)}`);
    const rcpts = Array.from({ length: Number(args.rcpts) }, (_, i) => `user${i}@${domain}`);
    const sessions = Number(args.sessions);
    const total = Number(args.messages);

    const cpuPids = () => [
      ...childProcesses(supervisor.pid!),
      ...pidsOf('beam.smp').map((pid) => ({ pid, name: 'rabbitmq' })),
      ...pidsOf('postgres').map((pid) => ({ pid, name: 'postgres' })),
      ...pidsOf('redis-server').map((pid) => ({ pid, name: 'redis' })),
      // The load generator and the sink share this process: shown, not counted as Moat's.
      { pid: process.pid, name: 'bench' },
    ];
    // CPU per process group, keyed by pid so a restarted process is not subtracted from another.
    const cpuNow = () => {
      const byPid = new Map<number, { name: string; cpuMs: number }>();
      for (const p of cpuPids()) {
        const s = sample(p.pid, p.name);
        if (s) byPid.set(p.pid, { name: p.name, cpuMs: s.cpuMs });
      }
      return byPid;
    };
    const cpuDelta = (a: Map<number, { name: string; cpuMs: number }>, b: Map<number, { name: string; cpuMs: number }>) => {
      const out: Record<string, number> = {};
      for (const [pid, after] of b) out[after.name] = (out[after.name] ?? 0) + after.cpuMs - (a.get(pid)?.cpuMs ?? 0);
      return out;
    };

    async function measure(label: string, size: number, count: number, ratePerSec?: number): Promise<RunResult> {
      const prefix = `${label.replace(/[^a-z0-9]+/gi, "_")}-${size}-${randomBytes(3).toString("hex")}`;
      // Counters are read after a short pause so that the previous run's stragglers are in.
      await new Promise((r) => setTimeout(r, 1000));
      const pg0 = await pgCounters(stats, id);
      const cpu0 = cpuNow();
      const t0 = performance.now();
      const sent = await runLoad({ port: smtpPort, total: count, sessions, rcpts, from: `bench@sender.test`, size, prefix, ...(ratePerSec ? { ratePerSec } : {}) });
      const accepted = sent.filter((s) => s.code === 250);
      const tAccepted = performance.now();
      const deadline = Date.now() + 120_000;
      const arrived = () => accepted.filter((s) => sink.arrivals.has(s.benchId)).length;
      while (arrived() < accepted.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const arrivals = accepted.map((s) => sink.arrivals.get(s.benchId)).filter((a): a is NonNullable<typeof a> => !!a);
      const lastArrival = Math.max(...arrivals.map((a) => a.at));
      const latencies = accepted
        .map((s: Sent) => (sink.arrivals.get(s.benchId)?.at ?? NaN) - s.startedAt)
        .filter((x) => !Number.isNaN(x))
        .sort((a, b) => a - b);
      const cpu = cpuDelta(cpu0, cpuNow());
      // pg_stat counters are flushed by each backend at the end of a transaction, at most every 500 ms.
      await new Promise((r) => setTimeout(r, 1000));
      const pgLines = describePg(pg0, await pgCounters(stats, id), arrivals.length);
      const perMessage = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / Math.max(1, arrivals.length)]));
      const cpuTotal = Object.entries(cpu).reduce((a, [name, ms]) => (name === 'bench' ? a : a + ms), 0);
      if (accepted.length - arrivals.length > 0) console.error(`${label}: ${accepted.length - arrivals.length} not delivered within 120 s; supervisor output:\n${supervisorOut.slice(-5000)}`);
      return {
        label,
        size,
        messages: count,
        acceptedPerSec: accepted.length / ((tAccepted - t0) / 1000),
        deliveredPerSec: arrivals.length / ((lastArrival - t0) / 1000),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        refused: sent.length - accepted.length,
        lost: accepted.length - arrivals.length,
        duplicates: arrivals.filter((a) => a.rcpts !== rcpts.length).length,
        cpuMsPerMessage: cpuTotal / Math.max(1, arrivals.length),
        cpuBreakdown: perMessage,
        pg: pgLines,
      };
    }

    // Warm-up: JIT, connection pools, caches.
    await measure('warmup', 4096, 200);
    for (const size of String(args.sizes).split(',').map(Number)) {
      results.push(await measure('saturation', size, size > 50_000 ? Math.ceil(total / 3) : total));
    }
    const rate = Number(args['paced-rate']);
    pacedStart = new Date();
    results.push(await measure(`paced ${rate}/s`, 4096, rate * Number(args['paced-seconds']), rate));
  } finally {
    clearInterval(sampler);
    await stats.end();
    // A supervisor that already exited (it failed to start) emits no second 'exit'.
    if (supervisor.exitCode === null && supervisor.signalCode === null) {
      supervisor.kill('SIGTERM');
      await new Promise((r) => supervisor.once('exit', r));
    }
    await sink.stop();
    const client = new pg.Client({ connectionString: env.MOAT_DATABASE_URL });
    await client.connect();
    stages = await stageLatencies(client, id, pacedStart).catch(() => []);
    await client.query(`DROP SCHEMA IF EXISTS "${id}" CASCADE`);
    await client.end();
    await deleteBrokerNamespace(process.env.MOAT_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', id);
  }

  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const lines = [
    `Moat benchmark — ${new Date().toISOString()} — ${machine}`,
    `${args.sessions} sessions, ${args.rcpts} recipients per message, everything on one machine`,
    '',
    'run                size     msgs  accepted/s  delivered/s  p50 ms  p99 ms  CPU ms/msg  refused  lost  dup',
    ...results.map(
      (r) =>
        `${r.label.padEnd(18)} ${String(r.size).padStart(6)} ${String(r.messages).padStart(7)} ${r.acceptedPerSec.toFixed(0).padStart(11)} ${r.deliveredPerSec.toFixed(0).padStart(12)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${r.cpuMsPerMessage.toFixed(2).padStart(11)} ${String(r.refused).padStart(8)} ${String(r.lost).padStart(5)} ${String(r.duplicates).padStart(4)}`,
    ),
    '',
    'CPU ms per message by process: ',
    ...results.map((r) => `  ${r.label} ${r.size}: ` + Object.entries(r.cpuBreakdown).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')),
    '',
    'Postgres per delivered message:',
    ...results.flatMap((r) => [`  ${r.label} ${r.size}:`, ...r.pg.map((l) => `    ${l}`)]),
    '',
    'per-stage latency in the paced run (ms, from the tracking timeline: when each stage published):',
    ...stages.map((st) => `  ${st.stage.padEnd(34)} p50 ${st.p50.toFixed(1).padStart(7)}  p99 ${st.p99.toFixed(1).padStart(7)}`),
    '',
    'peak RSS per service (MiB): ' + [...peak.values()].map((s) => `${s.name} ${(s.peakRssKiB / 1024).toFixed(0)}`).join(', '),
  ];
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/latest.json', JSON.stringify({ machine, results, peakRssMiB: Object.fromEntries([...peak.values()].map((s) => [s.name, s.peakRssKiB / 1024])) }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
