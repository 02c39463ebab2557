import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis, type Redis } from '@moat/runtime';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, silentLog, StaticDnsZone, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: the SMTP-time checks of ingress (README "SMTP-time checks") with real SMTP against
// the real stack (real RabbitMQ, Postgres, Redis): recipient verification against the tenant's
// mailboxes, per-client rate limits in Redis, a DNSBL from the static DNS zone, greylisting per
// tenant, and every refusal of a protected recipient visible in message tracking.
// Each scenario connects from its own loopback address (all of 127.0.0.0/8 is local), so their
// per-client counters never meet.

const listedIp = '127.0.0.81';
const dnsbl = new StaticDnsZone({
  // RFC 5782: the reversed client address under the zone answers 127.0.0.2 when listed.
  '81.0.0.127.bl.moat.test': { A: ['127.0.0.2'] },
  // A refusal answer (the query was refused, e.g. over a free limit): never a listing.
  '82.0.0.127.bl.moat.test': { A: ['127.255.255.254'] },
  // Listed, but in an exempt range (MOAT_INGRESS_EXEMPT_CIDRS).
  '91.0.0.127.bl.moat.test': { A: ['127.0.0.2'] },
});
const customer = new CustomerServer();
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rateWindowMs = 4_000;

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let redis: Redis;
let acme: { tenantId: string; domain: string };
let globex: { tenantId: string; domain: string };

async function send(from: string, to: string[], localAddress: string) {
  return sendSmtp({ port: stack.smtpPort, from, to, raw: makeMessage({ from, to, subject: `checks ${uniq()}` }), localAddress });
}

/** Tracking as a partner sees it: the tenant's messages with this recipient. */
async function tracked(tenantId: string, rcpt: string): Promise<Array<{ id: string; mailFrom: string; recipients: Array<{ rcpt: string; status: string; lastReply: { code: number; enhanced: string; text: string } | null }> }>> {
  const res = await api.request('GET', `/api/v1/messages?tenant=${tenantId}&rcpt=${encodeURIComponent(rcpt)}`);
  expect(res.status).toBe(200);
  return res.body.items;
}

beforeAll(async () => {
  await customer.start();
  t = await createTestEnv({
    MOAT_DNS_STATIC_FILE: dnsbl.path,
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_INGRESS_MAILBOX_CACHE_MS: '0',
    MOAT_INGRESS_DNSBL_ZONES: 'bl.moat.test',
    MOAT_INGRESS_RATE_WINDOW_MS: String(rateWindowMs),
    MOAT_INGRESS_RATE_CONNECTIONS: '4',
    MOAT_INGRESS_RATE_MESSAGES: '3',
    MOAT_INGRESS_RATE_RECIPIENTS: '8',
    MOAT_INGRESS_EXEMPT_CIDRS: '127.0.0.90/31',
    MOAT_INGRESS_REJECTION_FLUSH_MS: '200',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  redis = createRedis({ url: t.env.MOAT_REDIS_URL!, prefix: t.env.MOAT_REDIS_PREFIX!, log: silentLog });
  const routes = [{ host: '127.0.0.1', port: customer.port, priority: 10 }];
  const a = { domain: `acme${uniq()}.example` };
  const g = { domain: `globex${uniq()}.example` };
  acme = { ...a, tenantId: (await api.provision('Acme', [{ name: a.domain, routes }])).tenantId };
  globex = { ...g, tenantId: (await api.provision('Globex', [{ name: g.domain, routes }])).tenantId };
  // Acme turns recipient verification on by listing its mailboxes; Globex lists none.
  for (const address of [`alice@${acme.domain}`, `bob@${acme.domain}`]) {
    expect((await api.request('POST', `/api/v1/tenants/${acme.tenantId}/mailboxes`, { address, liveArchive: false })).status).toBe(201);
  }
}, 120_000);

afterAll(async () => {
  // Greylisting and rate-limit entries of this run's Redis prefix only (never anyone else's).
  if (redis) {
    // ioredis prefixes command keys but not KEYS patterns (nor its answers).
    const prefix = t.env.MOAT_REDIS_PREFIX!;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys.map((k) => k.slice(prefix.length)));
    redis.disconnect();
  }
  await stack?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
  dnsbl.remove();
}, 60_000);

describe('recipient verification', () => {
  it('when a tenant lists mailboxes, then an unknown one gets 550 5.1.1 and shows in tracking as rejected; a known one (any case, with a tag) is delivered', async () => {
    const from = `sender${uniq()}@outside.example`;
    const ghost = `ghost${uniq()}@${acme.domain}`;
    const refused = await send(from, [ghost], '127.0.0.71');
    expect(refused.code).toBe(550);
    expect(refused.stage).toBe('RCPT TO');
    expect(refused.response).toContain(`550 5.1.1 <${ghost}>: Recipient address rejected: User unknown`);
    const rows = await eventually(async () => {
      const items = await tracked(acme.tenantId, ghost);
      return items.length > 0 ? items : null;
    }, 15_000);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.mailFrom).toBe(from);
    expect(rows[0]!.recipients).toEqual([expect.objectContaining({ rcpt: ghost, status: 'rejected', lastReply: { code: 550, enhanced: '5.1.1', text: `<${ghost}>: Recipient address rejected: User unknown` } })]);
    const detail = await api.request('GET', `/api/v1/messages/${rows[0]!.id}`);
    expect(detail.body.timeline).toEqual([expect.objectContaining({ type: 'rejected', rcpts: [ghost], detail: expect.objectContaining({ detail: expect.objectContaining({ check: 'recipient-verification', clientIp: '127.0.0.71' }) }) })]);
    // Another tenant cannot see it.
    expect((await tracked(globex.tenantId, ghost)).length).toBe(0);

    const accepted = await send(from, [`ALICE+news@${acme.domain.toUpperCase()}`], '127.0.0.71');
    expect(accepted.code).toBe(250);
    await eventually(() => customer.transactions.find((tx) => tx.rcptTo.some((r) => r.toLowerCase() === `alice+news@${acme.domain}`)), 20_000);
  });

  it('when a tenant lists no mailbox, then any address in its domain is accepted', async () => {
    const res = await send(`s${uniq()}@outside.example`, [`anyone${uniq()}@${globex.domain}`], '127.0.0.72');
    expect(res.code).toBe(250);
  });
});

describe('per-client rate limits', () => {
  it('when a client sends more messages than the window allows, then it gets 451 4.7.1 at RCPT, tracked, and is served again after the window', async () => {
    const ip = '127.0.0.73';
    const rcpt = `alice@${acme.domain}`;
    // The window starts with the client's first message (fixed windows per client key).
    for (let i = 0; i < 3; i++) expect((await send(`s${i}@outside.example`, [rcpt], ip)).code).toBe(250);
    const over = await send('s4@outside.example', [rcpt], ip);
    expect(over.code).toBe(451);
    expect(over.response).toMatch(/^451 4\.7\.1 Too many messages from your IP address, try again in \d+ seconds/);
    await eventually(async () => (await tracked(acme.tenantId, rcpt)).find((m) => m.mailFrom === 's4@outside.example' && m.recipients[0]?.status === 'rejected'), 15_000);
    // Another client is not affected.
    expect((await send('s5@outside.example', [rcpt], '127.0.0.74')).code).toBe(250);
    await sleep(rateWindowMs + 200);
    expect((await send('s6@outside.example', [rcpt], ip)).code).toBe(250);
  });

  it('when a client opens more connections than the window allows, then the next gets 421 4.7.0 at connect, and after the window it connects again', async () => {
    const ip = '127.0.0.75';
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await sendSmtp({ port: stack.smtpPort, from: '', to: [`postmaster@${globex.domain}`], raw: makeMessage({ from: 'x@outside.example', to: ['p'] }), localAddress: ip }));
    const refused = results.filter((r) => r.code === 421);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]!.response).toMatch(/421 4\.7\.0 Too many connections from your IP address, try again in \d+ seconds/);
    await sleep(rateWindowMs + 200);
    expect((await send('later@outside.example', [`postmaster@${globex.domain}`], ip)).code).toBe(250);
  });

  it('when a client is in an exempt range, then no rate limit applies', async () => {
    for (let i = 0; i < 6; i++) expect((await send(`e${i}@outside.example`, [`bob@${acme.domain}`], '127.0.0.90')).code).toBe(250);
  });
});

describe('DNSBL', () => {
  it('when the client is listed, then RCPT gets 554 5.7.1 naming it and the zone (tracked), but postmaster is accepted', async () => {
    const refused = await send('x@listed.example', [`bob@${acme.domain}`], listedIp);
    expect(refused.code).toBe(554);
    expect(refused.response).toContain(`554 5.7.1 Service unavailable; client host [${listedIp}] blocked using bl.moat.test`);
    const rows = await eventually(async () => (await tracked(acme.tenantId, `bob@${acme.domain}`)).find((m) => m.mailFrom === 'x@listed.example'), 15_000);
    expect(rows.recipients[0]).toMatchObject({ status: 'rejected', lastReply: { code: 554, enhanced: '5.7.1' } });
    expect((await send('x@listed.example', [`postmaster@${acme.domain}`], listedIp)).code).toBe(250);
  });

  it('when the client is not listed (or the zone refused the query), then mail passes', async () => {
    expect((await send('y@clean.example', [`bob@${acme.domain}`], '127.0.0.82')).code).toBe(250);
    expect((await send('y@clean.example', [`bob@${acme.domain}`], '127.0.0.83')).code).toBe(250);
  });

  it('when a listed client is in an exempt range, then it is not looked up', async () => {
    expect((await send('z@exempt.example', [`bob@${acme.domain}`], '127.0.0.91')).code).toBe(250);
  });
});

describe('greylisting', () => {
  it('when a tenant turns greylisting on, then a first attempt gets 451 4.7.1, an early retry too, and a retry after the delay passes; a tenant without it is not greylisted', async () => {
    const set = await api.request('PATCH', `/api/v1/tenants/${acme.tenantId}/smtp-policy`, { greylisting: { enabled: true, delaySeconds: 2, retryWindowHours: 1, passTtlDays: 1 } });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ greylisting: { enabled: true, delaySeconds: 2, retryWindowHours: 1, passTtlDays: 1 } });
    expect((await api.request('GET', `/api/v1/tenants/${globex.tenantId}/smtp-policy`)).body).toEqual({ greylisting: { enabled: false, delaySeconds: 300, retryWindowHours: 48, passTtlDays: 35 } });

    const from = `grey${uniq()}@outside.example`;
    const rcpt = `alice@${acme.domain}`;
    const first = await send(from, [rcpt], '127.0.0.76');
    expect(first.code).toBe(451);
    expect(first.response).toContain('451 4.7.1 Greylisted, please try again later');
    // Same /24, before the delay: still greylisted.
    expect((await send(from, [rcpt], '127.0.0.77')).code).toBe(451);
    const rows = await eventually(async () => (await tracked(acme.tenantId, rcpt)).find((m) => m.mailFrom === from), 15_000);
    expect(rows.recipients[0]).toMatchObject({ status: 'rejected', lastReply: { code: 451, enhanced: '4.7.1', text: 'Greylisted, please try again later' } });
    await sleep(2_200);
    expect((await send(from, [rcpt], '127.0.0.76')).code).toBe(250);
    // Whitelisted now.
    expect((await send(from, [rcpt], '127.0.0.78')).code).toBe(250);

    expect((await send(from, [`anyone@${globex.domain}`], '127.0.0.79')).code).toBe(250);
    // Invalid settings are a problem document naming the field.
    const bad = await api.request('PATCH', `/api/v1/tenants/${acme.tenantId}/smtp-policy`, { greylisting: { delaySeconds: 0 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('delaySeconds');
  });
});
