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
});
