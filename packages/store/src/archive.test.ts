import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { ArchiveRepository, type ArchiveEntryInput } from './index.js';

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

function entry(subject: string | null, rcpts: string[] = ['bob@customer.test']): ArchiveEntryInput {
  return {
    messageId: randomUUID(),
    tenantId: randomUUID(),
    receivedAt: new Date().toISOString(),
    direction: 'inbound',
    mailFrom: 'a@sender.test',
    rcpts,
    fromHeader: 'A <a@sender.test>',
    toHeader: null,
    subject,
    dateHeader: null,
    messageIdHeader: '<x@sender.test>',
    size: 42,
    verdict: 'deliver',
  };
}

describe('ArchiveRepository.recordMany', () => {
  it('when several entries are recorded, then one statement stores each as given, recipient lists of any length included', async () => {
    const repo = new ArchiveRepository(pool);
    const entries = [entry('one', ['x@c.test', 'y@c.test', 'z@c.test']), entry(null, []), entry('three, with "quotes" and {braces}', ['only@c.test'])];
    expect(await repo.recordMany(entries)).toEqual([true, true, true]);
    for (const e of entries) {
      const got = await repo.get(e.tenantId, e.messageId);
      expect(got).toMatchObject({ ...e, archivedAt: expect.any(String) });
    }
  });

  it('when some entries already exist or repeat within the batch, then only the first new one reports true and nothing is overwritten', async () => {
    const repo = new ArchiveRepository(pool);
    const old = entry('old');
    await repo.recordMany([old]);
    const fresh = entry('fresh');
    const results = await repo.recordMany([{ ...old, subject: 'changed' }, fresh, { ...fresh, subject: 'again' }]);
    expect(results).toEqual([false, true, false]);
    expect((await repo.get(old.tenantId, old.messageId))!.subject).toBe('old');
    expect((await repo.get(fresh.tenantId, fresh.messageId))!.subject).toBe('fresh');
  });

  it('when an entry holds data Postgres refuses, then the whole statement fails with a class 22 SQLSTATE and stores nothing', async () => {
    const repo = new ArchiveRepository(pool);
    const good = entry('good');
    await expect(repo.recordMany([good, entry('nul \0 byte')])).rejects.toMatchObject({ code: expect.stringMatching(/^22/) });
    expect(await repo.get(good.tenantId, good.messageId)).toBeNull();
  });

  it('when nothing is given, then nothing is sent', async () => {
    expect(await new ArchiveRepository(pool).recordMany([])).toEqual([]);
  });
});
