import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DeliveryRepository, type NewDelivery, type ResultApplication } from '@moat/store';
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
      destination: `rgc${i}:25/10`,
      routes: [{ host: '127.0.0.1', port: 25, priority: 10 }],
      mailFrom: 's@outside.test',
      rcpts: ['a@x.example', 'b@x.example'],
      prependHeaders: '',
      size: 10,
    };
    const { deliveries } = await repo.createForMessage(messageId, [row]);
    ids.push(deliveries[0]!.id);
  }
  return ids;
}

const retry = (): ResultApplication => ({ rcpts: ['b@x.example'], status: 'deferred', nextAttempt: true, nextAttemptAt: new Date(Date.now() + 60_000), lastError: '451 later' });

describe('router group commit', () => {
  it('when many results are read and applied at once, then they share statements and each gets its own answer', async () => {
    const ids = await queued(16);
    const batched = new BatchedDeliveries(repo, { maxItems: 64 });
    const query = vi.spyOn(db, 'query');
    try {
      const rows = await Promise.all([...ids, randomUUID()].map((id) => batched.get(id)));
      expect(rows.map((r) => r?.id ?? null)).toEqual([...ids, null]);
      expect(query.mock.calls.length).toBeLessThanOrEqual(2);

      query.mockClear();
      const applied = await Promise.all(ids.map((id, i) => batched.applyResult(id, 1, i % 2 === 0 ? retry() : { rcpts: [], status: 'done', nextAttempt: false, nextAttemptAt: null, lastError: null })));
      expect(applied.every(Boolean)).toBe(true);
      expect(query.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      query.mockRestore();
      await batched.close();
    }
    const after = await repo.getMany(ids);
    after.forEach((r, i) => expect(r).toMatchObject(i % 2 === 0 ? { attempt: 2, status: 'deferred', rcpts: ['b@x.example'], lastError: '451 later' } : { attempt: 1, status: 'done', rcpts: [] }));
  });

  it('when the same result is applied many times at once (in one batch and across routers), then exactly one applies', async () => {
    const [id] = await queued(1);
    const a = new BatchedDeliveries(repo, { maxItems: 64 });
    const b = new BatchedDeliveries(repo, { maxItems: 64 });
    try {
      const applied = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).applyResult(id!, 1, retry())));
      expect(applied.filter(Boolean)).toHaveLength(1);
      expect(await repo.get(id!)).toMatchObject({ attempt: 2, status: 'deferred' });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('when many messages are routed at once, then their routing decisions share statements and a message routed twice keeps its first decision', async () => {
    const messages = Array.from({ length: 16 }, () => randomUUID());
    const row = (messageId: string, destination: string): NewDelivery => ({
      id: randomUUID(),
      messageId,
      tenantId: randomUUID(),
      receivedAt: new Date(),
      pool: 'default',
      destination,
      routes: [{ host: '127.0.0.1', port: 25, priority: 10 }],
      mailFrom: 's@outside.test',
      rcpts: ['a@x.example'],
      prependHeaders: '',
      size: 10,
    });
    const batched = new BatchedDeliveries(repo, { maxItems: 64 });
    const query = vi.spyOn(db, 'query');
    try {
      const answers = await Promise.all([...messages, messages[0]!].map((m, i) => batched.createForMessage(m, [row(m, `route${i}:25/10`)])));
      expect(query.mock.calls.length).toBeLessThanOrEqual(2);
      expect(answers.filter((a) => a.created)).toHaveLength(16);
      expect(answers[16]!.created).toBe(false);
      expect(answers[16]!.deliveries.map((d) => d.id)).toEqual(answers[0]!.deliveries.map((d) => d.id));
      answers.slice(0, 16).forEach((a, i) => expect(a.deliveries).toMatchObject([{ messageId: messages[i], destination: `route${i}:25/10`, status: 'queued' }]));
    } finally {
      query.mockRestore();
      await batched.close();
    }
  });
});
