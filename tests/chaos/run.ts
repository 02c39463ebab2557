/**
 * `npm run test:chaos`: the zero-loss proof. Starts the whole stack under the supervisor (real
 * processes, so kill -9 is real; isolated broker namespace, schema and Redis prefix), drives a
 * steady SMTP load (20 sessions, 3 recipients on 2 destinations per message) and, during each
 * phase of it, injects one fault:
 *   kill -9 of each service type in turn (the supervisor restarts it), RabbitMQ stop_app /
 *   start_app, a Postgres restart, a flush of Moat's Redis keys, the customer's server down for
 *   a while, and a rolling restart (SIGTERM, drain, start) of every service.
 * Then it waits for the queues to drain and reconciles (reconcile.ts): per fault, accepted,
 * delivered, bounced, queued, parked, lost (must be 0) and duplicated. Exits 1 when anything
 * was lost, when a client got a 5xx during the rolling restart, or when the stack did not
 * recover; prints one last line "chaos: N faults, N lost, N duplicated".
 *
 * Options: --messages N (per phase, default 250) --sessions 20 --size 4096
 *          --faults a,b,… (names below; default all) --skip-infra (no broker/database restarts:
 *          for a machine whose RabbitMQ and Postgres other work is using).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ChaosLoad, type Attempt } from './load.js';
import { RecordingServer } from './recording-server.js';
import { formatTable, reconcile, type FaultReport, type TrackedStatus } from './reconcile.js';
import { children, services, sleep, startStackProcess, waitFor, type Service } from './stack-process.js';

const run = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '250' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
    faults: { type: 'string' },
    'skip-infra': { type: 'boolean', default: false },
  },
});

function log(text: string): void {
  process.stderr.write(`chaos: ${text}\n`);
}

interface Phase {
  name: string;
  infra?: boolean;
  /** Injects the fault while the phase's load runs; resolves once it is over (service back). */
  inject: (ctx: Ctx) => Promise<void>;
  /** The phase fails when a client got a 5xx (a fault Moat must ride out without refusing mail). */
  no5xx?: boolean;
}

interface Ctx {
  supervisor: ChildProcess;
  load: ChaosLoad;
  customers: RecordingServer[];
  redisPrefix: string;
  readyAll: () => Promise<void>;
}

/** Waits until the phase's load has done `fraction` (randomised) of its messages. */
async function atRandomMoment(ctx: Ctx, total: number): Promise<void> {
  const at = Math.floor(total * (0.2 + Math.random() * 0.35));
  while (ctx.load.done < at) await sleep(10);
}

function killPhase(service: Service): Phase {
  return {
    name: `kill -9 ${service}${service === 'ingress' ? ' (mid-DATA)' : service === 'sender' ? ' (mid-transaction)' : ''}`,
    async inject(ctx) {
      if (service === 'sender') {
        // Mid-transaction: the customer has read the final dot and not yet answered.
        const deadline = Date.now() + 3_000;
        while (!ctx.customers.some((c) => c.openData > 0) && Date.now() < deadline) await sleep(1);
      }
      const pid = (await children(ctx.supervisor.pid!)).get(service);
      if (!pid) throw new Error(`no ${service} process to kill`);
      process.kill(pid, 'SIGKILL');
      log(`killed ${service} (pid ${pid})`);
      await sleep(300);
      await ctx.readyAll();
    },
  };
}

const faults: Phase[] = [
  ...services.map(killPhase),
  {
    name: 'RabbitMQ stop_app / start_app',
    infra: true,
    async inject(ctx) {
      await run('rabbitmqctl', ['stop_app']);
      log('RabbitMQ stopped');
      await sleep(3_000);
      await run('rabbitmqctl', ['start_app']);
      log('RabbitMQ started');
      await ctx.readyAll();
    },
  },
  {
    name: 'Postgres restart',
    infra: true,
    async inject(ctx) {
      const version = readdirSync('/etc/postgresql')[0];
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', String(version), 'main', 'restart']);
      log('Postgres restarted');
      await ctx.readyAll();
    },
  },
  {
    name: 'Redis flush (Moat keys)',
    async inject(ctx) {
      // FLUSHALL would also wipe whatever else uses this Redis; Moat's keys are its prefix.
      const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
      await redis.connect();
      let cursor = '0';
      let removed = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${ctx.redisPrefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) removed += await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
      log(`flushed ${removed} Redis keys`);
    },
  },
  {
    name: "customer's server down 8 s",
    async inject(ctx) {
      const customer = ctx.customers[0]!;
      await customer.goDown();
      log("customer's server down");
      await sleep(8_000);
      await customer.up();
      log("customer's server up");
    },
  },
  {
    name: 'rolling restart (SIGTERM each)',
    no5xx: true,
    async inject(ctx) {
      for (const service of services) {
        const pid = (await children(ctx.supervisor.pid!)).get(service);
        if (!pid) throw new Error(`no ${service} process to restart`);
        process.kill(pid, 'SIGTERM');
        await waitFor(`${service} to be restarted`, async () => {
          const now = (await children(ctx.supervisor.pid!)).get(service);
          return now !== undefined && now !== pid;
        }, 60_000);
        await ctx.readyAll();
        log(`restarted ${service}`);
      }
    },
  },
];

async function main(): Promise<void> {
  const customers = [new RecordingServer(), new RecordingServer()];
  for (const c of customers) await c.start();
  const stack = await startStackProcess('chaos');
  const { id, supervisor, smtpPort, databaseUrl, exitLines, logFile } = stack;
  const readyAll = stack.readyAll.bind(stack);
  /** Whether a customer's server has received message `chaosId` for `rcpt`. */
  const arrived = (chaosId: string, rcpt: string) => customers.some((c) => (c.received.get(chaosId)?.get(rcpt.toLowerCase()) ?? 0) > 0);
  let exitCode = 0;
  const rows: { fault: string; report: FaultReport }[] = [];
  const failures: string[] = [];
  const diagnostics: string[] = [];
  const duplicates: string[] = [];
  const replies = new Map<string, Map<string, number>>();
  try {
    const domains = await stack.provision(customers.map((c) => c.port));
    const rcpts = [`alice@${domains[0]}`, `bob@${domains[0]}`, `carol@${domains[1]}`];
    const wanted = args.faults ? new Set(args.faults.split(',')) : null;
    const phases = faults.filter((f) => (!args['skip-infra'] || !f.infra) && (!wanted || [...wanted].some((w) => f.name.includes(w))));
    const perPhase = Number(args.messages);
    const phaseAttempts = new Map<string, Attempt[]>();
    for (const [i, phase] of phases.entries()) {
      // Steady load across the fault: at least `perPhase` messages, and on until 1.5 s after
      // the fault is over (the stack recovered), so that every fault meets traffic.
      const load = new ChaosLoad({ port: smtpPort, sessions: Number(args.sessions), from: 'sender@chaos.test', rcpts, size: Number(args.size), prefix: `p${i}`, total: perPhase * 40 });
      const ctx: Ctx = { supervisor, load, customers, redisPrefix: `${id}:`, readyAll };
      log(`phase ${i + 1}/${phases.length}: ${phase.name}`);
      const sending = load.run();
      await atRandomMoment(ctx, perPhase);
      const injected = await phase.inject(ctx).then(
        () => null,
        (err: unknown) => err as Error,
      );
      if (injected) failures.push(`${phase.name}: the fault could not be injected or the stack did not recover: ${injected.message}`);
      const over = Date.now();
      while ((load.done < perPhase || Date.now() - over < 1_500) && Date.now() - over < 120_000) await sleep(20);
      load.stop();
      await sending.catch((err: unknown) => failures.push(`${phase.name}: the load generator failed: ${(err as Error).message}`));
      phaseAttempts.set(phase.name, load.attempts);
      // Let this phase's mail through before the next fault, so that each row of the table
      // shows what one fault did (a fault meeting the previous phase's mail in flight would
      // otherwise be counted against that phase).
      const undelivered = () =>
        load.attempts.filter((a) => a.code === 250).reduce((n, a) => n + a.rcpts.filter((r) => !arrived(a.chaosId, r)).length, 0);
      await waitFor(`${phase.name}: its mail to be delivered`, async () => undelivered() === 0, 60_000).catch(() => log(`${phase.name}: ${undelivered()} recipients still undelivered; going on`));
      const seen = new Map<string, number>();
      for (const a of load.attempts) if (a.code !== 250) seen.set(`${a.code} ${a.response.slice(0, 80)}`, (seen.get(`${a.code} ${a.response.slice(0, 80)}`) ?? 0) + 1);
      replies.set(phase.name, seen);
      await readyAll();
    }

    // Drain: every accepted recipient delivered, or the clock runs out (the rest is reconciled).
    const accepted = [...phaseAttempts.values()].flat().filter((a) => a.code === 250);
    const outstanding = () => accepted.reduce((n, a) => n + a.rcpts.filter((r) => !arrived(a.chaosId, r)).length, 0);
    await waitFor('the queues to drain', async () => outstanding() === 0, 120_000).catch(() => log(`${outstanding()} recipients not delivered after the drain wait`));
    await sleep(1_500);

    const received = new Map<string, Map<string, number>>();
    for (const c of customers) {
      for (const [chaosId, byRcpt] of c.received) {
        const into = received.get(chaosId) ?? new Map<string, number>();
        for (const [r, n] of byRcpt) into.set(r, (into.get(r) ?? 0) + n);
        received.set(chaosId, into);
      }
    }
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const tracked = new Map<string, Map<string, TrackedStatus>>();
    const trackedRows = await db.query<{ subject: string; rcpt: string; status: TrackedStatus }>(
      `SELECT m.subject, r.rcpt, r.status FROM "${id}".tracked_messages m JOIN "${id}".tracked_recipients r USING (message_id) WHERE m.subject LIKE 'chaos %'`,
    );
    for (const r of trackedRows.rows) {
      const chaosId = r.subject.slice('chaos '.length);
      const m = tracked.get(chaosId) ?? new Map<string, TrackedStatus>();
      m.set(r.rcpt.toLowerCase(), r.status);
      tracked.set(chaosId, m);
    }
    const pending = new Map<string, Set<string>>();
    const pendingRows = await db.query<{ subject: string | null; rcpts: string[] }>(
      `SELECT m.subject, d.rcpts FROM "${id}".deliveries d LEFT JOIN "${id}".tracked_messages m ON m.message_id = d.message_id WHERE d.status <> 'done'`,
    );
    for (const r of pendingRows.rows) {
      if (!r.subject?.startsWith('chaos ')) continue;
      const chaosId = r.subject.slice('chaos '.length);
      const s = pending.get(chaosId) ?? new Set<string>();
      for (const rcpt of r.rcpts) s.add(rcpt.toLowerCase());
      pending.set(chaosId, s);
    }
    // Why anything is still undelivered: its tracking and delivery rows, for the report.
    const stuck = accepted.filter((a) => a.rcpts.some((r) => !arrived(a.chaosId, r))).slice(0, 5);
    for (const a of stuck) {
      const rows = await db.query(
        `SELECT m.message_id, r.rcpt, r.status AS tracked, d.status AS delivery, d.attempt, d.next_attempt_at, d.lease_until, d.last_error
           FROM "${id}".tracked_messages m JOIN "${id}".tracked_recipients r USING (message_id)
           LEFT JOIN "${id}".deliveries d ON d.message_id = m.message_id AND r.rcpt = ANY(d.rcpts)
          WHERE m.subject = $1`,
        [`chaos ${a.chaosId}`],
      );
      diagnostics.push(`${a.chaosId}: ${rows.rows.length ? rows.rows.map((r) => JSON.stringify(r)).join('\n    ') : 'no tracking rows'}`);
    }
    const parkedRows = await db.query<{ body: string }>(`SELECT convert_from(body, 'UTF8') AS body FROM "${id}".parked_events`).catch(() => ({ rows: [] as { body: string }[] }));
    const parked = new Set<string>();
    for (const r of parkedRows.rows) for (const m of r.body.matchAll(/chaos (p\d+-\d+)/g)) parked.add(m[1]!);
    await db.end();

    // Every duplicate, with the trace headers of each copy.
    for (const c of customers) {
      for (const [chaosId, list] of c.transactionsOf) {
        const counts = new Map<string, number>();
        for (const t of list) for (const r of t.rcpts) counts.set(r, (counts.get(r) ?? 0) + 1);
        if ([...counts.values()].some((n) => n > 1) && duplicates.length < 10) duplicates.push(`${chaosId}: ${list.map((t) => `${t.at} [${t.rcpts.join(',')}] ${t.trace}`).join('\n      ')}`);
      }
    }
    for (const phase of phases) {
      const report = reconcile(phaseAttempts.get(phase.name) ?? [], { received, tracked, pendingDeliveries: pending, parked });
      rows.push({ fault: phase.name, report });
      if (report.lost > 0) failures.push(`${phase.name}: ${report.lost} recipients lost, e.g. ${report.lostExamples.join('; ')}`);
      if (phase.no5xx && report.permRefused > 0) failures.push(`${phase.name}: ${report.permRefused} clients got a 5xx`);
      if (report.accepted === 0) failures.push(`${phase.name}: no message was accepted during the phase`);
    }
  } catch (err) {
    failures.push(`the suite could not run: ${(err as Error).stack ?? err}`);
  } finally {
    await stack.destroy();
    for (const c of customers) await c.stop().catch(() => {});
  }

  console.log(formatTable(rows));
  const refusals = [...replies].filter(([, m]) => m.size > 0);
  if (refusals.length > 0) {
    console.log('\nreplies other than 250, per fault:');
    for (const [fault, m] of refusals) console.log(`  ${fault}: ${[...m].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([r, n]) => `${n}× ${r}`).join(' | ')}`);
  }
  if (duplicates.length > 0) console.log(`\nduplicates at the customer's servers (up to 10):\n  ${duplicates.join('\n  ')}`);
  // Exits the suite did not cause: a service that crashed on its own during a fault.
  const expectedExits = rows.reduce((n, r) => n + (r.fault.startsWith('kill -9') ? 1 : r.fault.startsWith('rolling') ? services.length : 0), 0);
  const exits = exitLines.length;
  console.log(`\nservice exits: ${exits} (${expectedExits} caused by the suite)${exits > expectedExits ? `\n  ${exitLines.join('\n  ')}` : ''}`);
  console.log(`the stack's log (warnings and errors): ${logFile}`);
  if (diagnostics.length > 0) console.log(`\nnot delivered at the end (up to 5):\n  ${diagnostics.join('\n  ')}`);
  console.log('\n(rcpts onwards count recipients of accepted messages; bounced = a final fate other than delivered; unacked = delivered although the client got no 250)');
  const lost = rows.reduce((n, r) => n + r.report.lost, 0);
  const dup = rows.reduce((n, r) => n + r.report.duplicated, 0);
  if (failures.length > 0) {
    exitCode = 1;
    console.log(`\nFAILED:\n${failures.map((f) => `- ${f}`).join('\n')}`);
  }
  console.log(`chaos: ${rows.length} faults, ${rows.reduce((n, r) => n + r.report.accepted, 0)} accepted, ${lost} lost, ${dup} duplicated${failures.length ? ', FAILED' : ''}`);
  process.exit(exitCode);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
