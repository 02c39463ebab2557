import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, StaticDnsZone, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: queue control through the API — what waits for delivery, and an operator's
// levers on it (hold, release, retry, pause a destination, purge with and without a DSN,
// extend), each audited. The customer's server refuses with 421 while `down` is set, so mail
// waits in the queue exactly as when the real one is away.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let down = true;
const customer = new CustomerServer({ rcptReply: () => (down ? [421, '4.3.2 maintenance, try again later'] : null) });
const senderMx = new CustomerServer();
const dns = new StaticDnsZone({
  'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
  'mx.sender.example': { A: ['127.0.0.1'] },
});
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;
let tenantId: string;

const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const received = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));

/** Sends one message and waits until its delivery is in the queue; returns the queued item. */
async function queued(rcpt: string, status = 'deferred'): Promise<any> {
  const from = `alice${uniq()}@sender.example`;
  const res = await sendSmtp({ port: stack.smtpPort, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt], subject: `queue ${uniq()}` }) });
  expect(res.code).toBe(250);
  const messageId = messageIdOf(res.response);
  return eventually(async () => {
    const page = await api.request('GET', `/api/v1/queue?tenant=${tenantId}&limit=1000`);
    expect(page.status).toBe(200);
    const item = page.body.items.find((i: any) => i.messageId === messageId);
    expect(item?.status).toBe(status);
    return item;
  }, 15_000);
}

/**
 * An action on a deferred delivery. A retry attempt may be under way at that moment (the row is
 * `sending`, answered 409 "act once the attempt has finished", as documented): try again then.
 */
async function actOnWaiting(id: string, action: 'hold' | 'purge', body?: unknown): Promise<{ status: number; body: any }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const res = await api.request('POST', `/api/v1/queue/${id}/${action}`, body);
    if (res.status !== 409 || !String(res.body?.detail ?? '').includes('being sent') || Date.now() > deadline) return res;
    await sleep(200);
  }
}

async function audit(action: string, target: string): Promise<number> {
  const db = new pg.Client({ connectionString: t.env.MOAT_DATABASE_URL });
  await db.connect();
  try {
    const res = await db.query(`SELECT count(*)::int AS n FROM "${t.env.MOAT_DB_SCHEMA}".audit_log WHERE action = $1 AND target = $2`, [action, target]);
    return res.rows[0].n;
  } finally {
    await db.end();
  }
}

beforeAll(async () => {
  await customer.start();
  await senderMx.start();
  t = await createTestEnv({
    MOAT_DNS_STATIC_FILE: dns.path,
    MOAT_MX_PORT: String(senderMx.port),
    MOAT_DSN_DELAY_WARNING_MS: '0',
    // A retry every few seconds at most: long enough to see a held delivery not being tried.
    MOAT_RETRY_BASE_MS: '1500',
    MOAT_RETRY_MAX_MS: '3000',
    MOAT_DESTINATION_BACKOFF_BASE_MS: '1500',
    MOAT_DESTINATION_BACKOFF_MAX_MS: '3000',
    MOAT_DESTINATION_PROBE_LEASE_MS: '5000',
    MOAT_RETRY_SWEEP_MS: '1000',
    MOAT_RETRY_SWEEP_GRACE_MS: '1000',
    MOAT_SCHEDULER_INTERVAL_MS: '100',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  domain = `q${uniq()}.example`;
  ({ tenantId } = await api.provision('Queue', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await customer.stop().catch(() => {});
  await senderMx.stop().catch(() => {});
  await t?.cleanup();
  dns.remove();
}, 60_000);

describe('queue control', () => {
  it('when the customer server defers, then GET /queue shows the delivery with its reply, and a held one is not tried until released', async () => {
    down = true;
    const rcpt = `held${uniq()}@${domain}`;
    const item = await queued(rcpt);
    expect(item).toMatchObject({ tenantId, rcpts: [rcpt], status: 'deferred', heldBy: null });
    expect(item.lastError).toContain('4.3.2 maintenance');
    expect(item.destination).toBe(`127.0.0.1:${customer.port}/10`);

    const held = await actOnWaiting(item.id, 'hold');
    expect(held.status).toBe(200);
    expect(held.body).toMatchObject({ status: 'held', heldBy: 'operator' });
    // Retry now applies to deferred deliveries only.
    expect((await api.request('POST', `/api/v1/queue/${item.id}/retry`)).status).toBe(409);

    down = false;
    await sleep(4_000);
    expect(received(rcpt)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/queue/${item.id}`)).body.status).toBe('held');

    const released = await api.request('POST', `/api/v1/queue/${item.id}/release`);
    expect(released.status).toBe(200);
    await eventually(() => expect(received(rcpt)).toHaveLength(1), 10_000);
    // Done: no longer in the queue.
    await eventually(async () => expect((await api.request('GET', `/api/v1/queue/${item.id}`)).status).toBe(404), 5_000);
    expect(await audit('queue.hold', item.id)).toBe(1);
    expect(await audit('queue.release', item.id)).toBe(1);
  });

  it('when a destination is paused, then new mail to it waits held and goes once the pause is released', async () => {
    down = false;
    const pause = await api.request('POST', '/api/v1/queue/destination-holds', { destination: `127.0.0.1:${customer.port}/10`, tenantId, reason: 'Exchange patching' });
    expect(pause.status).toBe(201);
    const rcpt = `paused${uniq()}@${domain}`;
    const item = await queued(rcpt, 'held');
    expect(item.heldBy).toBe('destination');
    // A delivery held by its destination's pause is released with the pause, not alone.
    expect((await api.request('POST', `/api/v1/queue/${item.id}/release`)).status).toBe(409);
    await sleep(1_500);
    expect(received(rcpt)).toHaveLength(0);
    const list = await api.request('GET', `/api/v1/queue/destination-holds?tenant=${tenantId}`);
    expect(list.body.items.map((h: any) => h.id)).toContain(pause.body.id);

    const released = await api.request('POST', `/api/v1/queue/destination-holds/${pause.body.id}/release`);
    expect(released.status).toBe(200);
    expect(released.body.released).toBe(1);
    await eventually(() => expect(received(rcpt)).toHaveLength(1), 10_000);
    expect(await audit('queue.destination.hold', `127.0.0.1:${customer.port}/10`)).toBeGreaterThanOrEqual(1);
  });

  it('when a deferred delivery is retried now, then it is attempted at once instead of at its scheduled time', async () => {
    down = true;
    const rcpt = `retry${uniq()}@${domain}`;
    const item = await queued(rcpt);
    down = false;
    const retried = await api.request('POST', `/api/v1/queue/${item.id}/retry`);
    expect(retried.status).toBe(200);
    expect(Date.parse(retried.body.nextAttemptAt)).toBeLessThanOrEqual(Date.now() + 100);
    await eventually(() => expect(received(rcpt)).toHaveLength(1), 5_000);
  });

  it('when a delivery is purged without a bounce, then it is never sent and tracking shows it failed', async () => {
    down = true;
    const rcpt = `purge${uniq()}@${domain}`;
    const item = await queued(rcpt);
    const purged = await actOnWaiting(item.id, 'purge', { bounce: false });
    expect(purged.status).toBe(200);
    expect(purged.body).toMatchObject({ status: 'done', rcpts: [rcpt] });
    down = false;
    await eventually(async () => {
      const m = await api.request('GET', `/api/v1/messages/${item.messageId}`);
      expect(m.body.recipients).toEqual([expect.objectContaining({ rcpt, status: 'failed' })]);
      return true;
    }, 10_000);
    await sleep(3_500);
    expect(received(rcpt)).toHaveLength(0);
    expect(senderMx.transactions.filter((tx) => tx.data.toString().includes(item.messageId))).toHaveLength(0);
    // Purging twice: it is not queued any more.
    expect((await api.request('POST', `/api/v1/queue/${item.id}/purge`, { bounce: false })).status).toBe(404);
  });

  it('when a delivery is purged with a bounce, then the sender gets a DSN and the recipient shows bounced', async () => {
    down = true;
    const rcpt = `bounce${uniq()}@${domain}`;
    const item = await queued(rcpt);
    const purged = await actOnWaiting(item.id, 'purge', { bounce: true });
    expect(purged.status).toBe(200);
    await eventually(() => {
      const dsn = senderMx.transactions.find((tx) => tx.mailFrom === '' && tx.rcptTo.includes(item.mailFrom));
      expect(dsn).toBeDefined();
      expect(dsn!.data.toString()).toContain('purged from the queue');
      return true;
    }, 15_000);
    await eventually(async () => {
      const m = await api.request('GET', `/api/v1/messages/${item.messageId}`);
      expect(m.body.recipients).toEqual([expect.objectContaining({ rcpt, status: 'bounced' })]);
      return true;
    }, 10_000);
    down = false;
    await sleep(2_000);
    expect(received(rcpt)).toHaveLength(0);
  });

  it('when a lifetime is extended, then the new expiry is stored; bad input is a problem document', async () => {
    down = true;
    const item = await queued(`extend${uniq()}@${domain}`);
    const until = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const extended = await api.request('POST', `/api/v1/queue/${item.id}/extend`, { expiresAt: until });
    expect(extended.status).toBe(200);
    expect(extended.body.expiresAt).toBe(until);
    const past = await api.request('POST', `/api/v1/queue/${item.id}/extend`, { expiresAt: new Date(Date.now() - 1000).toISOString() });
    expect(past.status).toBe(400);
    expect(past.contentType).toContain('application/problem+json');
    expect(past.body.detail).toContain('expiresAt');
    await api.request('POST', `/api/v1/queue/${item.id}/purge`, { bounce: false });
    down = false;
  });

  it("when another tenant's key asks, then the delivery does not exist for it", async () => {
    down = true;
    const item = await queued(`private${uniq()}@${domain}`);
    const other = await api.provision('Other', [{ name: `o${uniq()}.example`, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    const key = await api.request('POST', `/api/v1/tenants/${other.tenantId}/api-keys`, { name: 'ops', scopes: ['queue:read', 'queue:write'] });
    expect(key.status).toBe(201);
    const otherApi = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, key.body.key);
    expect((await otherApi.request('GET', `/api/v1/queue/${item.id}`)).status).toBe(404);
    expect((await otherApi.request('POST', `/api/v1/queue/${item.id}/hold`)).status).toBe(404);
    const list = await otherApi.request('GET', '/api/v1/queue');
    expect(list.body.items.map((i: any) => i.id)).not.toContain(item.id);
    await api.request('POST', `/api/v1/queue/${item.id}/purge`, { bounce: false });
    down = false;
  });
});
