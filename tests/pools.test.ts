import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queues } from '@moat/contracts';
import { loadConfig } from '@moat/runtime';
import * as router from '@moat/router';
import * as sender from '@moat/sender';
import { CustomerServer, createTestEnv, deleteBrokerNamespace, eventually, makeMessage, sendSmtp, silentLog, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: sending pools. Two pools emulated on loopback ranges (a: 127.0.1.0/24, b:
// 127.0.2.0/24), each with a real sender bound to an address in it; customer servers that accept
// only some ranges, as a customer who locked port 25 to Moat's ranges does.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
const senders = new Map<string, sender.RunningSender>();
const uniq = () => randomBytes(4).toString('hex');
const inA = (ip: string) => ip.replace(/^::ffff:/, '').startsWith('127.0.1.');
const ranking = (port: number) => router.rankPools(`127.0.0.1:${port}/10`, [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }]);

async function startSender(pool: 'a' | 'b'): Promise<void> {
  const ip = pool === 'a' ? '127.0.1.1' : '127.0.2.1';
  const env = { ...t.env, MOAT_POOL: pool, MOAT_SOURCE_IP: ip, MOAT_EHLO_NAME: `out-${pool}.moat.test`, MOAT_POOL_HEARTBEAT_TTL_MS: '1500' };
  senders.set(pool, await sender.start(loadConfig(sender.configSchema, env), silentLog));
}

/** A customer server on a port whose destination prefers `pool` (rendezvous), optionally locked to range a. */
async function customerPreferring(pool: 'a' | 'b', lockedToA: boolean): Promise<CustomerServer> {
  for (let i = 0; i < 40; i++) {
    const c = new CustomerServer(lockedToA ? { allowClient: inA } : {});
    const port = await c.start();
    if (ranking(port)[0] === pool) return c;
    await c.stop();
  }
  throw new Error(`no port found whose destination prefers pool ${pool}`);
}

async function send(domain: string): Promise<string> {
  const rcpt = `user${uniq()}@${domain}`;
  const from = `sender${uniq()}@outside.example`;
  const res = await sendSmtp({ port: stack.smtpPort, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt], subject: `pools ${uniq()}` }) });
  expect(res.code).toBe(250);
  return rcpt;
}

const customers: CustomerServer[] = [];

beforeAll(async () => {
  t = await createTestEnv({ MOAT_RETRY_BASE_MS: '300', MOAT_RETRY_MAX_MS: '800', MOAT_DESTINATION_BACKOFF_BASE_MS: '300', MOAT_DESTINATION_BACKOFF_MAX_MS: '800', MOAT_DESTINATION_PROBE_LEASE_MS: '3000', MOAT_RETRY_SWEEP_MS: '500', MOAT_RETRY_SWEEP_GRACE_MS: '300', MOAT_SCHEDULER_INTERVAL_MS: '100', MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  expect((await api.request('POST', '/api/v1/pools', { name: 'a', cidrs: ['127.0.1.0/24'] })).status).toBe(201);
  expect((await api.request('POST', '/api/v1/pools', { name: 'b', cidrs: ['127.0.2.0/24'] })).status).toBe(201);
  await startSender('a');
  await startSender('b');
}, 120_000);

afterAll(async () => {
  for (const s of senders.values()) await s.stop().catch(() => {});
  await stack?.stop();
  for (const c of customers) await c.stop().catch(() => {});
  if (t) {
    await deleteBrokerNamespace(t.env.MOAT_AMQP_URL!, t.id, ['a', 'b'].flatMap((p) => [queues.sender(p).name, queues.subnetCheck(p).name]));
    await t.cleanup();
  }
}, 60_000);

describe('sending pools', () => {
  it('when several messages go to one destination, then all of them leave from the one pool its rendezvous hash picks (sticky)', async () => {
    const customer = await customerPreferring('b', false);
    customers.push(customer);
    const domain = `sticky${uniq()}.example`;
    await api.provision('Sticky', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    const rcpts: string[] = [];
    for (let i = 0; i < 6; i++) rcpts.push(await send(domain));
    await eventually(() => customer.transactions.length >= 6, 15_000);
    expect(new Set(customer.transactions.map((tx) => tx.remoteAddress.replace(/^::ffff:/, '')))).toEqual(new Set(['127.0.2.1']));
    expect(customer.transactions.map((tx) => tx.helo)).toContain('out-b.moat.test');
  });

  it('when a locked-down server refuses the preferred pool, then the mail is retried through the other pool and delivered once', async () => {
    const customer = await customerPreferring('b', true);
    customers.push(customer);
    const domain = `locked${uniq()}.example`;
    await api.provision('Locked', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    const rcpt = await send(domain);
    await eventually(() => customer.transactions.some((tx) => tx.rcptTo.includes(rcpt)), 20_000);
    const copies = customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
    expect(copies).toHaveLength(1);
    expect(inA(copies[0]!.remoteAddress)).toBe(true);
    // The pair (b, this destination) is avoided for a while: the next message goes through a directly.
    const next = await send(domain);
    await eventually(() => customer.transactions.some((tx) => tx.rcptTo.includes(next)), 10_000);
    const page = await api.request('GET', `/api/v1/messages?rcpt=${encodeURIComponent(next)}`);
    const detail = await api.request('GET', `/api/v1/messages/${page.body.items[0].id}`);
    expect(detail.body.timeline.filter((e: any) => e.type === 'delivery_attempt')).toHaveLength(1);
  });

  it('when every sender of a pool is gone, then its destinations fail over to the other pool', async () => {
    const customer = await customerPreferring('a', false);
    customers.push(customer);
    const domain = `failover${uniq()}.example`;
    await api.provision('Failover', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    const first = await send(domain);
    await eventually(() => customer.transactions.some((tx) => tx.rcptTo.includes(first)), 10_000);
    expect(inA(customer.transactions.find((tx) => tx.rcptTo.includes(first))!.remoteAddress)).toBe(true);

    await senders.get('a')!.stop();
    senders.delete('a');
    // The router's view of pool membership is cached for a second.
    await new Promise((r) => setTimeout(r, 1_200));
    const second = await send(domain);
    await eventually(() => customer.transactions.some((tx) => tx.rcptTo.includes(second)), 15_000);
    expect(customer.transactions.find((tx) => tx.rcptTo.includes(second))!.remoteAddress.replace(/^::ffff:/, '')).toBe('127.0.2.1');
  });
});
