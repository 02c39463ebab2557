import { randomUUID, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { keyringFromConfig, MessageStore } from './index.js';
import { randomBytes } from 'node:crypto';

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

describe('MessageStore', () => {
  const keyring = () => keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' });

  it('when a body is stored, then it reads back byte for byte and is not stored in clear', async () => {
    const store = new MessageStore(pool, keyring());
    const raw = Buffer.from('Subject: secret words\r\n\r\nthe launch code is 1234\r\n');
    const id = randomUUID();
    const ref = await store.put({ id, tenantId: randomUUID(), receivedAt: new Date(), sha256: createHash('sha256').update(raw).digest('hex'), raw });
    expect((await store.get(ref)).equals(raw)).toBe(true);
    const row = await pool.query('SELECT body FROM messages WHERE id = $1', [id]);
    expect(row.rows[0].body.includes(Buffer.from('launch code'))).toBe(false);
  });

  it('when the master key differs, then reading fails as DECRYPT_FAILED instead of returning garbage', async () => {
    const store = new MessageStore(pool, keyring());
    const raw = Buffer.from('hello');
    const ref = await store.put({ id: randomUUID(), tenantId: randomUUID(), receivedAt: new Date(), sha256: 'x', raw });
    const other = new MessageStore(pool, keyringFromConfig({ MOAT_MASTER_KEY: randomBytes(32).toString('base64'), MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
    await expect(other.get(ref)).rejects.toMatchObject({ code: 'DECRYPT_FAILED' });
  });

  it('when a key was rotated, then messages sealed under the previous key still open', async () => {
    const oldKey = t.env.MOAT_MASTER_KEY!;
    const raw = Buffer.from('rotated');
    const ref = await new MessageStore(pool, keyring()).put({ id: randomUUID(), tenantId: randomUUID(), receivedAt: new Date(), sha256: 'x', raw });
    const rotated = keyringFromConfig({ MOAT_MASTER_KEY: randomBytes(32).toString('base64'), MOAT_MASTER_KEY_ID: 'k2', MOAT_PREVIOUS_MASTER_KEYS: `k1:${oldKey}` });
    expect((await new MessageStore(pool, rotated).get(ref)).toString()).toBe('rotated');
  });
  it('when several bodies are stored with putMany, then one statement stores them all, each sealed with its own data key', async () => {
    let statements = 0;
    const counting = { query: (...args: unknown[]) => (statements++, (pool.query as (...a: unknown[]) => unknown)(...args)) } as unknown as typeof pool;
    const store = new MessageStore(counting, keyring());
    const day = new Date(Date.now() - 86_400_000);
    const msgs = [0, 1, 2].map((n) => {
      const raw = Buffer.concat([Buffer.from(`Subject: ${n}\r\n\r\n`), randomBytes(100 + n)]);
      return { id: randomUUID(), tenantId: randomUUID(), receivedAt: n === 2 ? day : new Date(), sha256: createHash('sha256').update(raw).digest('hex'), raw };
    });
    const refs = await store.putMany(msgs);
    expect(statements).toBe(1);
    expect(refs).toEqual(msgs.map((m) => ({ messageId: m.id, receivedAt: m.receivedAt.toISOString() })));
    for (const [i, ref] of refs.entries()) expect((await store.get(ref)).equals(msgs[i]!.raw)).toBe(true);
    const rows = await pool.query('SELECT id, size, sha256, tenant_id, wrapped_key FROM messages WHERE id = ANY($1::uuid[])', [msgs.map((m) => m.id)]);
    expect(rows.rows).toHaveLength(3);
    for (const row of rows.rows) {
      const m = msgs.find((x) => x.id === row.id)!;
      expect([row.size, row.sha256, row.tenant_id]).toEqual([m.raw.length, m.sha256, m.tenantId]);
    }
    expect(new Set(rows.rows.map((r) => (r.wrapped_key as Buffer).toString('hex'))).size).toBe(3);
    // A retried id is left as it is (ON CONFLICT DO NOTHING), alongside a new one.
    const again = { ...msgs[0]!, id: randomUUID() };
    await store.putMany([msgs[0]!, again]);
    expect((await pool.query('SELECT count(*) AS n FROM messages WHERE id = ANY($1::uuid[])', [[msgs[0]!.id, again.id]])).rows[0].n).toBe('2');
    expect(await store.putMany([])).toEqual([]);
  });
});
