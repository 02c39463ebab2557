import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { DeliveryRepository, type NewDelivery } from './deliveries.js';
import { MessageStore } from './message-store.js';

let t: TestEnv;
let db: ReturnType<typeof testPool>;
let repo: DeliveryRepository;

beforeAll(async () => {
  t = await createTestEnv();
  db = testPool(t);
  repo = new DeliveryRepository(db);
}, 60_000);

afterAll(async () => {
  await db?.end();
  await t?.cleanup();
});

function newDelivery(messageId: string, destination: string): NewDelivery {
  return {
    id: randomUUID(),
    messageId,
    tenantId: randomUUID(),
    receivedAt: new Date(),
    pool: 'default',
    destination,
    routes: [{ host: '127.0.0.1', port: 25, priority: 10 }],
    mailFrom: 's@outside.test',
    rcpts: ['u@x.example'],
    prependHeaders: '',
    size: 10,
  };
}

describe('DeliveryRepository', () => {
  it('when a message is routed twice (even concurrently), then only the first routing decision is kept', async () => {
    const messageId = randomUUID();
    const [a, b] = await Promise.all([
      repo.createForMessage(messageId, [newDelivery(messageId, 'one:25/10')]),
      repo.createForMessage(messageId, [newDelivery(messageId, 'other:25/10'), newDelivery(messageId, 'third:25/10')]),
    ]);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    const rows = await repo.forMessage(messageId);
    expect(rows.length === 1 || rows.length === 2).toBe(true);
    expect(rows.map((r) => r.id).sort()).toEqual((a.created ? a : b).deliveries.map((r) => r.id).sort());
    // First attempts are written 'queued' (the router publishes them right away, no lease).
    expect(rows.every((r) => r.status === 'queued' && r.attempt === 1 && r.leaseUntil === null)).toBe(true);
  });

  it('when two senders claim the same attempt at once, then exactly one gets it', async () => {
    const messageId = randomUUID();
    const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, 'claim:25/10')]);
    const id = deliveries[0]!.id;
    const claims = await Promise.all(Array.from({ length: 8 }, () => repo.claim(id, 1, 60_000)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await repo.claim(id, 2, 60_000)).toBeNull();
  });

  it('when a sender claims with the body, then it gets the sealed message once, or null for the body when the message is gone', async () => {
    const store = new MessageStore(db, { currentId: 'k1', keys: new Map([['k1', randomBytes(32)]]) });
    const messageId = randomUUID();
    const receivedAt = new Date();
    const raw = Buffer.from('Subject: hi\r\n\r\nbody\r\n');
    const ref = await store.put({ id: messageId, tenantId: randomUUID(), receivedAt, sha256: '0'.repeat(64), raw });
    const { deliveries } = await repo.createForMessage(messageId, [{ ...newDelivery(messageId, 'body:25/10'), receivedAt }]);
    const id = deliveries[0]!.id;
    const claimed = await repo.claimWithBody(id, 1, 60_000);
    expect(claimed?.delivery).toMatchObject({ id, attempt: 1, status: 'sending' });
    expect(store.openRow(ref, claimed!.body!).equals(raw)).toBe(true);
    expect(await repo.claimWithBody(id, 1, 60_000)).toBeNull();

    const gone = randomUUID();
    const { deliveries: goneRows } = await repo.createForMessage(gone, [newDelivery(gone, 'gone:25/10')]);
    const claimedGone = await repo.claimWithBody(goneRows[0]!.id, 1, 60_000);
    expect(claimedGone).toMatchObject({ delivery: { status: 'sending' }, body: null });
  });

  it('when an attempt has a recorded outcome, then it cannot be claimed again even after its lease ran out', async () => {
    const messageId = randomUUID();
    const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, 'outcome:25/10')]);
    const id = deliveries[0]!.id;
    expect(await repo.claim(id, 1, 60_000)).not.toBeNull();
    const result = {
      deliveryId: id,
      attempt: 1,
      messageId,
      tenantId: deliveries[0]!.tenantId,
      pool: 'default',
      destination: 'outcome:25/10',
      sourceIp: null,
      remoteHost: 'outcome:25',
      tls: false,
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      recipients: [{ rcpt: 'u@x.example', outcome: 'delivered' as const, reply: { code: 250, enhanced: null, text: 'ok' } }],
      error: null,
    };
    expect(await repo.recordOutcome(id, 1, result)).toBe(true);
    await db.query(`UPDATE deliveries SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);
    expect(await repo.claim(id, 1, 60_000)).toBeNull();
    // The scheduler keeps the attempt (to re-report it) instead of starting a new one.
    const stale = await repo.takeExpiredSending(100, 30_000);
    const mine = stale.find((d) => d.id === id);
    expect(mine).toMatchObject({ status: 'sending', attempt: 1, outcome: { attempt: 1, result } });
  });

  it('when several schedulers take due retries at once, then no row is taken twice', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const messageId = randomUUID();
      const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, `due${i}:25/10`)]);
      ids.push(deliveries[0]!.id);
    }
    await db.query(`UPDATE deliveries SET status = 'deferred', attempt = 2, lease_until = NULL, next_attempt_at = now() - interval '1 second' WHERE id = ANY($1)`, [ids]);
    const takes = await Promise.all(Array.from({ length: 4 }, () => repo.takeDueRetries(10, 30_000)));
    const taken = takes.flat().map((d) => d.id);
    expect(new Set(taken).size).toBe(taken.length);
    expect(takes.flat().every((d) => d.status === 'publishing' && d.attempt === 2)).toBe(true);
  });

  it('when a result is applied twice, then only the first changes the row', async () => {
    const messageId = randomUUID();
    const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, 'apply:25/10')]);
    const id = deliveries[0]!.id;
    const change = { rcpts: ['u@x.example'], status: 'deferred' as const, nextAttempt: true, nextAttemptAt: new Date(Date.now() + 60_000), lastError: 'later' };
    expect(await repo.applyResult(id, 1, change)).toBe(true);
    expect(await repo.applyResult(id, 1, change)).toBe(false);
    expect(await repo.get(id)).toMatchObject({ attempt: 2, status: 'deferred', lastError: 'later', leaseUntil: null });
  });
});
