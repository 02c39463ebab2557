import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { keyringFromConfig, MessageStore } from './index.js';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;

beforeAll(async () => {
  t = await createTestEnv();
  pool = testPool(t);
});
afterAll(async () => {
  await pool.end();
  await t.cleanup();
});

/** The pool, recording the text of every statement sent through it. */
function countingPool(statements: string[]): typeof pool {
  return new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return (...args: Parameters<typeof pool.query>) => {
          statements.push(String(args[0]));
          return (target.query as (...a: unknown[]) => unknown)(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
}

describe('MessageStore.getMany', () => {
  const keyring = () => keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' });

  it('when several bodies on different days are read, then one statement returns each body in the order asked', async () => {
    const store = new MessageStore(pool, keyring());
    const day = 86_400_000;
    const stored = await Promise.all(
      [0, 1, 2].map((i) => {
        const raw = Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
        return store.put({ id: randomUUID(), tenantId: randomUUID(), receivedAt: new Date(Date.now() - i * day), sha256: createHash('sha256').update(raw).digest('hex'), raw }).then((ref) => ({ ref, raw }));
      }),
    );
    const statements: string[] = [];
    const counted = new MessageStore(countingPool(statements), keyring());
    const order = [stored[2]!, stored[0]!, stored[1]!];
    const reads = await counted.getMany(order.map((s) => s.ref));
    expect(statements).toHaveLength(1);
    expect(reads.map((r) => ('body' in r ? r.body.toString() : r.error.code))).toEqual(order.map((s) => s.raw.toString()));
  });

  it('when one reference points nowhere, then only its result is NOT_FOUND (permanent) and the others read', async () => {
    const store = new MessageStore(pool, keyring());
    const raw = Buffer.from('present');
    const ref = await store.put({ id: randomUUID(), tenantId: randomUUID(), receivedAt: new Date(), sha256: 'x', raw });
    const missing = { messageId: randomUUID(), receivedAt: new Date().toISOString() };
    const reads = await store.getMany([missing, ref]);
    expect(reads).toHaveLength(2);
    expect(reads[0]).toMatchObject({ error: { code: 'NOT_FOUND', permanent: true } });
    expect(reads[1]).toEqual({ body: raw });
  });

  it('when nothing is asked, then no statement is sent', async () => {
    const statements: string[] = [];
    expect(await new MessageStore(countingPool(statements), keyring()).getMany([])).toEqual([]);
    expect(statements).toEqual([]);
  });
});
