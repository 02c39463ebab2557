import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { queues, type AnyEvent } from '@moat/contracts';
import { Broker, loadConfig, type Pool } from '@moat/runtime';
import { ArchiveRepository, ParkedRepository, TrackingRepository, type ArchiveEntryInput } from '@moat/store';
import { createTestEnv, eventually, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { messageEvents, replies } from '@moat/testkit';

let t: TestEnv;
let gateway: GatewayService;
let pool: pg.Pool;
let base: string;
let operator: string;

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

async function call(method: string, path: string, opts: { token?: string | null; body?: unknown; raw?: string; contentType?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? operator : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

function expectProblem(a: Answer, status: number): void {
  expect(a.status).toBe(status);
  expect(a.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(a.body).toMatchObject({ type: expect.stringMatching(/^urn:moat:problem:/), title: expect.any(String), status, detail: expect.any(String), instance: expect.any(String) });
}

async function createTenant(name: string, token?: string): Promise<string> {
  const res = await call('POST', '/api/v1/tenants', { body: { name }, token });
  expect(res.status).toBe(201);
  return res.body.id;
}

async function tenantKey(tenantId: string, scopes: string[] = ['*']): Promise<string> {
  const res = await call('POST', `/api/v1/tenants/${tenantId}/api-keys`, { body: { name: 'test key', scopes } });
  expect(res.status).toBe(201);
  return res.body.key;
}

beforeAll(async () => {
  t = await createTestEnv();
  gateway = await start(loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  pool = testPool(t);
});

afterAll(async () => {
  await gateway?.stop();
  await pool?.end();
  if (t) {
    const broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.id, producer: 'test-cleanup', log: silentLog });
    await broker.connect();
    await broker.destroyNamespace(['filter', 'archive', 'router', 'tracker']);
    await broker.close();
    await t.cleanup();
  }
});

describe('tenants and domains', () => {
  it('when an operator creates a tenant, then it answers 201 with a Location that reads it back, and audits it', async () => {
    const res = await call('POST', '/api/v1/tenants', { body: { name: 'Acme Corp' } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name: 'Acme Corp', partnerId: null, createdAt: expect.any(String) });
    expect(res.headers.get('location')).toBe(`/api/v1/tenants/${res.body.id}`);
    const read = await call('GET', res.headers.get('location')!);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(res.body);
    const list = await call('GET', '/api/v1/tenants');
    expect(list.body.items).toContainEqual(res.body);
    const audit = await pool.query("SELECT actor, target FROM audit_log WHERE action = 'tenant.create' AND target = $1", [res.body.id]);
    expect(audit.rows[0]?.actor).toMatch(/^bootstrap\//);
  });

  it('when a domain is created with routes, then it answers 201 and reads back with its routes in delivery order', async () => {
    const tenantId = await createTenant('Routes Inc');
    const res = await call('POST', `/api/v1/tenants/${tenantId}/domains`, {
      body: { name: 'Routes.Example.', routes: [{ host: 'MX2.routes.example', port: 2525, priority: 20 }, { host: '127.0.0.1', port: 25, priority: 10 }] },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ tenantId, name: 'routes.example', routes: [{ host: '127.0.0.1', port: 25, priority: 10 }, { host: 'mx2.routes.example', port: 2525, priority: 20 }] });
    expect(res.headers.get('location')).toBe(`/api/v1/domains/${res.body.id}`);
    const read = await call('GET', `/api/v1/domains/${res.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(res.body);
    const list = await call('GET', `/api/v1/tenants/${tenantId}/domains`);
    expect(list.body.items).toEqual([res.body]);
  });

  it('when another tenant already protects the domain, then it answers 409 without naming that tenant', async () => {
    const first = await createTenant('First');
    const second = await createTenant('Second');
    const body = { name: 'taken.example', routes: [{ host: 'mx.taken.example', port: 25, priority: 10 }] };
    expect((await call('POST', `/api/v1/tenants/${first}/domains`, { body })).status).toBe(201);
    const res = await call('POST', `/api/v1/tenants/${second}/domains`, { body });
    expectProblem(res, 409);
    expect(res.body.detail).toContain('taken.example');
    expect(res.body.detail).not.toContain(first);
  });

  it('when a route has a bad port, then it answers 400 problem+json naming the field', async () => {
    const tenantId = await createTenant('Bad Port');
    const res = await call('POST', `/api/v1/tenants/${tenantId}/domains`, { body: { name: 'badport.example', routes: [{ host: 'mx.badport.example', port: 70000, priority: 10 }] } });
    expectProblem(res, 400);
    expect(res.body.detail).toContain('routes[0].port');
    expect(res.body.errors).toEqual([{ field: 'routes[0].port', message: expect.any(String) }]);
  });

  it('when the domain name, the routes or the host are invalid, then each bad field is named', async () => {
    const tenantId = await createTenant('Bad Fields');
    const res = await call('POST', `/api/v1/tenants/${tenantId}/domains`, { body: { name: 'not a domain', routes: [], extra: true } });
    expectProblem(res, 400);
    expect(res.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['extra', 'name', 'routes']);
    const host = await call('POST', `/api/v1/tenants/${tenantId}/domains`, { body: { name: 'ok.example', routes: [{ host: 'bad host!', port: 25 }] } });
    expectProblem(host, 400);
    expect(host.body.detail).toContain('routes[0].host');
  });

  it('when the body is not JSON or not application/json, then it answers 400 or 415 as problem+json', async () => {
    expectProblem(await call('POST', '/api/v1/tenants', { raw: '{"name": ' }), 400);
    expectProblem(await call('POST', '/api/v1/tenants', { raw: 'name=x', contentType: 'application/x-www-form-urlencoded' }), 415);
    expectProblem(await call('POST', '/api/v1/tenants'), 400);
  });

  it('when a path does not exist, then it answers 404 problem+json', async () => {
    expectProblem(await call('GET', '/api/v1/nothing-here'), 404);
    expectProblem(await call('GET', '/api/v1/tenants/not-a-uuid'), 404);
    expectProblem(await call('GET', '/api/v1/tenants/00000000-0000-4000-8000-000000000000'), 404);
  });
});

describe('authentication and isolation', () => {
  it('when no token or a wrong token is sent, then it answers 401 with WWW-Authenticate: Bearer', async () => {
    const none = await call('GET', '/api/v1/tenants', { token: null });
    expectProblem(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await call('GET', '/api/v1/tenants', { token: 'moat_not-a-key' });
    expectProblem(wrong, 401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('when a tenant key reads another tenant, then it gets 404; creating tenants or listing parked events gets 403', async () => {
    const own = await createTenant('Own');
    const other = await createTenant('Other');
    const key = await tenantKey(own);
    expect((await call('GET', `/api/v1/tenants/${own}`, { token: key })).status).toBe(200);
    expectProblem(await call('GET', `/api/v1/tenants/${other}`, { token: key }), 404);
    expectProblem(await call('GET', `/api/v1/tenants/${other}/domains`, { token: key }), 404);
    expectProblem(await call('GET', `/api/v1/messages?tenant=${other}`, { token: key }), 404);
    expectProblem(await call('POST', '/api/v1/tenants', { token: key, body: { name: 'Sneaky' } }), 403);
    expectProblem(await call('GET', '/api/v1/parked', { token: key }), 403);
    const list = await call('GET', '/api/v1/tenants', { token: key });
    expect(list.body.items.map((x: { id: string }) => x.id)).toEqual([own]);
  });

  it('when a tenant key lacks a scope, then it gets 403 and cannot grant that scope to a new key', async () => {
    const own = await createTenant('Scoped');
    const key = await tenantKey(own, ['messages:read', 'api-keys:write']);
    expectProblem(await call('GET', `/api/v1/tenants/${own}/domains`, { token: key }), 403);
    const grant = await call('POST', `/api/v1/tenants/${own}/api-keys`, { token: key, body: { name: 'wider', scopes: ['domains:write'] } });
    expectProblem(grant, 403);
    expect(grant.body.detail).toContain('domains:write');
  });

  it('when a partner key is used, then it sees and creates only its own tenants', async () => {
    const partner = await call('POST', '/api/v1/partners', { body: { name: 'MSP One' } });
    expect(partner.status).toBe(201);
    const key = await call('POST', `/api/v1/partners/${partner.body.id}/api-keys`, { body: { name: 'msp', scopes: ['*'] } });
    expect(key.status).toBe(201);
    const foreign = await createTenant('Not the partner’s');
    const mine = await call('POST', '/api/v1/tenants', { token: key.body.key, body: { name: 'Partner Customer' } });
    expect(mine.status).toBe(201);
    expect(mine.body.partnerId).toBe(partner.body.id);
    const list = await call('GET', '/api/v1/tenants', { token: key.body.key });
    expect(list.body.items.map((x: { id: string }) => x.id)).toEqual([mine.body.id]);
    expectProblem(await call('GET', `/api/v1/tenants/${foreign}`, { token: key.body.key }), 404);
    expectProblem(await call('POST', '/api/v1/partners', { token: key.body.key, body: { name: 'x' } }), 403);
  });
});

describe('mailboxes', () => {
  it('when the address is in one of the tenant’s domains, then it answers 201; otherwise 400 naming address; twice 409', async () => {
    const tenantId = await createTenant('Mailboxes');
    await call('POST', `/api/v1/tenants/${tenantId}/domains`, { body: { name: 'mb.example', routes: [{ host: 'mx.mb.example', port: 25, priority: 0 }] } });
    const ok = await call('POST', `/api/v1/tenants/${tenantId}/mailboxes`, { body: { address: 'Jane@MB.example', liveArchive: true } });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ tenantId, address: 'jane@mb.example', liveArchive: true });
    expect((await call('GET', ok.headers.get('location')!)).body).toEqual(ok.body);
    const outside = await call('POST', `/api/v1/tenants/${tenantId}/mailboxes`, { body: { address: 'joe@elsewhere.example', liveArchive: false } });
    expectProblem(outside, 400);
    expect(outside.body.detail).toMatch(/^address: /);
    expectProblem(await call('POST', `/api/v1/tenants/${tenantId}/mailboxes`, { body: { address: 'jane@mb.example', liveArchive: true } }), 409);
  });
});

describe('message tracking', () => {
  let tenantA: string;
  let tenantB: string;
  let m1: ReturnType<typeof messageEvents>;
  let m2: ReturnType<typeof messageEvents>;
  let m3: ReturnType<typeof messageEvents>;

  beforeAll(async () => {
    tenantA = await createTenant('Tracked A');
    tenantB = await createTenant('Tracked B');
    const now = Date.now();
    m1 = messageEvents({ tenantId: tenantA, rcpts: ['bob@a.example', 'carol@a.example'], mailFrom: 'alice@sender.example', base: new Date(now - 3 * 3600_000) });
    m2 = messageEvents({ tenantId: tenantA, rcpts: ['dave@a.example'], mailFrom: 'news@list.example', base: new Date(now - 2 * 3600_000) });
    m3 = messageEvents({ tenantId: tenantB, rcpts: ['bob@b.example'], mailFrom: 'alice@sender.example', base: new Date(now - 3600_000) });
    const events: AnyEvent[] = [
      m1.accepted(),
      m1.filtered(),
      m1.requested(),
      m1.result(3, [
        { rcpt: 'bob@a.example', outcome: 'delivered', reply: replies.delivered },
        { rcpt: 'carol@a.example', outcome: 'failed', reply: replies.failed },
      ]),
      m1.event(4, 'bounced', ['carol@a.example'], { dsnMessageId: '00000000-0000-4000-8000-00000000dddd' }),
      m2.accepted(),
      m2.filtered(1, 'quarantine'),
      m3.accepted(),
    ];
    await new TrackingRepository(pool as unknown as Pool).record(events);
  });

  it('when listing with filters (tenant, rcpt, from, since), then only matching messages come back, newest first, with per-recipient status', async () => {
    const all = await call('GET', `/api/v1/messages?tenant=${tenantA}`);
    expect(all.status).toBe(200);
    expect(all.body.items.map((m: { id: string }) => m.id)).toEqual([m2.messageId, m1.messageId]);
    expect(all.body.next).toBeNull();
    const first = all.body.items[1];
    expect(first).toMatchObject({ id: m1.messageId, tenantId: tenantA, mailFrom: 'alice@sender.example', subject: 'Quarterly report', size: 2048, verdict: 'deliver' });
    expect(first.recipients).toEqual([
      { rcpt: 'bob@a.example', status: 'delivered', lastReply: replies.delivered, updatedAt: expect.any(String) },
      { rcpt: 'carol@a.example', status: 'bounced', lastReply: replies.failed, updatedAt: expect.any(String) },
    ]);
    expect(all.body.items[0].recipients).toEqual([{ rcpt: 'dave@a.example', status: 'quarantined', lastReply: null, updatedAt: expect.any(String) }]);

    const byRcpt = await call('GET', `/api/v1/messages?rcpt=${encodeURIComponent('BOB@a.example')}`);
    expect(byRcpt.body.items.map((m: { id: string }) => m.id)).toEqual([m1.messageId]);
    const byFrom = await call('GET', `/api/v1/messages?from=${encodeURIComponent('alice@sender.example')}`);
    expect(byFrom.body.items.map((m: { id: string }) => m.id)).toEqual([m3.messageId, m1.messageId]);
    const since = new Date(Date.now() - 2.5 * 3600_000).toISOString();
    const bySince = await call('GET', `/api/v1/messages?tenant=${tenantA}&since=${encodeURIComponent(since)}`);
    expect(bySince.body.items.map((m: { id: string }) => m.id)).toEqual([m2.messageId]);
    const badSince = await call('GET', '/api/v1/messages?since=yesterday');
    expectProblem(badSince, 400);
    expect(badSince.body.detail).toContain('since');
  });

  it('when a page is limited, then `next` continues where it stopped', async () => {
    const page1 = await call('GET', `/api/v1/messages?tenant=${tenantA}&limit=1`);
    expect(page1.body.items.map((m: { id: string }) => m.id)).toEqual([m2.messageId]);
    expect(page1.body.next).toEqual(expect.any(String));
    const page2 = await call('GET', `/api/v1/messages?tenant=${tenantA}&limit=1&before=${encodeURIComponent(page1.body.next)}`);
    expect(page2.body.items.map((m: { id: string }) => m.id)).toEqual([m1.messageId]);
    expect(page2.body.next).toBeNull();
  });

  it('when a tenant key lists messages, then it sees only its tenant’s', async () => {
    const key = await tenantKey(tenantB, ['messages:read']);
    const res = await call('GET', '/api/v1/messages', { token: key });
    expect(res.body.items.map((m: { id: string }) => m.id)).toEqual([m3.messageId]);
    expectProblem(await call('GET', `/api/v1/messages/${m1.messageId}`, { token: key }), 404);
  });

  it('when reading one message, then the timeline shows accepted, filtered, routed, the attempt with the exact remote reply, and the final fate', async () => {
    const res = await call('GET', `/api/v1/messages/${m1.messageId}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: m1.messageId,
      client: { ip: '192.0.2.10', helo: 'mail.sender.example', tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } },
      sha256: 'a'.repeat(64),
    });
    const timeline = res.body.timeline as Array<{ at: string; type: string; rcpts: string[]; detail: any }>;
    expect(timeline.map((e) => e.type)).toEqual(['accepted', 'filtered', 'delivery_requested', 'delivery_attempt', 'bounced']);
    expect(timeline[0]).toMatchObject({ rcpts: ['bob@a.example', 'carol@a.example'], detail: { clientIp: '192.0.2.10', helo: 'mail.sender.example', size: 2048, sha256: 'a'.repeat(64), tls: { protocol: 'TLSv1.3' } } });
    expect(timeline[1]!.detail).toMatchObject({ verdict: 'deliver', authResults: expect.stringContaining('spf=pass') });
    expect(timeline[2]!.detail).toMatchObject({ pool: 'a', destination: 'mx.customer.example:25', attempt: 1 });
    expect(timeline[3]!.detail).toMatchObject({ sourceIp: '127.0.1.1', remoteHost: 'mx.customer.example:25' });
    expect(timeline[3]!.detail.recipients).toContainEqual({ rcpt: 'carol@a.example', outcome: 'failed', reply: replies.failed });
    expect(timeline[3]!.detail.recipients[1].reply.text).toBe("5.1.1 <carol@customer.example>: Recipient address rejected: User unknown in virtual mailbox table");
    expect(timeline[4]).toMatchObject({ type: 'bounced', rcpts: ['carol@a.example'], detail: { kind: 'bounced' } });
  });
});

describe('LiveArchive search', () => {
  let tenantA: string;
  let tenantB: string;
  const ids = {
    invoice: '00000000-0000-4000-8000-00000000a001',
    newsletter: '00000000-0000-4000-8000-00000000a002',
    meeting: '00000000-0000-4000-8000-00000000a003',
    otherInvoice: '00000000-0000-4000-8000-00000000b001',
  };

  function entry(messageId: string, tenantId: string, subject: string, minutesAgo: number): ArchiveEntryInput {
    return {
      messageId,
      tenantId,
      receivedAt: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
      direction: 'inbound',
      mailFrom: 'alice@sender.example',
      rcpts: ['bob@archive.example'],
      fromHeader: 'Alice <alice@sender.example>',
      toHeader: 'Bob <bob@archive.example>',
      subject,
      dateHeader: 'Mon, 25 Nov 2024 10:00:00 +0000',
      messageIdHeader: `<${messageId}@sender.example>`,
      size: 1234,
      verdict: 'deliver',
    };
  }

  beforeAll(async () => {
    tenantA = await createTenant('Archive A');
    tenantB = await createTenant('Archive B');
    await new ArchiveRepository(pool as unknown as Pool).recordMany([
      entry(ids.invoice, tenantA, 'Invoice 2024-11', 30),
      entry(ids.newsletter, tenantA, 'Weekly newsletter', 20),
      entry(ids.meeting, tenantA, 'Meeting notes', 10),
      entry(ids.otherInvoice, tenantB, 'Invoice from B', 5),
    ]);
  });

  it('when searching by a subject word, then only that tenant’s matching message comes back, with its headers', async () => {
    const res = await call('GET', `/api/v1/tenants/${tenantA}/archive?q=INVOICE`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      items: [
        {
          messageId: ids.invoice,
          receivedAt: expect.any(String),
          direction: 'inbound',
          mailFrom: 'alice@sender.example',
          rcpts: ['bob@archive.example'],
          from: 'Alice <alice@sender.example>',
          to: 'Bob <bob@archive.example>',
          subject: 'Invoice 2024-11',
          date: 'Mon, 25 Nov 2024 10:00:00 +0000',
          messageIdHeader: `<${ids.invoice}@sender.example>`,
          size: 1234,
          verdict: 'deliver',
        },
      ],
      next: null,
    });
  });

  it('when a tenant key searches, then it sees its own archive and another tenant’s archive answers 404', async () => {
    const key = await tenantKey(tenantB, ['archive:read']);
    const own = await call('GET', `/api/v1/tenants/${tenantB}/archive?q=invoice`, { token: key });
    expect(own.body.items.map((e: { messageId: string }) => e.messageId)).toEqual([ids.otherInvoice]);
    expectProblem(await call('GET', `/api/v1/tenants/${tenantA}/archive?q=invoice`, { token: key }), 404);
    const unscoped = await tenantKey(tenantB, ['messages:read']);
    expectProblem(await call('GET', `/api/v1/tenants/${tenantB}/archive`, { token: unscoped }), 403);
  });

  it('when a page is limited, then `next` returns the rest, newest first, without repeats', async () => {
    const page1 = await call('GET', `/api/v1/tenants/${tenantA}/archive?limit=2`);
    expect(page1.body.items.map((e: { messageId: string }) => e.messageId)).toEqual([ids.meeting, ids.newsletter]);
    expect(page1.body.next).toEqual(expect.any(String));
    const page2 = await call('GET', `/api/v1/tenants/${tenantA}/archive?limit=2&before=${encodeURIComponent(page1.body.next)}`);
    expect(page2.body.items.map((e: { messageId: string }) => e.messageId)).toEqual([ids.invoice]);
    expect(page2.body.next).toBeNull();
    expectProblem(await call('GET', `/api/v1/tenants/${tenantA}/archive?before=garbage`), 400);
  });

  it('when the limit is not a positive number, then it answers 400 problem+json naming limit', async () => {
    for (const limit of ['0', 'ten', '100000']) {
      const res = await call('GET', `/api/v1/tenants/${tenantA}/archive?limit=${limit}`);
      expectProblem(res, 400);
      expect(res.body.detail).toContain('limit');
      expect(res.body.errors).toEqual([{ field: 'limit', message: expect.any(String) }]);
    }
  });
});

describe('parked events', () => {
  it('when an operator replays a parked event, then it is re-published with its routing key, marked replayed and audited; a second replay is 409', async () => {
    const m = messageEvents({ rcpts: ['x@p.example'] });
    const event = m.event(1, 'archived', []);
    const parked = new ParkedRepository(pool as unknown as Pool);
    const { id } = await parked.insert({
      sourceQueue: 'tracker',
      routingKey: 'message.event',
      reason: 'delivery_limit',
      eventId: event.id,
      eventType: event.type,
      messageId: m.messageId,
      headers: { 'x-death': [{ queue: `${t.id}.tracker`, reason: 'delivery_limit', count: 1 }], traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      body: Buffer.from(JSON.stringify(event)),
    });
    const listed = await call('GET', '/api/v1/parked?queue=tracker');
    expect(listed.body.items).toContainEqual(expect.objectContaining({ id, routingKey: 'message.event', reason: 'delivery_limit', eventId: event.id, replayedAt: null }));
    const one = await call('GET', `/api/v1/parked/${id}`);
    expect(one.body).toMatchObject({ id, bodyEncoding: 'utf8', body: JSON.stringify(event) });

    const received: AnyEvent[] = [];
    const consumer = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.id, producer: 'test', log: silentLog });
    await consumer.connect();
    await consumer.consume(queues.tracker, async (d) => void received.push(d.event));
    try {
      const replay = await call('POST', `/api/v1/parked/${id}/replay`);
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({ id, routingKey: 'message.event' });
      await eventually(() => received.some((e) => e.id === event.id));
      expectProblem(await call('POST', `/api/v1/parked/${id}/replay`), 409);
      const after = await call('GET', '/api/v1/parked?state=all');
      expect(after.body.items.find((p: { id: string }) => p.id === id).replayedAt).toEqual(expect.any(String));
      const audit = await pool.query("SELECT count(*)::int AS n FROM audit_log WHERE action = 'parked.replay' AND target = $1", [id]);
      expect(audit.rows[0].n).toBe(1);
    } finally {
      await consumer.drain(1_000);
      await consumer.close();
    }
  });
});

describe('health and the OpenAPI document', () => {
  it('when /readyz and /livez are asked on the API port, then they answer 200', async () => {
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready' });
    expect((await fetch(`${base}/livez`)).status).toBe(200);
  });

  it('when the OpenAPI document is fetched, then it matches the golden file (MOAT_UPDATE_GOLDEN=1 re-records it)', async () => {
    const res = await call('GET', '/api/v1/openapi.json', { token: null });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    for (const path of ['/api/v1/tenants', '/api/v1/tenants/{tenantId}', '/api/v1/tenants/{tenantId}/domains', '/api/v1/tenants/{tenantId}/mailboxes', '/api/v1/tenants/{tenantId}/api-keys', '/api/v1/messages', '/api/v1/messages/{messageId}', '/api/v1/tenants/{tenantId}/archive', '/api/v1/openapi.json']) {
      expect(Object.keys(res.body.paths)).toContain(path);
    }
    const golden = new URL('./golden/openapi.json', import.meta.url);
    const text = `${JSON.stringify(res.body, null, 2)}\n`;
    if (process.env.MOAT_UPDATE_GOLDEN === '1') await writeFile(golden, text);
    expect(text).toBe(await readFile(golden, 'utf8'));
  });
});
