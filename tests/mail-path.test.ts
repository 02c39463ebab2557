import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, servicesUrls, TcpProxy, testPool, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: real SMTP in, real RabbitMQ/Postgres/Redis, real SMTP out to a server playing the
// customer's, and the partner API for setup and tracking.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let pool: ReturnType<typeof testPool>;
const customerA = new CustomerServer();
const customerB = new CustomerServer();
let amqpProxy: TcpProxy;
let pgProxy: TcpProxy;
// A second ingress whose broker and database connections go through proxies the test controls.
let fragileStack: Stack;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const uniq = () => randomBytes(4).toString('hex');

/** Splits what the customer received into Moat's prepended trace/verdict headers and the rest. */
function splitPrepended(data: Buffer): { prepended: string[]; rest: Buffer } {
  const prepended: string[] = [];
  let offset = 0;
  const moatHeader = /^(Received|Authentication-Results|ARC-[A-Za-z-]+|Received-SPF|X-Moat-[A-Za-z-]+):/i;
  for (;;) {
    const end = data.indexOf('\r\n', offset);
    if (end < 0) break;
    const line = data.subarray(offset, end).toString('latin1');
    const isContinuation = /^[ \t]/.test(line) && prepended.length > 0;
    if (!moatHeader.test(line) && !isContinuation) break;
    if (isContinuation) prepended[prepended.length - 1] += `\r\n${line}`;
    else prepended.push(line);
    offset = end + 2;
  }
  return { prepended, rest: data.subarray(offset) };
}

beforeAll(async () => {
  await customerA.start();
  await customerB.start();
  t = await createTestEnv({
    MOAT_RETRY_BASE_MS: '300',
    MOAT_RETRY_MAX_MS: '1000',
    MOAT_DESTINATION_BACKOFF_BASE_MS: '300',
    MOAT_DESTINATION_BACKOFF_MAX_MS: '1000',
    MOAT_DESTINATION_PROBE_LEASE_MS: '3000',
    MOAT_RETRY_SWEEP_MS: '500',
    MOAT_RETRY_SWEEP_GRACE_MS: '300',
    MOAT_SCHEDULER_INTERVAL_MS: '100',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_MAX_MESSAGE_BYTES: String(1024 * 1024),
  });
  pool = testPool(t);
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);

  amqpProxy = new TcpProxy('127.0.0.1', 5672);
  pgProxy = new TcpProxy('127.0.0.1', 5432);
  await amqpProxy.start();
  await pgProxy.start();
}, 120_000);

afterAll(async () => {
  await fragileStack?.stop();
  await stack?.stop();
  await amqpProxy?.stop();
  await pgProxy?.stop();
  await pool?.end();
  await customerA.stop().catch(() => {});
  await customerB.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('the mail path', () => {
  it('when a message has 3 recipients of one domain, then the customer receives exactly one transaction with the 3 RCPTs and the body intact', async () => {
    const domain = `a${uniq()}.example`;
    await api.provision('Acme', [{ name: domain, routes: [{ host: '127.0.0.1', port: customerA.port, priority: 10 }] }]);
    const rcpts = ['alice', 'bob', 'carol'].map((u) => `${u}@${domain}`);
    const raw = makeMessage({ from: 'sender@outside.test', to: rcpts, subject: `three ${uniq()}` });
    const before = customerA.transactions.length;
    const res = await sendSmtp({ port: stack.smtpPort, from: 'sender@outside.test', to: rcpts, raw });
    expect(res.code).toBe(250);
    const txs = await eventually(() => {
      const got = customerA.transactions.slice(before).filter((tx) => tx.rcptTo.some((r) => r.endsWith(domain)));
      return got.length >= 1 ? got : null;
    });
    // Give a duplicate the chance to show up before asserting there is none.
    await new Promise((r) => setTimeout(r, 500));
    const all = customerA.transactions.slice(before).filter((tx) => tx.rcptTo.some((r) => r.endsWith(domain)));
    expect(all).toHaveLength(1);
    expect([...txs[0]!.rcptTo].sort()).toEqual([...rcpts].sort());
    expect(txs[0]!.mailFrom).toBe('sender@outside.test');

    // Body integrity: what arrived, minus Moat's prepended header lines, is byte for byte what was sent.
    const { prepended, rest } = splitPrepended(txs[0]!.data);
    expect(sha256(rest)).toBe(sha256(raw));
    expect(prepended.some((h) => h.startsWith('Received: from client.test'))).toBe(true);
    expect(prepended.some((h) => h.startsWith('Authentication-Results:'))).toBe(true);
  });

  it('when recipients are on two domains with different servers, then each server gets its own transaction', async () => {
    const d1 = `b${uniq()}.example`;
    const d2 = `c${uniq()}.example`;
    await api.provision('TwoSites', [
      { name: d1, routes: [{ host: '127.0.0.1', port: customerA.port, priority: 10 }] },
      { name: d2, routes: [{ host: '127.0.0.1', port: customerB.port, priority: 10 }] },
    ]);
    const rcpts = [`x@${d1}`, `y@${d1}`, `z@${d2}`];
    const res = await sendSmtp({ port: stack.smtpPort, from: 'sender@outside.test', to: rcpts, raw: makeMessage({ from: 'sender@outside.test', to: rcpts }) });
    expect(res.code).toBe(250);
    const a = await eventually(() => customerA.transactions.find((tx) => tx.rcptTo.includes(`x@${d1}`)));
    const b = await eventually(() => customerB.transactions.find((tx) => tx.rcptTo.includes(`z@${d2}`)));
    expect([...a.rcptTo].sort()).toEqual([`x@${d1}`, `y@${d1}`]);
    expect(b.rcptTo).toEqual([`z@${d2}`]);
  });

  it('when a recipient domain is not protected, then RCPT is refused with 550 5.7.1', async () => {
    const res = await sendSmtp({ port: stack.smtpPort, from: 'sender@outside.test', to: ['victim@not-protected.example'], raw: makeMessage({ from: 'sender@outside.test', to: ['victim@not-protected.example'] }) });
    expect(res.ok).toBe(false);
    expect(res.code).toBe(550);
    expect(res.response).toMatch(/5\.7\.1/);
  });

  it('when a message exceeds the size limit, then it is refused with 552 5.3.4 and nothing is delivered', async () => {
    const domain = `d${uniq()}.example`;
    await api.provision('Big', [{ name: domain, routes: [{ host: '127.0.0.1', port: customerA.port, priority: 10 }] }]);
    const big = Buffer.concat([makeMessage({ from: 's@outside.test', to: [`u@${domain}`] }), Buffer.from(`${'x'.repeat(998)}\r\n`.repeat(1100))]);
    const res = await sendSmtp({ port: stack.smtpPort, from: 's@outside.test', to: [`u@${domain}`], raw: big });
    expect(res.code).toBe(552);
    expect(res.response).toMatch(/5\.3\.4/);
    await new Promise((r) => setTimeout(r, 500));
    expect(customerA.transactions.some((tx) => tx.rcptTo.includes(`u@${domain}`))).toBe(false);
  });

  it('when the customer server is down, then mail waits and is delivered once it is back', async () => {
    const down = new CustomerServer();
    await down.start();
    const domain = `e${uniq()}.example`;
    await api.provision('Flaky', [{ name: domain, routes: [{ host: '127.0.0.1', port: down.port, priority: 10 }] }]);
    await down.stop();
    const res = await sendSmtp({ port: stack.smtpPort, from: 's@outside.test', to: [`u@${domain}`], raw: makeMessage({ from: 's@outside.test', to: [`u@${domain}`] }) });
    expect(res.code).toBe(250);
    const messageId = res.response.match(/queued as ([0-9a-f-]{36})/)![1]!;
    // It is visibly queued (deferred) while the server is down.
    await eventually(async () => {
      const m = await api.request('GET', `/api/v1/messages/${messageId}`);
      return m.body?.recipients?.[0]?.status === 'deferred';
    });
    await down.restart();
    const tx = await eventually(() => down.transactions.find((x) => x.rcptTo.includes(`u@${domain}`)), 20_000);
    expect(tx.rcptTo).toEqual([`u@${domain}`]);
    await eventually(async () => (await api.request('GET', `/api/v1/messages/${messageId}`)).body?.recipients?.[0]?.status === 'delivered');
    await down.stop();
  });

  it('when a recipient gets 5xx, then it is bounced and tracking shows the exact remote reply', async () => {
    const picky = new CustomerServer({ rcptReply: (r) => (r.startsWith('nobody@') ? [550, '5.1.1 <nobody> User unknown in virtual mailbox table'] : null) });
    await picky.start();
    const domain = `f${uniq()}.example`;
    const { tenantId } = await api.provision('Picky', [{ name: domain, routes: [{ host: '127.0.0.1', port: picky.port, priority: 10 }] }]);
    const rcpts = [`somebody@${domain}`, `nobody@${domain}`];
    const res = await sendSmtp({ port: stack.smtpPort, from: 's@outside.test', to: rcpts, raw: makeMessage({ from: 's@outside.test', to: rcpts }) });
    expect(res.code).toBe(250);
    const messageId = res.response.match(/queued as ([0-9a-f-]{36})/)![1]!;
    const msg = await eventually(async () => {
      const m = await api.request('GET', `/api/v1/messages/${messageId}`);
      const statuses = (m.body?.recipients ?? []).map((r: { status: string }) => r.status).sort();
      // failed, then bounced once the DSN to the sender is made (tests/bounces.test.ts follows it).
      return statuses.join() === 'bounced,delivered' ? m.body : null;
    });
    const failed = msg.recipients.find((r: { rcpt: string }) => r.rcpt === `nobody@${domain}`);
    expect(JSON.stringify(failed.lastReply)).toContain('User unknown in virtual mailbox table');
    const types = msg.timeline.map((e: { type: string }) => e.type);
    expect(types).toEqual(expect.arrayContaining(['accepted', 'filtered', 'delivery_requested', 'delivery_attempt', 'bounced']));
    const routed = msg.timeline.find((e: { type: string }) => e.type === 'delivery_requested');
    expect(routed.detail.pool).toBe('default');
    expect(routed.detail.destination).toContain(`127.0.0.1:${picky.port}`);
    const filtered = msg.timeline.find((e: { type: string }) => e.type === 'filtered');
    expect(filtered.detail.verdict).toBe('deliver');
    expect(filtered.detail.authResults).toMatch(/spf=/);
    const accepted = msg.timeline.find((e: { type: string }) => e.type === 'accepted');
    expect(accepted.detail.clientIp).toBe('127.0.0.1');
    expect(accepted.detail.helo).toBe('client.test');
    expect(accepted.detail.sha256).toMatch(/^[0-9a-f]{64}$/);
    const attempt = msg.timeline.find((e: { type: string }) => e.type === 'delivery_attempt');
    expect(attempt.detail.remoteHost).toContain(String(picky.port));
    expect(attempt.detail.sourceIp).toBe('127.0.0.1');
    // The list endpoint filters by tenant and recipient.
    const list = await api.request('GET', `/api/v1/messages?tenant=${tenantId}&rcpt=${encodeURIComponent(`nobody@${domain}`)}`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((i: { id: string }) => i.id)).toEqual([messageId]);
    await picky.stop();
  });

  it('when an event cannot be parsed, then it is parked and visible through the API, and the path keeps working', async () => {
    const conn = await amqp.connect(servicesUrls.amqp);
    const ch = await conn.createConfirmChannel();
    const poison = `{"v":1,"type":"message.accepted","poison":"${uniq()}"}`;
    ch.publish(`${t.id}.events`, 'message.accepted', Buffer.from(poison), { persistent: true });
    await ch.waitForConfirms();
    await conn.close();
    // It was routed to both consumers of message.accepted (filter and tracker): both park it.
    const parked = await eventually(async () => {
      const res = await api.request('GET', '/api/v1/parked?queue=filter');
      for (const item of res.body?.items ?? []) {
        const detail = await api.request('GET', `/api/v1/parked/${item.id}`);
        if (String(detail.body?.body).includes('poison')) return detail.body;
      }
      return null;
    });
    expect(parked.routingKey).toBe('message.accepted');
    expect(parked.sourceQueue).toBe('filter');
    expect(parked.body).toBe(poison);
    // And the queue is not blocked: a normal message still goes through.
    const domain = `g${uniq()}.example`;
    await api.provision('AfterPoison', [{ name: domain, routes: [{ host: '127.0.0.1', port: customerA.port, priority: 10 }] }]);
    const res = await sendSmtp({ port: stack.smtpPort, from: 's@outside.test', to: [`u@${domain}`], raw: makeMessage({ from: 's@outside.test', to: [`u@${domain}`] }) });
    expect(res.code).toBe(250);
    await eventually(() => customerA.transactions.find((x) => x.rcptTo.includes(`u@${domain}`)));
  });
});

describe('the durability promise at DATA time', () => {
  let fragile: Stack;
  beforeAll(async () => {
    const dbUrl = new URL(t.env.MOAT_DATABASE_URL!);
    dbUrl.port = String(pgProxy.port);
    // Only ingress goes through the proxies: the rest of the stack keeps running normally.
    // Its domain cache lets RCPT succeed while Postgres is cut, so the failure happens at DATA.
    fragile = await startStackIngressOnly({ ...t.env, MOAT_DOMAIN_CACHE_MS: '600000', MOAT_AMQP_URL: `amqp://guest:guest@127.0.0.1:${amqpProxy.port}`, MOAT_DATABASE_URL: dbUrl.toString() });
    fragileStack = fragile;
  });

  async function startStackIngressOnly(env: Record<string, string>): Promise<Stack> {
    const { loadConfig } = await import('@moat/runtime');
    const ingress = await import('@moat/ingress');
    const { silentLog } = await import('@moat/testkit');
    const svc = (await ingress.start(loadConfig(ingress.configSchema, { ...env, MOAT_SMTP_PORT: '0', MOAT_SUBMISSION_PORT: '-1', MOAT_SUBMISSIONS_PORT: '-1', MOAT_SMTP_HOST: '127.0.0.1' }), silentLog)) as unknown as { smtpPort: number; stop(): Promise<void> };
    return { smtpPort: svc.smtpPort, submissionPort: -1, submissionsPort: -1, httpPort: 0, stop: () => svc.stop(), stopService: async () => {}, startService: async () => {} };
  }

  for (const dependency of ['RabbitMQ', 'Postgres'] as const) {
    it(`when ${dependency} is unreachable at DATA time, then the client gets 451 4.3.0, nothing half-done is left, and a resend once it is back is delivered`, async () => {
      const proxy = dependency === 'RabbitMQ' ? amqpProxy : pgProxy;
      const domain = `h${uniq()}.example`;
      await api.provision(`Outage${dependency}`, [{ name: domain, routes: [{ host: '127.0.0.1', port: customerA.port, priority: 10 }] }]);
      const rcpt = `u@${domain}`;
      const raw = makeMessage({ from: 's@outside.test', to: [rcpt], subject: `outage ${dependency}` });
      // Warm the domain lookup while everything is reachable, then cut the dependency.
      const warm = await sendSmtp({ port: fragile.smtpPort, from: 's@outside.test', to: [`warm@${domain}`], raw: makeMessage({ from: 's@outside.test', to: [`warm@${domain}`] }) });
      expect(warm.code).toBe(250);
      const before = await pool.query('SELECT count(*)::int AS n FROM messages');
      proxy.cut();
      try {
        const res = await sendSmtp({ port: fragile.smtpPort, from: 's@outside.test', to: [rcpt], raw });
        expect(res.stage).toBe('DATA');
        expect(res.code).toBe(451);
        expect(res.response).toMatch(/4\.3\.0/);
      } finally {
        proxy.restore();
      }
      const after = await pool.query('SELECT count(*)::int AS n FROM messages');
      expect(after.rows[0].n).toBe(before.rows[0].n);
      // Once it is back (the ingress reconnects by itself), a resend is accepted and delivered.
      const resend = await eventually(async () => {
        const r = await sendSmtp({ port: fragile.smtpPort, from: 's@outside.test', to: [rcpt], raw });
        return r.code === 250 ? r : null;
      }, 30_000, 500);
      expect(resend.code).toBe(250);
      const tx = await eventually(() => customerA.transactions.find((x) => x.rcptTo.includes(rcpt)));
      expect(sha256(splitPrepended(tx.data).rest)).toBe(sha256(raw));
      expect(customerA.transactions.filter((x) => x.rcptTo.includes(rcpt))).toHaveLength(1);
    });
  }
});
