import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { AnyEvent } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { TrackingRepository } from '@moat/store';
import { createTestEnv, eventually, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type TrackerService } from '../src/index.js';
import { messageEvents, replies } from '@moat/testkit';

let t: TestEnv;
let tracker: TrackerService;
let broker: Broker;
let pool: pg.Pool;
let tracking: TrackingRepository;

beforeAll(async () => {
  t = await createTestEnv();
  tracker = await start(loadConfig(configSchema, t.env), silentLog);
  broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.id, producer: 'test', log: silentLog });
  await broker.connect();
  pool = testPool(t);
  tracking = new TrackingRepository(pool as never);
});

afterAll(async () => {
  await tracker?.stop();
  await broker?.destroyNamespace(['filter', 'archive', 'router', 'tracker']);
  await broker?.close();
  await pool?.end();
  await t?.cleanup();
});

function routingKey(e: AnyEvent): string {
  return e.type === 'delivery.requested' ? `delivery.requested.${e.payload.pool}` : e.type;
}

async function publish(...events: AnyEvent[]): Promise<void> {
  for (const e of events) await broker.publish(routingKey(e), e);
}

async function statuses(messageId: string): Promise<Record<string, { status: string; last_reply: unknown }>> {
  const res = await pool.query('SELECT rcpt, status, last_reply FROM tracked_recipients WHERE message_id = $1', [messageId]);
  return Object.fromEntries(res.rows.map((r) => [r.rcpt, { status: r.status, last_reply: r.last_reply }]));
}

async function eventCount(messageId: string): Promise<number> {
  const res = await pool.query('SELECT count(*)::int AS n FROM message_events WHERE message_id = $1', [messageId]);
  return res.rows[0].n;
}

describe('tracker', () => {
  it('when a message is accepted, filtered, routed and delivered to one, deferred for one and failed for one recipient, then each recipient shows its fate and the timeline is in order', async () => {
    const m = messageEvents({ rcpts: ['bob@customer.example', 'dave@customer.example', 'carol@customer.example'] });
    const result = m.result(3, [
      { rcpt: 'bob@customer.example', outcome: 'delivered', reply: replies.delivered },
      { rcpt: 'dave@customer.example', outcome: 'deferred', reply: replies.deferred },
      { rcpt: 'carol@customer.example', outcome: 'failed', reply: replies.failed },
    ]);
    await publish(m.accepted(), m.filtered(), m.requested(), result);

    await eventually(async () => (await eventCount(m.messageId)) === 4);
    await eventually(async () => (await statuses(m.messageId))['bob@customer.example']?.status === 'delivered');
    expect(await statuses(m.messageId)).toEqual({
      'bob@customer.example': { status: 'delivered', last_reply: replies.delivered },
      'dave@customer.example': { status: 'deferred', last_reply: replies.deferred },
      'carol@customer.example': { status: 'failed', last_reply: replies.failed },
    });

    const detail = await tracking.getMessage(m.messageId);
    expect(detail).toMatchObject({ id: m.messageId, tenantId: m.tenantId, mailFrom: 'alice@sender.example', subject: 'Quarterly report', verdict: 'deliver', size: 2048, clientIp: '192.0.2.10' });
    expect(detail!.timeline.map((e) => e.type)).toEqual(['accepted', 'filtered', 'delivery_requested', 'delivery_attempt']);
    expect(detail!.timeline[0]!.detail).toEqual({
      clientIp: '192.0.2.10',
      helo: 'mail.sender.example',
      ptr: 'mail.sender.example',
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      size: 2048,
      sha256: 'a'.repeat(64),
    });
    expect(detail!.timeline[2]!.detail).toMatchObject({ attempt: 1, pool: 'a', destination: 'mx.customer.example:25' });
    expect(detail!.timeline[3]!.detail).toMatchObject({
      sourceIp: '127.0.1.1',
      remoteHost: 'mx.customer.example:25',
      recipients: [
        { rcpt: 'bob@customer.example', outcome: 'delivered', reply: replies.delivered },
        { rcpt: 'dave@customer.example', outcome: 'deferred', reply: replies.deferred },
        { rcpt: 'carol@customer.example', outcome: 'failed', reply: replies.failed },
      ],
    });
  });

  it('when the same events are delivered twice (and one is re-published with a new timestamp), then nothing is duplicated', async () => {
    const m = messageEvents({ rcpts: ['erin@customer.example'] });
    const events = [m.accepted(), m.filtered(), m.requested(), m.result(3, [{ rcpt: 'erin@customer.example', outcome: 'delivered', reply: replies.delivered }])];
    await publish(...events);
    await eventually(async () => (await eventCount(m.messageId)) === 4);
    const republished = { ...events[2]!, occurredAt: new Date(Date.parse(events[2]!.occurredAt) + 5_000).toISOString() } as AnyEvent;
    await publish(...events, republished);
    // A marker published after the duplicates: once it is stored, the duplicates were processed.
    const marker = m.event(10, 'archived', []);
    await publish(marker);
    await eventually(async () => (await eventCount(m.messageId)) === 5);
    expect(await eventCount(m.messageId)).toBe(5);
    const tm = await pool.query('SELECT count(*)::int AS n FROM tracked_messages WHERE message_id = $1', [m.messageId]);
    expect(tm.rows[0].n).toBe(1);
    expect(await statuses(m.messageId)).toEqual({ 'erin@customer.example': { status: 'delivered', last_reply: replies.delivered } });
  });

  it('when the delivery result arrives before the message was accepted, then the recipient still ends delivered', async () => {
    const m = messageEvents({ rcpts: ['frank@customer.example', 'gina@customer.example'] });
    await publish(
      m.result(3, [
        { rcpt: 'frank@customer.example', outcome: 'delivered', reply: replies.delivered },
        { rcpt: 'gina@customer.example', outcome: 'failed', reply: replies.failed },
      ]),
    );
    await eventually(async () => (await eventCount(m.messageId)) === 1);
    await publish(m.event(5, 'bounced', ['gina@customer.example'], { dsnMessageId: 'x' }), m.requested(), m.filtered(), m.accepted());
    await eventually(async () => (await eventCount(m.messageId)) === 5);
    expect(await statuses(m.messageId)).toEqual({
      'frank@customer.example': { status: 'delivered', last_reply: replies.delivered },
      'gina@customer.example': { status: 'bounced', last_reply: replies.failed },
    });
    const detail = await tracking.getMessage(m.messageId);
    expect(detail!.timeline.map((e) => e.type)).toEqual(['accepted', 'filtered', 'delivery_requested', 'delivery_attempt', 'bounced']);
  });

  it('when a whole-message quarantine arrives before the message was accepted, then every recipient ends quarantined', async () => {
    const m = messageEvents({ rcpts: ['hank@customer.example', 'ines@customer.example'] });
    await publish(m.event(2, 'quarantined', [], { reason: 'virus' }));
    await eventually(async () => (await eventCount(m.messageId)) === 1);
    await publish(m.accepted());
    await eventually(async () => Object.values(await statuses(m.messageId)).filter((s) => s.status === 'quarantined').length === 2);
  });

  it('when a retry is scheduled and a later attempt delivers, then the recipient moves deferred → queued → delivered', async () => {
    const m = messageEvents({ rcpts: ['jo@customer.example'] });
    await publish(m.accepted(), m.filtered(), m.requested(2, 1), m.result(3, [{ rcpt: 'jo@customer.example', outcome: 'deferred', reply: replies.deferred }]), m.event(4, 'retry_scheduled', ['jo@customer.example']));
    await eventually(async () => (await eventCount(m.messageId)) === 5);
    expect((await statuses(m.messageId))['jo@customer.example']).toEqual({ status: 'deferred', last_reply: replies.deferred });
    await publish(m.requested(300, 2));
    await eventually(async () => (await statuses(m.messageId))['jo@customer.example']?.status === 'queued');
    expect((await statuses(m.messageId))['jo@customer.example']?.last_reply).toEqual(replies.deferred);
    await publish(m.result(301, [{ rcpt: 'jo@customer.example', outcome: 'delivered', reply: replies.delivered }], 2));
    await eventually(async () => (await statuses(m.messageId))['jo@customer.example']?.status === 'delivered');
  });

  it('when an unparsable message is published to the tracker routing key, then it ends in parked_events with its source queue', async () => {
    await broker.publishRaw('message.event', Buffer.from('{"id":"not-an-envelope","type":"message.event","payload":'));
    const row = await eventually(async () => {
      const res = await pool.query("SELECT * FROM parked_events WHERE routing_key = 'message.event' AND body = $1", [Buffer.from('{"id":"not-an-envelope","type":"message.event","payload":')]);
      return res.rows[0];
    });
    expect(row).toMatchObject({ source_queue: 'tracker', reason: 'rejected', routing_key: 'message.event', replayed_at: null });
    expect(row.headers['x-death']).toBeDefined();
  });

  it('when an event breaks its contract but is JSON, then the parked row names the event', async () => {
    const body = JSON.stringify({ v: 1, id: '1a2b', type: 'message.event', payload: { messageId: '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11' } });
    await broker.publishRaw('message.event', Buffer.from(body));
    const row = await eventually(async () => (await pool.query("SELECT * FROM parked_events WHERE event_id = '1a2b'")).rows[0]);
    expect(row).toMatchObject({ source_queue: 'tracker', event_type: 'message.event', message_id: '6f1c8a56-3b0e-4a58-9a0c-2a6f1f0f3f11' });
  });

  it('when 300 messages of 6 events each arrive at once, then they are all tracked within seconds', async () => {
    const messages = Array.from({ length: 300 }, (_, i) => messageEvents({ rcpts: [`u${i}a@customer.example`, `u${i}b@customer.example`] }));
    const events = messages.flatMap((m, i) => [
      m.accepted(),
      m.filtered(),
      m.requested(),
      m.result(3, [
        { rcpt: `u${i}a@customer.example`, outcome: 'delivered', reply: replies.delivered },
        { rcpt: `u${i}b@customer.example`, outcome: 'delivered', reply: replies.delivered },
      ]),
      m.event(4, 'routed', []),
      m.event(5, 'archived', []),
    ]);
    const started = Date.now();
    // Publish with some concurrency, as several producers would.
    for (let i = 0; i < events.length; i += 100) await Promise.all(events.slice(i, i + 100).map((e) => broker.publish(routingKey(e), e)));
    const ids = messages.map((m) => m.messageId);
    await eventually(async () => {
      const res = await pool.query("SELECT count(*)::int AS n FROM tracked_recipients WHERE message_id = ANY($1::uuid[]) AND status = 'delivered'", [ids]);
      return res.rows[0].n === 600;
    }, 30_000);
    const seconds = (Date.now() - started) / 1000;
    const res = await pool.query('SELECT count(*)::int AS n FROM message_events WHERE message_id = ANY($1::uuid[])', [ids]);
    expect(res.rows[0].n).toBe(1800);
    silentLog.info({ events: 1800, seconds, perSecond: Math.round(1800 / seconds) }, 'tracker throughput');
    expect(seconds).toBeLessThan(30);
  });
});
