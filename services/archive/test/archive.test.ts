import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingKeys, type EventOf, type MessageFilteredPayload, type QueuePolicy } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { ArchiveRepository, archiveCursor } from '@moat/store';
import { createTestEnv, eventually, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type ArchiveService } from '../src/index.js';

/** Observes message.event traffic, as the tracker would: the archive must publish none. */
const probe: QueuePolicy = { name: 'probe-events', bindings: [routingKeys.messageEvent], prefetch: 50, deliveryLimit: 5, handlerTimeoutMs: 10_000 };

let t: TestEnv;
let service: ArchiveService;
let broker: Broker;
let pool: pg.Pool;
let archive: ArchiveRepository;
const tracking: Array<EventOf<'message.event'>> = [];
const parked: Array<{ id?: string }> = [];

beforeAll(async () => {
  t = await createTestEnv();
  service = await start(loadConfig(configSchema, t.env), silentLog);
  pool = testPool(t);
  archive = new ArchiveRepository(pool);
  broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.env.MOAT_NAMESPACE!, producer: 'archive-test', log: silentLog });
  await broker.connect();
  await broker.consume(probe, async ({ event }) => {
    if (event.type === 'message.event') tracking.push(event);
  });
  await broker.consumeRaw('parking', 10, async (msg) => {
    parked.push(JSON.parse(msg.content.toString('utf8')) as { id?: string });
  });
});

afterAll(async () => {
  await service?.stop();
  await broker?.destroyNamespace(['filter', 'archive', 'router', 'tracker', probe.name]);
  await broker?.close();
  await pool?.end();
  await t?.cleanup();
});

function filteredPayload(over: { tenantId: string; subject: string | null; receivedAt?: Date; from?: string; rcpt?: string }): MessageFilteredPayload {
  const messageId = randomUUID();
  const receivedAt = (over.receivedAt ?? new Date()).toISOString();
  const rcpt = over.rcpt ?? 'bob@customer.test';
  return {
    messageId,
    tenantId: over.tenantId,
    direction: 'inbound',
    store: { messageId, receivedAt },
    mailFrom: 'bounces@sender.test',
    rcptTo: [rcpt],
    client: { ip: '127.0.0.1', helo: 'client.test', ptr: null, tls: null },
    size: 1234,
    sha256: 'a'.repeat(64),
    prependHeaders: 'Received: by mx.moat.test; Mon, 1 Jan 2024 10:00:00 +0000\r\n',
    receivedAt,
    verdict: 'deliver',
    score: 0,
    reasons: [],
    checks: [{ check: 'spf', result: 'pass', reason: 'test' }],
    authResults: 'mx.moat.test; spf=pass smtp.mailfrom=bounces@sender.test',
    headers: { from: over.from ?? 'Alice <alice@sender.test>', to: `<${rcpt}>`, subject: over.subject, date: 'Mon, 1 Jan 2024 10:00:00 +0000', messageIdHeader: `<${messageId}@sender.test>` },
  };
}

async function rowsFor(messageId: string): Promise<Array<Record<string, unknown>>> {
  return (await pool.query('SELECT * FROM archive_entries WHERE message_id = $1', [messageId])).rows;
}

/**
 * Waits until the archive has taken everything published so far (the queue is FIFO, so a later
 * filtered event is archived after the earlier ones were delivered) and the probe has seen a
 * message.event published after that: a tracking event from the archive would have shown by now.
 */
async function settle(): Promise<void> {
  const later = filteredPayload({ tenantId: randomUUID(), subject: 'settle' });
  await broker.publish(routingKeys.messageFiltered, broker.envelope('message.filtered', later));
  await eventually(async () => (await rowsFor(later.messageId)).length > 0);
  const marker = broker.envelope('message.event', { messageId: later.messageId, tenantId: later.tenantId, kind: 'routed', rcpt: [], detail: {} });
  await broker.publish(routingKeys.messageEvent, marker);
  await eventually(() => tracking.some((e) => e.id === marker.id));
}

describe('archive', () => {
  it('when a filtered event arrives, then one archive entry holds its envelope, headers and verdict and no tracking event is published', async () => {
    const tenantId = randomUUID();
    const payload = filteredPayload({ tenantId, subject: 'Quarterly numbers for Q3' });
    const event = broker.envelope('message.filtered', payload);
    await broker.publish(routingKeys.messageFiltered, event);

    const [row] = await eventually(async () => {
      const rows = await rowsFor(payload.messageId);
      return rows.length > 0 && rows;
    });
    expect(row).toMatchObject({
      tenant_id: tenantId,
      direction: 'inbound',
      mail_from: 'bounces@sender.test',
      rcpts: ['bob@customer.test'],
      from_header: 'Alice <alice@sender.test>',
      to_header: '<bob@customer.test>',
      subject: 'Quarterly numbers for Q3',
      date_header: 'Mon, 1 Jan 2024 10:00:00 +0000',
      message_id_header: `<${payload.messageId}@sender.test>`,
      size: 1234,
      verdict: 'deliver',
    });
    expect((row!.received_at as Date).toISOString()).toBe(payload.receivedAt);

    await settle();
    expect(tracking.filter((e) => e.payload.messageId === payload.messageId)).toEqual([]);
  });

  it('when the same filtered event is delivered twice, then there is still one entry', async () => {
    const payload = filteredPayload({ tenantId: randomUUID(), subject: 'twice' });
    const event = broker.envelope('message.filtered', payload);
    await broker.publish(routingKeys.messageFiltered, event);
    await broker.publish(routingKeys.messageFiltered, event);

    await settle();
    expect(await rowsFor(payload.messageId)).toHaveLength(1);
    expect(tracking.filter((e) => e.payload.messageId === payload.messageId)).toEqual([]);
  });

  it('when searching by a subject word, then the tenant finds the message and other tenants do not', async () => {
    const tenantId = randomUUID();
    const payload = filteredPayload({ tenantId, subject: 'Invoice 4711 for October' });
    await broker.publish(routingKeys.messageFiltered, broker.envelope('message.filtered', payload));
    await eventually(async () => (await rowsFor(payload.messageId)).length > 0);

    const found = await archive.search(tenantId, { q: 'invoice', limit: 10 });
    expect(found.map((e) => e.messageId)).toEqual([payload.messageId]);
    expect(found[0]).toMatchObject({ subject: 'Invoice 4711 for October', rcpts: ['bob@customer.test'], verdict: 'deliver', receivedAt: payload.receivedAt });
    expect(await archive.search(tenantId, { q: 'october INVOICE', limit: 10 })).toHaveLength(1);
    expect(await archive.search(tenantId, { q: 'receipt', limit: 10 })).toEqual([]);
    expect(await archive.search(randomUUID(), { q: 'invoice', limit: 10 })).toEqual([]);
  });
});

describe('archive batching', () => {
  it('when several filtered events arrive together and one holds data Postgres refuses, then the others are archived and only that one is parked', async () => {
    const tenantId = randomUUID();
    const good = [0, 1, 2, 3].map((i) => filteredPayload({ tenantId, subject: `together ${i}` }));
    // A NUL byte is valid JSON but not valid Postgres text (SQLSTATE 22021): a data error.
    const bad = filteredPayload({ tenantId, subject: 'nul \u0000 byte' });
    const events = [...good.slice(0, 2), bad, ...good.slice(2)].map((p) => broker.envelope('message.filtered', p));
    await Promise.all(events.map((e) => broker.publish(routingKeys.messageFiltered, e)));

    const badEvent = events[2]!;
    await eventually(() => parked.some((e) => e.id === badEvent.id));
    await eventually(async () => (await Promise.all(good.map((p) => rowsFor(p.messageId)))).every((rows) => rows.length === 1));
    expect(await rowsFor(bad.messageId)).toEqual([]);
    expect(parked.filter((e) => e.id !== badEvent.id && events.some((ev) => ev.id === e.id))).toEqual([]);
    expect((await archive.search(tenantId, { q: 'together', limit: 10 })).map((e) => e.subject).sort()).toEqual(['together 0', 'together 1', 'together 2', 'together 3']);
  });
});

describe('ArchiveRepository', () => {
  const entry = (tenantId: string, subject: string, receivedAt: Date, over: Partial<{ mailFrom: string; rcpts: string[]; fromHeader: string | null }> = {}) => ({
    messageId: randomUUID(),
    tenantId,
    receivedAt: receivedAt.toISOString(),
    direction: 'inbound' as const,
    mailFrom: over.mailFrom ?? 'a@sender.test',
    rcpts: over.rcpts ?? ['bob@customer.test'],
    fromHeader: over.fromHeader ?? null,
    toHeader: null,
    subject,
    dateHeader: null,
    messageIdHeader: null,
    size: 10,
    verdict: 'deliver' as const,
  });

  it('when an entry is recorded twice, then the second record reports it was already there', async () => {
    const e = entry(randomUUID(), 'once', new Date());
    expect(await archive.record(e)).toBe(true);
    expect(await archive.record({ ...e, subject: 'changed' })).toBe(false);
    expect((await archive.get(e.tenantId, e.messageId))!.subject).toBe('once');
  });

  it('when searching without words, then entries come newest first and the cursor pages through them', async () => {
    const tenantId = randomUUID();
    const base = Date.parse('2024-03-01T12:00:00Z');
    // Two entries share a timestamp: the cursor must neither skip nor repeat one of them.
    const entries = [entry(tenantId, 'm0', new Date(base)), entry(tenantId, 'm1', new Date(base + 1000)), entry(tenantId, 'm2', new Date(base + 1000)), entry(tenantId, 'm3', new Date(base + 2000))];
    for (const e of entries) await archive.record(e);

    const first = await archive.search(tenantId, { limit: 2 });
    const second = await archive.search(tenantId, { limit: 2, before: archiveCursor(first[1]!) });
    const third = await archive.search(tenantId, { limit: 2, before: archiveCursor(second[1]!) });
    const seen = [...first, ...second, ...third].map((e) => e.subject);
    expect(seen).toHaveLength(4);
    expect(new Set(seen)).toEqual(new Set(['m0', 'm1', 'm2', 'm3']));
    expect(seen[0]).toBe('m3');
    expect(seen[3]).toBe('m0');
    expect(third).toHaveLength(0);
  });

  it('when the words match the sender, a recipient or the From header, then the entry is found', async () => {
    const tenantId = randomUUID();
    await archive.record(entry(tenantId, 'hello', new Date(), { mailFrom: 'news@shop.test', rcpts: ['carol@customer.test', 'dave@customer.test'], fromHeader: 'Shop Team <news@shop.test>' }));
    expect(await archive.search(tenantId, { q: 'dave@customer', limit: 5 })).toHaveLength(1);
    expect(await archive.search(tenantId, { q: 'shop team', limit: 5 })).toHaveLength(1);
    expect(await archive.search(tenantId, { q: 'news@shop.test', limit: 5 })).toHaveLength(1);
  });

  it('when the query contains LIKE wildcards, then they match only themselves', async () => {
    const tenantId = randomUUID();
    await archive.record(entry(tenantId, 'discount 100% off', new Date()));
    await archive.record(entry(tenantId, 'plain subject', new Date()));
    expect((await archive.search(tenantId, { q: '100%', limit: 5 })).map((e) => e.subject)).toEqual(['discount 100% off']);
    expect(await archive.search(tenantId, { q: '%', limit: 5 })).toHaveLength(1);
    expect(await archive.search(tenantId, { q: '_', limit: 5 })).toHaveLength(0);
  });
});
