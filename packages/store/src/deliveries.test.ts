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

  it('when a split message has a second part (a released quarantine part), then that part gets its own routing decision, once', async () => {
    const messageId = randomUUID();
    const whole = await repo.createForMessage(messageId, [newDelivery(messageId, 'whole:25/10')]);
    expect(whole.created).toBe(true);
    // The part is routed although the message has rows; routed again (a second release), nothing new.
    const part = await repo.createForMessage(messageId, [newDelivery(messageId, 'part:25/10')], 'quarantine');
    const again = await repo.createForMessage(messageId, [newDelivery(messageId, 'part-again:25/10')], 'quarantine');
    expect([part.created, again.created]).toEqual([true, false]);
    expect(again.deliveries.map((d) => d.id)).toEqual(part.deliveries.map((d) => d.id));
    // The whole message is still routed once, whatever its parts did.
    expect((await repo.createForMessage(messageId, [newDelivery(messageId, 'whole-again:25/10')])).created).toBe(false);
    expect((await repo.forMessage(messageId)).map((d) => d.destination).sort()).toEqual(['part:25/10', 'whole:25/10']);
    expect((await repo.forMessage(messageId, '')).map((d) => d.destination)).toEqual(['whole:25/10']);
    expect((await repo.forMessage(messageId, 'quarantine')).map((d) => d.destination)).toEqual(['part:25/10']);
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

  it('when many attempts are claimed in one batch, then each is claimed once under the single-claim conditions and answered in order', async () => {
    const store = new MessageStore(db, { currentId: 'k1', keys: new Map([['k1', randomBytes(32)]]) });
    const ids: string[] = [];
    const raws: Buffer[] = [];
    const refs: Awaited<ReturnType<MessageStore['put']>>[] = [];
    for (let i = 0; i < 4; i++) {
      const messageId = randomUUID();
      const receivedAt = new Date();
      const raw = Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
      refs.push(await store.put({ id: messageId, tenantId: randomUUID(), receivedAt, sha256: '0'.repeat(64), raw }));
      const { deliveries } = await repo.createForMessage(messageId, [{ ...newDelivery(messageId, `many${i}:25/10`), receivedAt }]);
      ids.push(deliveries[0]!.id);
      raws.push(raw);
    }
    // ids[2] is already claimed by someone else; ids[3] is asked for a wrong attempt.
    expect(await repo.claim(ids[2]!, 1, 60_000)).not.toBeNull();
    const claimed = await repo.claimManyWithBody([
      { id: ids[1]!, attempt: 1, leaseMs: 60_000 },
      { id: ids[0]!, attempt: 1, leaseMs: 60_000 },
      { id: ids[1]!, attempt: 1, leaseMs: 60_000 },
      { id: ids[2]!, attempt: 1, leaseMs: 60_000 },
      { id: ids[3]!, attempt: 2, leaseMs: 60_000 },
      { id: randomUUID(), attempt: 1, leaseMs: 60_000 },
    ]);
    expect(claimed.map((c) => c?.delivery.id ?? null)).toEqual([ids[1], ids[0], null, null, null, null]);
    expect(claimed[0]).toMatchObject({ delivery: { status: 'sending', attempt: 1 } });
    expect(store.openRow(refs[1]!, claimed[0]!.body!).equals(raws[1]!)).toBe(true);
    expect(store.openRow(refs[0]!, claimed[1]!.body!).equals(raws[0]!)).toBe(true);
    expect((await repo.claimManyWithBody([{ id: ids[0]!, attempt: 1, leaseMs: 60_000 }]))[0]).toBeNull();
    expect((await repo.claimManyWithBody([]))).toEqual([]);
  });

  it('when two batches claim overlapping attempts at once, then every attempt is claimed exactly once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const messageId = randomUUID();
      const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, `race${i}:25/10`)]);
      ids.push(deliveries[0]!.id);
    }
    const batch = (order: string[]) => repo.claimManyWithBody(order.map((id) => ({ id, attempt: 1, leaseMs: 60_000 })));
    // Opposite orders: rows are locked in id order, so the batches wait for each other, never deadlock.
    const results = await Promise.all([batch(ids), batch([...ids].reverse()), batch(ids.filter((_, i) => i % 2 === 0)), ...ids.map((id) => batch([id]))]);
    const winners = results.flat().filter((c) => c !== null).map((c) => c.delivery.id);
    expect(winners.sort()).toEqual([...ids].sort());
  });

  it('when outcomes are recorded in one batch, then only attempts still claimed get theirs', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const messageId = randomUUID();
      const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, `rec${i}:25/10`)]);
      ids.push(deliveries[0]!.id);
    }
    await repo.claim(ids[0]!, 1, 60_000);
    await repo.claim(ids[1]!, 1, 60_000);
    const result = (id: string) => ({
      deliveryId: id,
      attempt: 1,
      messageId: randomUUID(),
      tenantId: randomUUID(),
      pool: 'default',
      destination: 'rec:25/10',
      sourceIp: null,
      remoteHost: 'rec:25',
      tls: false,
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      recipients: [{ rcpt: 'u@x.example', outcome: 'delivered' as const, reply: { code: 250, enhanced: null, text: 'ok' } }],
      error: null,
    });
    const recorded = await repo.recordOutcomes([
      { id: ids[1]!, attempt: 1, result: result(ids[1]!) },
      { id: ids[2]!, attempt: 1, result: result(ids[2]!) },
      { id: ids[0]!, attempt: 2, result: { ...result(ids[0]!), attempt: 2 } },
      { id: ids[0]!, attempt: 1, result: result(ids[0]!) },
    ]);
    expect(recorded).toEqual([true, false, false, true]);
    expect((await repo.get(ids[1]!))?.outcome).toMatchObject({ attempt: 1, result: { deliveryId: ids[1], remoteHost: 'rec:25' } });
    expect((await repo.get(ids[2]!))?.outcome).toBeNull();
  });

  it('when results are read and applied in one batch, then each applies once (a duplicate in or across batches changes nothing)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const messageId = randomUUID();
      const { deliveries } = await repo.createForMessage(messageId, [newDelivery(messageId, `res${i}:25/10`)]);
      ids.push(deliveries[0]!.id);
    }
    const later = new Date(Date.now() + 60_000);
    const deferred = { rcpts: ['u@x.example'], status: 'deferred' as const, nextAttempt: true, nextAttemptAt: later, lastError: 'later' };
    const done = { rcpts: [], status: 'done' as const, nextAttempt: false, nextAttemptAt: null, lastError: null };
    const missing = randomUUID();
    expect((await repo.getMany([ids[1]!, missing, ids[1]!])).map((d) => d?.id ?? null)).toEqual([ids[1], null, ids[1]]);
    const applied = await repo.applyResults([
      { id: ids[0]!, attempt: 1, change: deferred },
      { id: ids[0]!, attempt: 1, change: deferred },
      { id: ids[1]!, attempt: 1, change: done },
      { id: ids[2]!, attempt: 3, change: done },
    ]);
    expect(applied).toEqual([true, false, true, false]);
    expect(await repo.get(ids[0]!)).toMatchObject({ attempt: 2, status: 'deferred', lastError: 'later', nextAttemptAt: later, rcpts: ['u@x.example'] });
    expect(await repo.get(ids[1]!)).toMatchObject({ attempt: 1, status: 'done', rcpts: [], lastError: null, nextAttemptAt: null });
    expect(await repo.get(ids[2]!)).toMatchObject({ attempt: 1, status: 'queued' });
    // The same results again, concurrently and in other batches: nothing applies.
    const again = await Promise.all([repo.applyResults([{ id: ids[0]!, attempt: 1, change: deferred }, { id: ids[1]!, attempt: 1, change: done }]), repo.applyResult(ids[0]!, 1, deferred)]);
    expect(again).toEqual([[false, false], false]);
  });

  it('when many messages are routed in one batch (one of them twice, one already routed), then each gets exactly one routing decision, answered in order', async () => {
    const [m1, m2, m3] = [randomUUID(), randomUUID(), randomUUID()];
    const before = await repo.createForMessage(m3, [newDelivery(m3, 'pre:25/10')]);
    const answers = await repo.createForMessages([
      { messageId: m1, rows: [newDelivery(m1, 'b1:25/10'), newDelivery(m1, 'b2:25/10')] },
      { messageId: m2, rows: [newDelivery(m2, 'b3:25/10')] },
      { messageId: m1, rows: [newDelivery(m1, 'other:25/10')] },
      { messageId: m3, rows: [newDelivery(m3, 'changed:25/10')] },
    ]);
    expect(answers.map((a) => a.created)).toEqual([true, true, false, false]);
    expect(answers[0]!.deliveries.map((d) => d.destination).sort()).toEqual(['b1:25/10', 'b2:25/10']);
    expect(answers[2]!.deliveries.map((d) => d.id).sort()).toEqual(answers[0]!.deliveries.map((d) => d.id).sort());
    expect(answers[3]!.deliveries.map((d) => d.id)).toEqual(before.deliveries.map((d) => d.id));
    expect(answers[1]!.deliveries).toMatchObject([{ messageId: m2, status: 'queued', attempt: 1, leaseUntil: null }]);
    expect((await repo.forMessage(m1)).map((d) => d.destination).sort()).toEqual(['b1:25/10', 'b2:25/10']);
  });

  it('when batches route overlapping messages at once (in opposite orders, and alongside single routings), then every message is routed once', async () => {
    const ids = Array.from({ length: 12 }, () => randomUUID());
    const batch = (order: string[]) => repo.createForMessages(order.map((m) => ({ messageId: m, rows: [newDelivery(m, `${randomUUID()}:25/10`)] })));
    const [a, b, ...singles] = await Promise.all([batch(ids), batch([...ids].reverse()), ...ids.map((m) => repo.createForMessage(m, [newDelivery(m, `${randomUUID()}:25/10`)]))]);
    for (const [i, m] of ids.entries()) {
      const answers = [a![i]!, b![ids.length - 1 - i]!, singles[i]! as { created: boolean; deliveries: { id: string }[] }];
      expect(answers.filter((x) => x.created)).toHaveLength(1);
      const rows = await repo.forMessage(m);
      expect(rows).toHaveLength(1);
      for (const x of answers) expect(x.deliveries.map((d) => d.id)).toEqual([rows[0]!.id]);
    }
  });
});
