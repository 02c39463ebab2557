import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type Redis } from '@moat/runtime';
import { RetrySchedule } from '@moat/store';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, silentLog, StaticDnsZone, TcpProxy, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: the retry schedule and destination health in Redis. The customer's server sits
// behind a TCP proxy the test cuts (connections closed at once: the server is down) and
// restores. Per-delivery retries are aggressive here (every 0.3–0.6 s) so that without the
// destination back-off the outage would be hammered; the destination backs off 2–3 s at a time.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let redis: Redis;
let schedule: RetrySchedule;
const customer = new CustomerServer();
const senderMx = new CustomerServer();
const dns = new StaticDnsZone({
  'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
  'mx.sender.example': { A: ['127.0.0.1'] },
});
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const drainRate = 5;

async function downDomain(tenantName: string): Promise<{ proxy: TcpProxy; domain: string; tenantId: string; destination: string }> {
  const proxy = new TcpProxy('127.0.0.1', customer.port);
  await proxy.start();
  proxy.cut();
  const domain = `r${uniq()}.example`;
  const { tenantId } = await api.provision(tenantName, [{ name: domain, routes: [{ host: '127.0.0.1', port: proxy.port, priority: 10 }] }]);
  return { proxy, domain, tenantId, destination: `127.0.0.1:${proxy.port}/10` };
}

async function sendMany(domain: string, n: number): Promise<string[]> {
  const rcpts: string[] = [];
  for (let i = 0; i < n; i++) {
    const rcpt = `u${i}-${uniq()}@${domain}`;
    const from = `alice${uniq()}@sender.example`;
    const res = await sendSmtp({ port: stack.smtpPort, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt], subject: `backlog ${i}` }) });
    expect(res.code).toBe(250);
    rcpts.push(rcpt);
  }
  return rcpts;
}

async function queuedCount(tenantId: string, status: string): Promise<number> {
  const page = await api.request('GET', `/api/v1/queue?tenant=${tenantId}&state=${status}&limit=1000`);
  expect(page.status).toBe(200);
  return page.body.items.length;
}

const deliveredTo = (rcpts: string[]) => customer.transactions.filter((tx) => tx.rcptTo.some((r) => rcpts.includes(r)));

beforeAll(async () => {
  await customer.start();
  await senderMx.start();
  t = await createTestEnv({
    MOAT_DNS_STATIC_FILE: dns.path,
    MOAT_MX_PORT: String(senderMx.port),
    MOAT_DSN_DELAY_WARNING_MS: '0',
    MOAT_RETRY_BASE_MS: '300',
    MOAT_RETRY_MAX_MS: '600',
    MOAT_DESTINATION_BACKOFF_BASE_MS: '2000',
    MOAT_DESTINATION_BACKOFF_MAX_MS: '3000',
    MOAT_DESTINATION_PROBE_LEASE_MS: '3000',
    MOAT_DESTINATION_DRAIN_RATE: String(drainRate),
    MOAT_RETRY_SWEEP_MS: '500',
    MOAT_RETRY_SWEEP_GRACE_MS: '500',
    MOAT_SCHEDULER_INTERVAL_MS: '100',
    MOAT_SMTP_IDLE_MS: '0',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  redis = createRedis({ url: t.env.MOAT_REDIS_URL!, prefix: t.env.MOAT_REDIS_PREFIX!, log: silentLog });
  schedule = new RetrySchedule(redis);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (redis) {
    const keys = await redis.keys(`${t.env.MOAT_REDIS_PREFIX}*`);
    if (keys.length > 0) await redis.call('DEL', ...keys);
    redis.disconnect();
  }
  await customer.stop().catch(() => {});
  await senderMx.stop().catch(() => {});
  await t?.cleanup();
  dns.remove();
}, 60_000);

describe('retry schedule and destination health (Redis)', () => {
  it('when a destination is down, then its deliveries back off together (one probe at a time), their retry state is in Redis, and on recovery the backlog drains at the paced rate, each message once', async () => {
    const { proxy, domain, tenantId, destination } = await downDomain('Backoff');
    const rcpts = await sendMany(domain, 20);
    await eventually(async () => expect(await queuedCount(tenantId, 'deferred')).toBe(20), 20_000);
    const atBacklog = proxy.accepted;
    await sleep(6_000);
    // 20 deliveries retried every 0.3–0.6 s would have opened well over 200 connections in these
    // 6 s; backed off as one destination, the outage sees one probe per back-off (2–3 s).
    const duringOutage = proxy.accepted - atBacklog;
    expect(duringOutage).toBeLessThanOrEqual(4);
    // First attempts: only those routed before the first failure was known try at all.
    expect(atBacklog).toBeLessThan(20);

    const [health] = await schedule.health([destination]);
    expect(health!.failures).toBeGreaterThanOrEqual(1);
    expect(health!.backoffUntil).toBeGreaterThan(0);
    expect((await schedule.size()).entries).toBeGreaterThanOrEqual(19);
    // Retry state per delivery: attempts, times, the last reply per recipient.
    const items = (await api.request('GET', `/api/v1/queue?tenant=${tenantId}&limit=1000`)).body.items as { id: string; rcpts: string[] }[];
    const states = await schedule.states(items.map((i) => i.id));
    const attempted = states.filter((s) => s !== null);
    expect(attempted.length).toBeGreaterThanOrEqual(1);
    expect(attempted[0]).toMatchObject({ destination, attempts: expect.any(Number) });
    expect(Object.values(attempted[0]!.lastReplies)[0]).toMatch(/connection|closed|ECONN|before/i);
    // The same through the API: the queue item's retry state, and the destination's health.
    const listed = (await api.request('GET', `/api/v1/queue?tenant=${tenantId}&limit=1000`)).body.items as { retry: { attempts: number; lastReplies: Record<string, string> } | null }[];
    expect(listed.some((i) => i.retry !== null && i.retry.attempts >= 1 && Object.keys(i.retry.lastReplies).length === 1)).toBe(true);
    const dests = await api.request('GET', `/api/v1/queue/destinations?tenant=${tenantId}`);
    expect(dests.status).toBe(200);
    expect(dests.body.items).toEqual([expect.objectContaining({ destination, waiting: 20, failures: expect.any(Number), backoffUntil: expect.any(String) })]);
    expect(dests.body.items[0].failures).toBeGreaterThanOrEqual(1);

    proxy.restore();
    await eventually(() => expect(deliveredTo(rcpts)).toHaveLength(20), 45_000);
    await sleep(1_000);
    // Exactly once each.
    expect(deliveredTo(rcpts)).toHaveLength(20);
    for (const rcpt of rcpts) expect(customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt))).toHaveLength(1);
    // Paced: 19 deliveries after the probe at 5 per second take more than 3 s (unpaced: well under 1 s).
    const times = deliveredTo(rcpts)
      .map((tx) => tx.at)
      .sort((a, b) => a - b);
    expect(times[times.length - 1]! - times[1]!).toBeGreaterThanOrEqual(2_500);
    await eventually(async () => expect(await queuedCount(tenantId, 'deferred')).toBe(0), 10_000);
    expect((await schedule.health([destination]))[0]!.failures).toBe(0);
    await proxy.stop();
  }, 120_000);

  it('when Redis loses the schedule mid-backlog, then the router rebuilds it from Postgres and every message is delivered once', async () => {
    const { proxy, domain, tenantId, destination } = await downDomain('Flush');
    const rcpts = await sendMany(domain, 12);
    await eventually(async () => expect(await queuedCount(tenantId, 'deferred')).toBe(12), 20_000);
    await eventually(async () => expect((await schedule.size()).entries).toBeGreaterThanOrEqual(11), 10_000);
    // Everything this stack keeps in Redis goes, as in a FLUSHALL or a replaced Redis.
    const keys = await redis.keys(`${t.env.MOAT_REDIS_PREFIX}*`);
    expect(keys.length).toBeGreaterThan(0);
    await redis.call('DEL', ...keys);
    // The router notices at its next claim (within 100 ms here) and rebuilds from Postgres.
    await eventually(async () => expect(await schedule.isReady()).toBe(true), 10_000);
    await eventually(async () => expect((await schedule.size()).entries).toBeGreaterThanOrEqual(11), 10_000);

    proxy.restore();
    await eventually(() => expect(deliveredTo(rcpts)).toHaveLength(12), 45_000);
    await sleep(1_000);
    for (const rcpt of rcpts) expect(customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt))).toHaveLength(1);
    await eventually(async () => expect(await queuedCount(tenantId, 'deferred')).toBe(0), 10_000);
    expect(destination).toContain(String(proxy.port));
    await proxy.stop();
  }, 120_000);

  it('when a router dies between claiming due retries and publishing them, then the claims come back after their lease and every message is delivered once', async () => {
    const { proxy, domain, tenantId, destination } = await downDomain('ClaimCrash');
    const rcpts = await sendMany(domain, 8);
    await eventually(async () => expect(await queuedCount(tenantId, 'deferred')).toBe(8), 20_000);
    await stack.stopService('router');
    try {
      proxy.restore();
      await schedule.destinationUp(destination, Date.now());
      // Play the router that dies: claim everything due and never publish.
      const claimed = await schedule.claim({ now: Date.now() + 1_000, batch: 1_000, leaseMs: 3_000, drainPerSecond: 100_000, probeLeaseMs: 3_000 });
      expect(claimed.entries.length).toBeGreaterThanOrEqual(7);
      expect((await schedule.claim({ now: Date.now() + 1_000, batch: 1_000, leaseMs: 3_000, drainPerSecond: 100_000, probeLeaseMs: 3_000 })).entries).toEqual([]);
    } finally {
      await stack.startService('router');
    }
    await eventually(() => expect(deliveredTo(rcpts)).toHaveLength(8), 45_000);
    await sleep(1_000);
    for (const rcpt of rcpts) expect(customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt))).toHaveLength(1);
    await proxy.stop();
  }, 120_000);

  it("when a tenant sets a short queue lifetime, then its waiting mail expires with a DSN while another tenant's keeps waiting", async () => {
    const short = await downDomain('ShortLifetime');
    const long = await downDomain('DefaultLifetime');
    const bad = await api.request('PATCH', `/api/v1/tenants/${short.tenantId}/delivery-policy`, { retryBaseMs: 5_000, retryMaxMs: 1_000 });
    expect(bad.status).toBe(400);
    const set = await api.request('PATCH', `/api/v1/tenants/${short.tenantId}/delivery-policy`, { queueLifetimeMs: 3_000 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toEqual({ retryBaseMs: null, retryMaxMs: null, queueLifetimeMs: 3_000, delayWarningMs: null });
    expect((await api.request('GET', `/api/v1/tenants/${short.tenantId}/delivery-policy`)).body.queueLifetimeMs).toBe(3_000);

    const [shortRcpt] = await sendMany(short.domain, 1);
    const [longRcpt] = await sendMany(long.domain, 1);
    // The short-lived one expires (a DSN reaches the sender's MX); the other is still queued.
    const dsn = await eventually(() => senderMx.transactions.find((tx) => tx.data.toString('latin1').includes(shortRcpt!)), 30_000);
    expect(dsn.mailFrom).toBe('');
    expect(dsn.data.toString('latin1')).toMatch(/Action: failed/);
    const messages = await api.request('GET', `/api/v1/messages?tenant=${short.tenantId}&rcpt=${encodeURIComponent(shortRcpt!)}`);
    expect(JSON.stringify(messages.body)).toMatch(/expired|bounced|failed/);
    expect(await queuedCount(long.tenantId, 'deferred')).toBe(1);
    expect(senderMx.transactions.some((tx) => tx.data.toString('latin1').includes(longRcpt!))).toBe(false);
    await short.proxy.stop();
    await long.proxy.stop();
  }, 90_000);
});
