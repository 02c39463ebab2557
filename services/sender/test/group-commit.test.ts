import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DeliveryResultPayload } from '@moat/contracts';
import { DeliveryRepository, type NewDelivery } from '@moat/store';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { BatchedDeliveries } from '../src/batched-deliveries.js';

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

async function queued(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const messageId = randomUUID();
    const row: NewDelivery = {
      id: randomUUID(),
      messageId,
      tenantId: randomUUID(),
      receivedAt: new Date(),
      pool: 'default',
      destination: `gc${i}:25/10`,
      routes: [{ host: '127.0.0.1', port: 25, priority: 10 }],
      mailFrom: 's@outside.test',
      rcpts: ['u@x.example'],
      prependHeaders: '',
      size: 10,
    };
    const { deliveries } = await repo.createForMessage(messageId, [row]);
    ids.push(deliveries[0]!.id);
  }
  return ids;
}

function resultOf(id: string): DeliveryResultPayload {
  const now = new Date().toISOString();
  return {
    deliveryId: id,
    attempt: 1,
    messageId: randomUUID(),
    tenantId: randomUUID(),
    pool: 'default',
    destination: 'gc:25/10',
    sourceIp: null,
    remoteHost: 'gc:25',
    tls: false,
    startedAt: now,
    finishedAt: now,
    recipients: [{ rcpt: 'u@x.example', outcome: 'delivered', reply: { code: 250, enhanced: null, text: 'ok' } }],
    error: null,
  };
}

describe('sender group commit', () => {
  it('when many requests claim and record outcomes at once, then they share statements and each gets its own answer', async () => {
    const ids = await queued(16);
    const batched = new BatchedDeliveries(repo, { maxItems: 32 });
    const query = vi.spyOn(db, 'query');
    try {
      const claims = await Promise.all(ids.map((id) => batched.claimWithBody(id, 1, 60_000)));
      expect(claims.map((c) => c?.delivery.id)).toEqual(ids);
      expect(claims.every((c) => c?.delivery.status === 'sending' && c.body === null)).toBe(true);
      // An idle batcher sends the first item at once; everything that arrived meanwhile goes together.
      expect(query.mock.calls.length).toBeLessThanOrEqual(2);

      query.mockClear();
      const recorded = await Promise.all(ids.map((id) => batched.recordOutcome(id, 1, resultOf(id))));
      expect(recorded.every(Boolean)).toBe(true);
      expect(query.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      query.mockRestore();
      await batched.close();
    }
    const rows = await Promise.all(ids.map((id) => repo.get(id)));
    expect(rows.every((r, i) => r?.outcome?.attempt === 1 && r.outcome.result.deliveryId === ids[i])).toBe(true);
  });

  it('when the same attempt is claimed many times at once (in one batch and across senders), then exactly one claim succeeds', async () => {
    const [id] = await queued(1);
    const a = new BatchedDeliveries(repo, { maxItems: 32 });
    const b = new BatchedDeliveries(repo, { maxItems: 32 });
    try {
      const claims = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).claimWithBody(id!, 1, 60_000)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      // Outcomes: the claim holder records once; a stale attempt records nothing.
      const recorded = await Promise.all([a.recordOutcome(id!, 1, resultOf(id!)), b.recordOutcome(id!, 1, resultOf(id!)), a.recordOutcome(id!, 2, { ...resultOf(id!), attempt: 2 })]);
      expect(recorded.filter(Boolean)).toHaveLength(2);
      expect(recorded[2]).toBe(false);
      // Once the outcome is recorded the attempt is never claimed again, even after its lease ran out.
      await db.query(`UPDATE deliveries SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);
      expect(await Promise.all([a.claimWithBody(id!, 1, 60_000), b.claimWithBody(id!, 1, 60_000)])).toEqual([null, null]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('when a batcher is closed, then the claims queued before it are written first', async () => {
    const ids = await queued(4);
    const batched = new BatchedDeliveries(repo, { maxItems: 32 });
    const pending = ids.map((id) => batched.claimWithBody(id, 1, 60_000));
    await batched.close();
    expect((await Promise.all(pending)).every((c) => c?.delivery.status === 'sending')).toBe(true);
  });
});
