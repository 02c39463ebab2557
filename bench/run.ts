/**
 * `pnpm bench`: starts the whole stack under the supervisor (isolated broker namespace, schema
 * and Redis prefix), points a protected domain at a fast local sink, and drives real SMTP load:
 * N messages over 20 sessions, 3 recipients each, at 4 KiB and 100 KiB; then a paced run.
 * Prints accepted and delivered msg/s, end-to-end latency (sink arrival − send start) p50/p99,
 * CPU per message and the peak RSS of each service.
 *
 * Options: --messages N (per size, default 3000) --sizes 4096,102400 --sessions 20 --rcpts 3
 *          --paced-rate 100 --paced-seconds 15
 *
 * `pnpm bench --backlog`: the delivery backlog scenario (issue 3). The sink (the customer's
 * server) is down while --messages N (default 20000) are accepted; they all end up deferred;
 * then the sink comes up. Prints the drain time (sink up → last arrival), the peak of concurrent
 * connections at the sink next to the limit (--limit, MOAT_MAX_CONNECTIONS_PER_DESTINATION, shared
 * by --senders senders of one pool), throughput while draining, and Redis memory per queued
 * delivery (INFO used_memory before the load vs at full backlog, and the stack's own keys).
 * Retries use --retry-base-ms / --retry-max-ms and the down destination's back-off
 * --backoff-base-ms / --backoff-max-ms so that the run takes minutes; the router's paced drain
 * runs at its default (MOAT_DESTINATION_DRAIN_RATE) unless --drain-rate is given. Exits 1 when a
 * message is lost or duplicated or the limit was exceeded.
 *
 * `pnpm bench --vs-postfix` (as root: see bench/postfix.ts) runs Moat and a private Postfix
 * relay side by side with the same client, sink and message bytes: --runs 3 rounds per size,
 * alternating which system goes first, each run sending for --seconds 30 (or exactly
 * --messages N), then as many rounds of paced runs at --paced-rate 200 for --paced-seconds 15.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { bytesPerDelivery, drainStats, usedMemory, verifyExactlyOnce } from './backlog.js';
import { deleteBrokerNamespace, isolatedStackEnv } from '@moat/testkit';
import { Sink } from './sink.js';
import { runLoad, type Sent } from './load.js';
import { childProcesses, childrenByCommand, percentile, pidsOf, ProcessGroupMeter } from './procs.js';
import { ensurePostfixInstalled, PostfixInstance } from './postfix.js';
import { defaultCorpusDirs, runFilterBench } from './filter.js';
import { compare, formatComparison, targets, type ComparedRun, type SystemName } from './compare.js';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string' },
    sizes: { type: 'string', default: '4096,102400' },
    sessions: { type: 'string', default: '20' },
    rcpts: { type: 'string', default: '3' },
    'paced-rate': { type: 'string' },
    'paced-seconds': { type: 'string', default: '15' },
    'vs-postfix': { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '30' },
    backlog: { type: 'boolean', default: false },
    filter: { type: 'boolean', default: false },
    corpus: { type: 'string', multiple: true },
    'filter-messages': { type: 'string', default: '3000' },
    'filter-passes': { type: 'string', default: '2' },
    'no-clamd': { type: 'boolean', default: false },
    senders: { type: 'string', default: '2' },
    limit: { type: 'string', default: '10' },
    'retry-base-ms': { type: 'string', default: '30000' },
    'retry-max-ms': { type: 'string', default: '120000' },
    'backoff-base-ms': { type: 'string', default: '5000' },
    'backoff-max-ms': { type: 'string', default: '20000' },
    'drain-rate': { type: 'string' },
    'drain-timeout': { type: 'string', default: '1800' },
  },
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A block of `count` free ports for listeners that start later (the services' SMTP, HTTP and
 * admin ports, Postfix's smtpd). Taken below Linux's ephemeral range (32768–60999): a port from
 * that range can be held by any outgoing connection on a busy machine by the time the service
 * binds it.
 */
async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (12_000 - count));
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await canListen(p);
    if (free) return base;
  }
  throw new Error(`no block of ${count} free ports found between 20000 and 32000`);
}

const freePort = () => freePorts(1);

async function waitFor(fn: () => Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunResult {
  system: SystemName;
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
  /** Postgres counters per delivered message (Moat only). */
  pg: string[];
  /** The machine's 1-minute load average when the run ended (it is shared with others' work). */
  loadAverage: number;
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

/** A system under test: where its SMTP listens and how its processes are measured. */
interface System {
  name: SystemName;
  port: number;
  meter: ProcessGroupMeter;
  /** Waits until nothing of an earlier run is still queued. */
  idle(): Promise<void>;
  /** Recent output, printed when messages go missing. */
  diagnostics(): string;
  /** Postgres counters (Moat only). */
  pgStats?: { client: pg.Client; schema: string };
}

/** The Moat stack under its supervisor, with a provisioned tenant whose domain routes to the sink. */
interface MoatStack {
  id: string;
  domain: string;
  smtpPort: number;
  databaseUrl: string;
  supervisor: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function startMoat(sink: Sink, extraEnv: Record<string, string> = {}): Promise<MoatStack> {
  const id = `bench${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  // SMTP, HTTP, then one admin port per service process.
  const ports = await freePorts(24);
  const smtpPort = ports;
  const httpPort = ports + 1;
  const token = `bench_${randomBytes(16).toString('hex')}`;
  const databaseUrl = process.env.MOAT_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const env = { ...process.env, ...isolatedStackEnv({ id, smtpPort, httpPort, adminPortBase: ports + 2, bootstrapToken: token, databaseUrl }), ...extraEnv };
  const supervisor: ChildProcess = spawn(process.execPath, ['services/supervisor/dist/main.js'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  supervisor.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  supervisor.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-20_000)));
  const stop = async () => {
    // A supervisor that already exited (it failed to start) emits no second 'exit'.
    if (supervisor.exitCode === null && supervisor.signalCode === null) {
      supervisor.kill('SIGTERM');
      await new Promise((r) => supervisor.once('exit', r));
    }
  };
  try {
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
      return { status: res.status, body: (await res.json().catch(() => null)) as any };
    };
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, 90_000, () => `the stack to be ready\n${out}`);
    await waitFor(async () => new Promise<boolean>((resolve) => net.connect(smtpPort, '127.0.0.1').once('connect', function (this: net.Socket) { this.destroy(); resolve(true); }).once('error', () => resolve(false))), 30_000, 'SMTP');
    const tenant = await api('POST', '/api/v1/tenants', { name: 'Bench' });
    const domain = `${id}.example`;
    const d = await api('POST', `/api/v1/tenants/${tenant.body.id}/domains`, { name: domain, routes: [{ host: '127.0.0.1', port: sink.port, priority: 10 }] });
    if (d.status !== 201) throw new Error(`provisioning failed: ${JSON.stringify(d.body)}`);
    return { id, domain, smtpPort, databaseUrl, supervisor, output: () => out, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Drops the bench schema and broker namespace; returns the paced run's per-stage latencies. */
async function cleanUpMoat(stack: MoatStack, pacedStart: Date): Promise<StageLatency[]> {
  const client = new pg.Client({ connectionString: stack.databaseUrl });
  await client.connect();
  const stages = await stageLatencies(client, stack.id, pacedStart).catch(() => []);
  await client.query(`DROP SCHEMA IF EXISTS "${stack.id}" CASCADE`);
  await client.end();
  await deleteBrokerNamespace(process.env.MOAT_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672', stack.id);
  return stages;
}

/** Moat's processes: its services, and the broker, database and cache it needs. */
function moatMeter(stack: MoatStack): ProcessGroupMeter {
  return new ProcessGroupMeter(() => [
    ...childProcesses(stack.supervisor.pid!),
    ...pidsOf('beam.smp').map((pid) => ({ pid, name: 'rabbitmq' })),
    ...pidsOf('postgres').map((pid) => ({ pid, name: 'postgres' })),
    ...pidsOf('redis-server').map((pid) => ({ pid, name: 'redis' })),
    // The load generator and the sink share this process: shown, not counted as the system's.
    { pid: process.pid, name: 'bench' },
  ]);
}

function moatSystem(stack: MoatStack, stats: pg.Client): System {
  return {
    name: 'Moat',
    port: stack.smtpPort,
    meter: moatMeter(stack),
    // measure() only returns once every accepted message reached the sink.
    idle: async () => {},
    diagnostics: () => `supervisor output:\n${stack.output().slice(-5000)}`,
    pgStats: { client: stats, schema: stack.id },
  };
}

function postfixSystem(instance: PostfixInstance): System {
  return {
    name: 'Postfix',
    port: instance.options.port,
    meter: new ProcessGroupMeter(
      () => {
        const master = instance.masterPid();
        return [...(master ? [{ pid: master, name: 'master' }, ...childrenByCommand(master)] : []), { pid: process.pid, name: 'bench' }];
      },
      () => instance.masterPid(),
    ),
    idle: () => waitFor(async () => instance.queued() === 0, 60_000, () => `Postfix's queue to empty\n${instance.logTail()}`),
    diagnostics: () => `Postfix log:\n${instance.logTail()}`,
  };
}

interface LoadShape {
  sink: Sink;
  rcpts: string[];
  sessions: number;
}

/** One run: `count` messages, or as many as the system accepts in `seconds`; paced with `ratePerSec`. */
interface RunShape {
  label: string;
  size: number;
  count?: number;
  seconds?: number;
  ratePerSec?: number;
}

async function measure(system: System, load: LoadShape, { label, size, count, seconds, ratePerSec }: RunShape): Promise<RunResult> {
  const { sink, rcpts, sessions } = load;
  const prefix = `${system.name}-${label.replace(/[^a-z0-9]+/gi, '_')}-${size}-${randomBytes(3).toString('hex')}`;
  await system.idle();
  // Counters are read after a short pause so that the previous run's stragglers are in.
  await sleep(1000);
  const pg0 = system.pgStats ? await pgCounters(system.pgStats.client, system.pgStats.schema) : null;
  const cpu0 = system.meter.snapshot();
  const t0 = performance.now();
  const sent = await runLoad({ port: system.port, total: count ?? Infinity, sessions, rcpts, from: `bench@sender.test`, size, prefix, ...(ratePerSec ? { ratePerSec } : {}), ...(seconds ? { seconds } : {}) });
  const accepted = sent.filter((s) => s.code === 250);
  const tAccepted = performance.now();
  const deadline = Date.now() + 120_000;
  const arrived = () => accepted.filter((s) => sink.arrivals.has(s.benchId)).length;
  while (arrived() < accepted.length && Date.now() < deadline) await sleep(50);
  const arrivals = accepted.map((s) => sink.arrivals.get(s.benchId)).filter((a): a is NonNullable<typeof a> => !!a);
  const lastArrival = Math.max(...arrivals.map((a) => a.at));
  const latencies = accepted
    .map((s: Sent) => (sink.arrivals.get(s.benchId)?.at ?? NaN) - s.startedAt)
    .filter((x) => !Number.isNaN(x))
    .sort((a, b) => a - b);
  const cpu = system.meter.delta(cpu0, system.meter.snapshot());
  let pgLines: string[] = [];
  if (system.pgStats && pg0) {
    // pg_stat counters are flushed by each backend at the end of a transaction, at most every 500 ms.
    await sleep(1000);
    pgLines = describePg(pg0, await pgCounters(system.pgStats.client, system.pgStats.schema), arrivals.length);
  }
  const perMessage = Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, v / Math.max(1, arrivals.length)]));
  const cpuTotal = Object.entries(cpu).reduce((a, [name, ms]) => (name === 'bench' ? a : a + ms), 0);
  if (accepted.length - arrivals.length > 0) console.error(`${system.name} ${label}: ${accepted.length - arrivals.length} not delivered within 120 s; ${system.diagnostics()}`);
  return {
    system: system.name,
    label,
    size,
    messages: sent.length,
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
    loadAverage: os.loadavg()[0]!,
  };
}

function machineLine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

/** The plain benchmark: Moat alone, saturation per size, then one paced run. */
async function moatOnly(): Promise<void> {
  const sink = new Sink();
  await sink.start();
  const stack = await startMoat(sink);
  const stats = new pg.Client({ connectionString: stack.databaseUrl });
  await stats.connect();
  const moat = moatSystem(stack, stats);
  const sampler = setInterval(() => moat.meter.observe(), 500);
  const results: RunResult[] = [];
  let pacedStart = new Date();
  let stages: StageLatency[] = [];
  try {
    const load: LoadShape = { sink, rcpts: Array.from({ length: Number(args.rcpts) }, (_, i) => `user${i}@${stack.domain}`), sessions: Number(args.sessions) };
    const total = Number(args.messages ?? 3000);
    // Warm-up: JIT, connection pools, caches.
    await measure(moat, load, { label: 'warmup', size: 4096, count: 200 });
    for (const size of String(args.sizes).split(',').map(Number)) {
      results.push(await measure(moat, load, { label: 'saturation', size, count: size > 50_000 ? Math.ceil(total / 3) : total }));
    }
    const rate = Number(args['paced-rate'] ?? 100);
    pacedStart = new Date();
    results.push(await measure(moat, load, { label: `paced ${rate}/s`, size: 4096, count: rate * Number(args['paced-seconds']), ratePerSec: rate }));
  } finally {
    clearInterval(sampler);
    await stats.end();
    await stack.stop();
    await sink.stop();
    stages = await cleanUpMoat(stack, pacedStart);
  }

  const services = [...moat.meter.peakRssKiB].filter(([name]) => !['rabbitmq', 'postgres', 'redis', 'bench'].includes(name));
  const machine = machineLine();
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
    'peak RSS per service (MiB): ' + services.map(([name, kib]) => `${name} ${(kib / 1024).toFixed(0)}`).join(', '),
  ];
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/latest.json', JSON.stringify({ machine, results, peakRssMiB: Object.fromEntries(services.map(([name, kib]) => [name, kib / 1024])) }, null, 2));
}

/**
 * Moat and a private Postfix relay in the same run, with the same client, sink and messages.
 * Each round runs both systems once, and the system that goes first alternates between rounds,
 * so that neither always gets the cooler (or the warmer) machine.
 */
async function vsPostfix(): Promise<void> {
  const say = (line: string) => process.stderr.write(`bench: ${line}\n`);
  ensurePostfixInstalled(say);
  const postfixVersion = execFileSync('postconf', ['-h', '-d', 'mail_version']).toString().trim();
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const sink = new Sink();
  await sink.start();
  const stack = await startMoat(sink);
  // The queue goes on a real disk (/var/tmp, not a tmpfs /tmp): Postfix fsyncs every queue file
  // before its 250, as Postgres syncs its WAL before Moat's.
  const instance = new PostfixInstance({ dir: mkdtempSync('/var/tmp/moat-bench-postfix-'), port: await freePort(), relayDomain: stack.domain, sinkPort: sink.port });
  // The master runs detached from this process: stop it even when the benchmark is interrupted.
  process.once('exit', () => {
    instance.stop();
    if (stack.supervisor.exitCode === null) stack.supervisor.kill('SIGTERM');
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const stats = new pg.Client({ connectionString: stack.databaseUrl });
  const runs: RunResult[] = [];
  let pacedStart = new Date();
  let sampler: NodeJS.Timeout | undefined;
  let moat: System | undefined;
  let postfix: System | undefined;
  let postfixSettings = '';
  let postfixProblems: string[] = [];
  try {
    await stats.connect();
    instance.start();
    postfixSettings = instance.settings();
    moat = moatSystem(stack, stats);
    postfix = postfixSystem(instance);
    const systems = [moat, postfix];
    sampler = setInterval(() => systems.forEach((s) => s.meter.observe()), 500);
    const load: LoadShape = { sink, rcpts: Array.from({ length: Number(args.rcpts) }, (_, i) => `user${i}@${stack.domain}`), sessions: Number(args.sessions) };
    const rounds = Number(args.runs);
    const order = (round: number) => (round % 2 === 0 ? systems : [...systems].reverse());

    // Each saturation run sends for --seconds (N is what the system accepted meanwhile), or
    // exactly --messages N.
    const span = args.messages ? { count: Number(args.messages) } : { seconds: Number(args.seconds) };
    for (const size of String(args.sizes).split(',').map(Number)) {
      // Warm-up per system and size: JIT, pools, caches, Postfix's process pool.
      for (const system of systems) await measure(system, load, { label: 'warmup', size, seconds: 5 });
      for (let round = 0; round < rounds; round++) {
        for (const system of order(round)) {
          const r = await measure(system, load, { label: 'saturation', size, ...span });
          say(`${system.name} ${size} B round ${round + 1}: ${r.messages} messages, ${r.deliveredPerSec.toFixed(0)} msg/s delivered, p99 ${r.p99.toFixed(0)} ms, load average ${loadAverage()}`);
          runs.push(r);
        }
      }
    }
    const rate = Number(args['paced-rate'] ?? 200);
    pacedStart = new Date();
    for (let round = 0; round < rounds; round++) {
      for (const system of order(round)) {
        const r = await measure(system, load, { label: `paced ${rate}/s`, size: 4096, count: Math.round(rate * Number(args['paced-seconds'])), ratePerSec: rate });
        say(`${system.name} paced ${rate}/s round ${round + 1}: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`);
        runs.push(r);
      }
    }
  } finally {
    if (sampler) clearInterval(sampler);
    await stats.end().catch(() => {});
    postfixProblems = instance.problems();
    instance.stop();
    await stack.stop();
    await sink.stop();
    await cleanUpMoat(stack, pacedStart);
  }

  const compared: ComparedRun[] = runs.map((r) => ({ ...r, kind: r.label }));
  const rows = compare(compared);
  const verdicts = targets(rows, `paced ${Number(args['paced-rate'] ?? 200)}/s`);
  const rss = (meter: ProcessGroupMeter, note: (name: string) => string = () => '') =>
    [...meter.peakRssKiB]
      .filter(([name]) => name !== 'bench')
      .sort((a, b) => b[1] - a[1])
      .map(([name, kib]) => `${name}${note(name)} ${(kib / 1024).toFixed(0)}`)
      .join(', ');
  const shared = (name: string) => (name === 'rabbitmq' ? ' (whole broker, shared)' : name === 'postgres' ? ' (largest backend)' : '');
  const machine = machineLine();
  const lines = [
    `Moat vs Postfix ${postfixVersion} — ${startedAt.toISOString()} — ${machine}`,
    `load average (1/5/15 min) at start ${loadAtStart}, at end ${loadAverage()}; 1-min load at the end of each run ${runs.map((r) => r.loadAverage.toFixed(1)).join(' ')}`,
    `${args.sessions} sessions, ${args.rcpts} recipients per message, ${args.runs} runs per system and size, alternating; same client, sink, machine and message bytes.`,
    'The load generator and the sink run on the same cores as both systems; the idle system stays up during the other’s runs.',
    '',
    ...formatComparison(rows),
    '',
    'peak RSS per process (MiB, the largest process of each name over the whole run):',
    `  Moat:    ${moat ? rss(moat.meter, shared) : ''}`,
    `  Postfix: ${postfix ? rss(postfix.meter) : ''}`,
    `Postfix log: ${postfixProblems.length} warning/error lines${postfixProblems.length ? `, first: ${postfixProblems.slice(0, 3).join(' | ')}` : ''}`,
    '',
    'targets (issue 4):',
    ...verdicts.map((v) => `  ${v.met ? 'met    ' : 'NOT met'}  ${v.what}: ${v.value}`),
  ];
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    'bench/results/vs-postfix-latest.json',
    JSON.stringify({ machine, postfixVersion, startedAt, loadAverage: { start: loadAtStart, end: loadAverage() }, postfixSettings, postfixProblems, runs, rows, verdicts }, null, 2),
  );
}

/** Keys under a Redis prefix and the memory they use (MEMORY USAGE, bytes). */
async function prefixKeys(redis: Redis, prefix: string): Promise<{ count: number; bytes: number; byKind: Record<string, number> }> {
  let cursor = '0';
  const keys: string[] = [];
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  let bytes = 0;
  for (let i = 0; i < keys.length; i += 500) {
    const pipeline = redis.pipeline();
    for (const k of keys.slice(i, i + 500)) pipeline.memory('USAGE', k);
    for (const [, v] of (await pipeline.exec()) ?? []) bytes += Number(v ?? 0);
  }
  // Kinds: the key with its variable parts (addresses, ports, hashes, ids) as *, e.g. "dest:*:*:conns".
  const byKind: Record<string, number> = {};
  for (const k of keys) {
    const kind = k.slice(prefix.length).split(':').map((part) => (/^[a-z][a-z_-]*$/i.test(part) ? part : '*')).join(':');
    byKind[kind] = (byKind[kind] ?? 0) + 1;
  }
  return { count: keys.length, bytes, byKind };
}

/**
 * Issue 3's delivery backlog: the customer's server is down while N messages are accepted, they
 * all end up deferred, then the server comes up and the backlog drains through the shared
 * per-destination connection limit.
 */
async function backlog(): Promise<void> {
  const say = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const total = Number(args.messages ?? 20_000);
  const senders = Number(args.senders);
  const limit = Number(args.limit);
  const rcptCount = Number(args.rcpts);
  const retryBaseMs = Number(args['retry-base-ms']);
  const retryMaxMs = Number(args['retry-max-ms']);
  const backoffBaseMs = Number(args['backoff-base-ms']);
  const backoffMaxMs = Number(args['backoff-max-ms']);
  const drainRate = args['drain-rate'] ? Number(args['drain-rate']) : null;
  if (!(senders >= 1 && senders <= 250)) throw new Error('--senders must be 1–250');
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const sink = new Sink();
  // A port below the ephemeral range: it stays free while the sink is down.
  await sink.start(await freePort());
  const senderList = Array.from({ length: senders }, (_, i) => `default=127.0.0.${i + 1}`).join(',');
  const stack = await startMoat(sink, {
    MOAT_SENDERS: senderList,
    MOAT_MAX_CONNECTIONS_PER_DESTINATION: String(limit),
    MOAT_RETRY_BASE_MS: String(retryBaseMs),
    MOAT_RETRY_MAX_MS: String(retryMaxMs),
    MOAT_DESTINATION_BACKOFF_BASE_MS: String(backoffBaseMs),
    MOAT_DESTINATION_BACKOFF_MAX_MS: String(backoffMaxMs),
    ...(drainRate ? { MOAT_DESTINATION_DRAIN_RATE: String(drainRate) } : {}),
  });
  const redis = new Redis(process.env.MOAT_REDIS_URL ?? 'redis://127.0.0.1:6379');
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  const meter = moatMeter(stack);
  const sampler = setInterval(() => meter.observe(), 1000);
  let result: Record<string, unknown> | null = null;
  let lines: string[] = [];
  let failed = false;
  try {
    await db.connect();
    const counts = async () => {
      const r = await db.query(
        `SELECT count(*)::int AS total,
                count(*) FILTER (WHERE last_error IS NOT NULL AND status <> 'done')::int AS attempted,
                count(*) FILTER (WHERE status IN ('deferred', 'held'))::int AS deferred,
                count(*) FILTER (WHERE status = 'done')::int AS done,
                coalesce(avg(attempt), 0)::float AS attempts
           FROM "${stack.id}".deliveries`,
      );
      return r.rows[0] as { total: number; attempted: number; deferred: number; done: number; attempts: number };
    };
    // The customer's server goes down: connections to its port are refused.
    await sink.stop();
    const prefix = `${stack.id}:`;
    const memBefore = usedMemory(await redis.info('memory'));
    const keysBefore = await prefixKeys(redis, prefix);
    say(`sink down; sending ${total} messages (${rcptCount} recipients each) over ${args.sessions} sessions`);
    const t0 = performance.now();
    const sent = await runLoad({ port: stack.smtpPort, total, sessions: Number(args.sessions), rcpts: Array.from({ length: rcptCount }, (_, i) => `user${i}@${stack.domain}`), from: 'bench@sender.test', size: 4096, prefix: `backlog-${randomBytes(3).toString('hex')}` });
    const accepted = sent.filter((s) => s.code === 250).map((s) => s.benchId);
    const acceptSeconds = (performance.now() - t0) / 1000;
    say(`${accepted.length} of ${sent.length} accepted in ${acceptSeconds.toFixed(1)} s; waiting until every delivery waits in the queue (sink down)`);
    let lastSay = 0;
    await waitFor(
      async () => {
        const c = await counts();
        if (Date.now() - lastSay > 10_000) {
          lastSay = Date.now();
          say(`deliveries ${c.total}, deferred ${c.deferred} (${c.attempted} of them attempted at least once), done ${c.done}; load ${loadAverage()}`);
        }
        // Every delivery deferred (a down destination's new mail is deferred without an attempt),
        // except at most the one probe the router lets through.
        return c.total >= accepted.length && c.total - c.deferred - c.done <= 1;
      },
      Math.max(300_000, total * 50),
      'every delivery to be deferred',
    );
    const atBacklog = await counts();
    const memAtBacklog = usedMemory(await redis.info('memory'));
    const keysAtBacklog = await prefixKeys(redis, prefix);
    const queued = atBacklog.total - atBacklog.done;
    say(`backlog: ${queued} deliveries queued (${atBacklog.deferred} deferred, ${atBacklog.attempted} attempted at least once, ${atBacklog.attempts.toFixed(2)} attempts each on average); sink up`);

    // The customer's server comes back.
    await sink.restart();
    sink.resetPeak();
    const upAt = performance.now();
    const drainDeadline = Date.now() + Number(args['drain-timeout']) * 1000;
    const arrived = () => accepted.filter((id) => sink.arrivals.has(id)).length;
    lastSay = Date.now();
    while (arrived() < accepted.length && Date.now() < drainDeadline) {
      await sleep(200);
      if (Date.now() - lastSay > 10_000) {
        lastSay = Date.now();
        say(`drained ${arrived()} of ${accepted.length}; ${sink.connections} connections open (peak ${sink.peakConnections}, limit ${limit}); load ${loadAverage()}`);
      }
    }
    const drainedAt = performance.now();
    if (sink.peakConnections > limit) {
      // What the senders said about the shared limit (Redis away, slots lost), for the diagnosis.
      const said = stack.output().split('\n').filter((l) => /Redis unreachable|shared slot|redis error/i.test(l));
      say(`limit exceeded; sender log lines about the shared limit (${said.length}):\n${said.slice(-20).join('\n')}`);
    }
    // Late copies (a duplicate would come after the original): give them a moment.
    await sleep(3_000);
    const stats = drainStats(accepted.map((id) => sink.arrivals.get(id)?.at ?? -1).filter((a) => a >= 0), upAt);
    const check = verifyExactlyOnce(accepted, sink.arrivals, rcptCount);
    const end = await counts();
    const rss = [...meter.peakRssKiB].filter(([name]) => !['rabbitmq', 'postgres', 'redis', 'bench'].includes(name));
    failed = check.lost.length > 0 || check.duplicated.length > 0 || sink.peakConnections > limit || sent.length !== accepted.length;
    const perDelivery = bytesPerDelivery(memBefore, memAtBacklog, queued);
    const ownPerDelivery = queued > 0 ? (keysAtBacklog.bytes - keysBefore.bytes) / queued : NaN;
    result = {
      machine: machineLine(),
      startedAt,
      loadAverage: { start: loadAtStart, end: loadAverage() },
      settings: { messages: total, rcptsPerMessage: rcptCount, senders, limit, retryBaseMs, retryMaxMs, backoffBaseMs, backoffMaxMs, drainRate: drainRate ?? 'router default' },
      accepted: accepted.length,
      refused: sent.length - accepted.length,
      acceptSeconds,
      backlog: { queued, deferred: atBacklog.deferred, attemptedAtLeastOnce: atBacklog.attempted, attemptsPerDeliverySoFar: atBacklog.attempts },
      drain: stats,
      drainComplete: arrived() === accepted.length,
      peakConnections: sink.peakConnections,
      redis: {
        usedMemoryBefore: memBefore,
        usedMemoryAtBacklog: memAtBacklog,
        bytesPerQueuedDelivery: perDelivery,
        keysBefore: keysBefore.count,
        keysAtBacklog: keysAtBacklog.count,
        keysAtBacklogByKind: keysAtBacklog.byKind,
        ownKeyBytesAtBacklog: keysAtBacklog.bytes,
        ownKeyBytesPerQueuedDelivery: ownPerDelivery,
      },
      attemptsPerDeliveryAtEnd: end.attempts,
      lost: check.lost.length,
      duplicated: check.duplicated.length,
      peakRssMiB: Object.fromEntries(rss.map(([name, kib]) => [name, kib / 1024])),
      drainWallSeconds: (drainedAt - upAt) / 1000,
    };
    const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    lines = [
      `Moat delivery backlog — ${startedAt.toISOString()} — ${machineLine()}`,
      `load average (1/5/15 min) at start ${loadAtStart}, at end ${loadAverage()}`,
      `${total} messages × ${rcptCount} recipients to one destination; ${senders} sender(s) in one pool; retries every ${retryBaseMs} ms doubling to ${retryMaxMs} ms; destination back-off ${backoffBaseMs} ms doubling to ${backoffMaxMs} ms; drain rate ${drainRate ?? 'router default (MOAT_DESTINATION_DRAIN_RATE)'}`,
      '',
      `accepted while the sink was down   ${accepted.length} in ${acceptSeconds.toFixed(1)} s (${sent.length - accepted.length} refused)`,
      `queued deliveries at full backlog  ${queued} (${atBacklog.deferred} deferred; ${atBacklog.attempted} attempted at least once; attempt number ${atBacklog.attempts.toFixed(2)} on average)`,
      `drain time (sink up → last)        ${secs(stats.drainMs)}${arrived() < accepted.length ? ` — INCOMPLETE after ${args['drain-timeout']} s` : ''}`,
      `  first delivery after sink up     ${secs(stats.firstArrivalMs)} (the destination's back-off ends, its probe gets through)`,
      `  90 % / 99 % delivered after      ${secs(stats.p90Ms)} / ${secs(stats.p99Ms)}`,
      `  throughput while draining        ${stats.averagePerSec.toFixed(0)} msg/s over the drain, ${stats.flowingPerSec.toFixed(0)} msg/s first → last arrival, peak ${stats.peakPerSec} in one second`,
      `peak connections at the sink       ${sink.peakConnections} (limit ${limit}: ${sink.peakConnections <= limit ? 'respected' : 'EXCEEDED'})`,
      `Redis used_memory                  ${(memBefore / 1024).toFixed(0)} KiB before the load, ${(memAtBacklog / 1024).toFixed(0)} KiB at full backlog: ${perDelivery.toFixed(1)} bytes per queued delivery (whole server: other users of this Redis add noise)`,
      `Redis keys of this stack           ${keysBefore.count} before, ${keysAtBacklog.count} at full backlog (${Object.entries(keysAtBacklog.byKind).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}), ${(keysAtBacklog.bytes / 1024).toFixed(1)} KiB: ${ownPerDelivery.toFixed(1)} bytes per queued delivery`,
      `attempts per delivery at the end   ${end.attempts.toFixed(2)}`,
      `exactly once                       ${check.lost.length} lost, ${check.duplicated.length} duplicated`,
      'peak RSS per service (MiB): ' + rss.map(([name, kib]) => `${name} ${(kib / 1024).toFixed(0)}`).join(', '),
    ];
  } finally {
    clearInterval(sampler);
    await db.end().catch(() => {});
    redis.disconnect();
    await stack.stop();
    await sink.stop().catch(() => {});
    await cleanUpMoat(stack, new Date());
    // The stack's Redis keys (the supervisor's services are gone by now).
    const cleaner = new Redis(process.env.MOAT_REDIS_URL ?? 'redis://127.0.0.1:6379');
    let cursor = '0';
    do {
      const [next, keys] = await cleaner.scan(cursor, 'MATCH', `${stack.id}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await cleaner.del(...keys);
    } while (cursor !== '0');
    cleaner.disconnect();
  }
  console.log(lines.join('\n'));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/backlog-latest.json', JSON.stringify(result, null, 2));
  if (failed) process.exitCode = 1;
}

/** The filter's checks over real messages, in-process (bench/filter.ts). */
async function filterChecks(): Promise<void> {
  const root = process.cwd();
  const result = await runFilterBench(
    {
      dirs: args.corpus?.length ? args.corpus.map((d) => resolve(d)) : defaultCorpusDirs(root),
      limit: Number(args['filter-messages']),
      passes: Number(args['filter-passes']),
      clamd: !args['no-clamd'],
    },
    (line) => console.log(line),
  );
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/filter-latest.json', JSON.stringify({ at: new Date().toISOString(), machine: machineLine(), ...result }, null, 2));
}

(args.filter ? filterChecks() : args.backlog ? backlog() : args['vs-postfix'] ? vsPostfix() : moatOnly()).catch((err) => {
  console.error(err);
  process.exit(1);
});
