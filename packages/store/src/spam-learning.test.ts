import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { ArchiveRepository, keyringFromConfig, MessageStore, QuarantineRepository, SpamLearningRepository, type PendingSpamFeedback } from './index.js';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let repo: SpamLearningRepository;
let archive: ArchiveRepository;
let store: MessageStore;

beforeAll(async () => {
  t = await createTestEnv();
  pool = testPool(t);
  repo = new SpamLearningRepository(pool);
  archive = new ArchiveRepository(pool);
  store = new MessageStore(pool, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
});
afterAll(async () => {
  await pool.end();
  await t.cleanup();
});

/** A delivered message in the tenant's LiveArchive, its body in the store (unless `body` is false). */
async function archived(tenantId: string, opts: { body?: boolean; direction?: 'inbound' | 'outbound' } = {}): Promise<{ messageId: string; receivedAt: string }> {
  const messageId = randomUUID();
  const receivedAt = new Date().toISOString();
  const raw = Buffer.from('Subject: rates\r\n\r\nrefinance\r\n');
  if (opts.body !== false) await store.put({ id: messageId, tenantId, receivedAt: new Date(receivedAt), sha256: createHash('sha256').update(raw).digest('hex'), raw });
  await archive.record({
    messageId,
    tenantId,
    receivedAt,
    direction: opts.direction ?? 'inbound',
    mailFrom: 'dana@partner.example',
    rcpts: ['bob@customer.example'],
    fromHeader: null,
    toHeader: null,
    subject: 'rates',
    dateHeader: null,
    messageIdHeader: null,
    size: raw.length,
    verdict: 'deliver',
  });
  return { messageId, receivedAt };
}

const label = (tenantId: string, m: { messageId: string; receivedAt: string }, l: 'spam' | 'ham', actor = 'k/1') =>
  repo.record({ tenantId, messageId: m.messageId, storeReceivedAt: m.receivedAt, label: l, source: 'api', actor });

/**
 * One batch with a plan written out by hand: each row of a message in `hashes` learned (first
 * label) with those token hashes. (The filter's planTraining decides this in production.)
 */
async function learnFirst(hashes: Record<string, string[]>): Promise<number> {
  return repo.trainBatch(100, async (rows) => {
    const tokenDeltas = rows.flatMap((r) => (hashes[r.messageId] ?? []).map((tokenHash) => ({ tenantId: r.tenantId, tokenHash, spam: r.label === 'spam' ? 1 : 0, ham: r.label === 'ham' ? 1 : 0 })));
    const totals = rows.map((r) => ({ tenantId: r.tenantId, spam: r.label === 'spam' ? 1 : 0, ham: r.label === 'ham' ? 1 : 0 }));
    return {
      tokenDeltas: sumBy(tokenDeltas, (d) => `${d.tenantId}/${d.tokenHash}`),
      totalDeltas: sumBy(totals, (d) => d.tenantId),
      learned: rows.map((r) => ({ messageId: r.messageId, tenantId: r.tenantId, label: r.label, tokenHashes: hashes[r.messageId] ?? [], feedbackId: r.id })),
      stamps: rows.map((r) => ({ id: r.id, outcome: 'learned' as const, detail: null })),
    };
  });
}

function sumBy<T extends { spam: number; ham: number }>(items: T[], key: (t: T) => string): T[] {
  const out = new Map<string, T>();
  for (const i of items) {
    const k = key(i);
    const m = out.get(k);
    out.set(k, m ? { ...m, spam: m.spam + i.spam, ham: m.ham + i.ham } : { ...i });
  }
  return [...out.values()];
}

/** One batch that moves a learned message's tokens to the other label (what a relabel plans). */
async function relabel(): Promise<PendingSpamFeedback[]> {
  let seen: PendingSpamFeedback[] = [];
  await repo.trainBatch(100, async (rows) => {
    seen = rows;
    const moves = rows.filter((r) => r.learned && r.learned.label !== r.label);
    const delta = (r: PendingSpamFeedback) => ({ spam: r.label === 'spam' ? 1 : -1, ham: r.label === 'ham' ? 1 : -1 });
    return {
      tokenDeltas: moves.flatMap((r) => r.learned!.tokenHashes.map((tokenHash) => ({ tenantId: r.tenantId, tokenHash, ...delta(r) }))),
      totalDeltas: moves.map((r) => ({ tenantId: r.tenantId, ...delta(r) })),
      learned: moves.map((r) => ({ messageId: r.messageId, tenantId: r.tenantId, label: r.label, tokenHashes: r.learned!.tokenHashes, feedbackId: r.id })),
      stamps: rows.map((r) => ({ id: r.id, outcome: 'relabelled' as const, detail: null })),
    };
  });
  return seen;
}

describe('SpamLearningRepository', () => {
  it('when a tenant labels its own message, then the target is found; another tenant’s message is not', async () => {
    const a = randomUUID();
    const m = await archived(a);
    expect(await repo.target(a, m.messageId)).toEqual({
      messageId: m.messageId,
      tenantId: a,
      storeReceivedAt: m.receivedAt,
      direction: 'inbound',
      quarantine: null,
      bodyStored: true,
      learnedLabel: null,
      latestLabel: null,
    });
    expect(await repo.target(randomUUID(), m.messageId)).toBeNull();
    const gone = await archived(a, { body: false });
    expect((await repo.target(a, gone.messageId))!.bodyStored).toBe(false);
  });

  it('when a quarantined message is labelled, then its quarantine category and state come with the target', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    const quarantine = new QuarantineRepository(pool);
    await pool.query(
      `INSERT INTO quarantine (message_id, tenant_id, store_received_at, received_at, direction, mail_from, rcpts, size, category, reasons, score, expires_at)
       VALUES ($1, $2, $3, $3, 'inbound', 'x@y.example', '{}', 1, 'spam', '{}', 6, now() + interval '1 day')`,
      [m.messageId, tenantId, m.receivedAt],
    );
    expect((await repo.target(tenantId, m.messageId))!.quarantine).toEqual({ category: 'spam', state: 'quarantined' });
    // The quarantine's not-spam goes through the same log.
    expect(await quarantine.recordFeedback({ tenantId, messageId: m.messageId, storeReceivedAt: m.receivedAt, label: 'ham', source: 'quarantine', actor: 'k/1' })).toBe(true);
    expect((await repo.target(tenantId, m.messageId))!.latestLabel).toBe('ham');
  });

  it('when the same label is given twice, then it is recorded once; spam then ham then spam records three', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    expect(await label(tenantId, m, 'spam')).toEqual({ recorded: true, previous: null });
    expect(await label(tenantId, m, 'spam')).toEqual({ recorded: false, previous: 'spam' });
    expect(await label(tenantId, m, 'ham')).toEqual({ recorded: true, previous: 'spam' });
    expect(await label(tenantId, m, 'spam')).toEqual({ recorded: true, previous: 'ham' });
    expect((await repo.feedback(tenantId, { limit: 10 })).map((f) => f.label)).toEqual(['spam', 'ham', 'spam']);
  });

  it('when the same label is given twice at once, then it is recorded once', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    const outcomes = await Promise.all([label(tenantId, m, 'spam'), label(tenantId, m, 'spam'), label(tenantId, m, 'spam')]);
    expect(outcomes.filter((o) => o.recorded)).toHaveLength(1);
  });

  it('when labels are trained, then counts and totals follow; a relabel moves them; relabelling back restores them; only asked tokens come back', async () => {
    const tenantId = randomUUID();
    const other = randomUUID();
    const m1 = await archived(tenantId);
    const m2 = await archived(tenantId);
    const o1 = await archived(other);
    const hashes: Record<string, string[]> = { [m1.messageId]: ['1', '2'], [m2.messageId]: ['2', '-9223372036854775808'], [o1.messageId]: ['1'] };
    await label(tenantId, m1, 'spam');
    await label(tenantId, m2, 'spam');
    await label(other, o1, 'ham');
    // (Rows other tests left pending are taken too: the trainer works across tenants.)
    expect(await learnFirst(hashes)).toBeGreaterThanOrEqual(3);
    expect(await repo.tokenCounts(tenantId, ['1', '2', '-9223372036854775808', '3'])).toEqual({
      nSpam: 2,
      nHam: 0,
      tokens: new Map([
        ['1', { spam: 1, ham: 0 }],
        ['2', { spam: 2, ham: 0 }],
        ['-9223372036854775808', { spam: 1, ham: 0 }],
      ]),
    });
    // Only the tokens asked for come back.
    expect(await repo.tokenCounts(tenantId, ['2'])).toEqual({ nSpam: 2, nHam: 0, tokens: new Map([['2', { spam: 2, ham: 0 }]]) });
    // The other tenant's counts are its own.
    expect(await repo.tokenCounts(other, ['1', '2'])).toEqual({ nSpam: 0, nHam: 1, tokens: new Map([['1', { spam: 0, ham: 1 }]]) });

    await label(tenantId, m1, 'ham');
    const rows = await relabel();
    // The trainer is handed what the message contributed, to reverse it without the body.
    expect(rows.filter((r) => r.tenantId === tenantId)).toEqual([expect.objectContaining({ messageId: m1.messageId, label: 'ham', learned: { label: 'spam', tokenHashes: ['1', '2'] } })]);
    expect(await repo.tokenCounts(tenantId, ['1', '2'])).toEqual({ nSpam: 1, nHam: 1, tokens: new Map([['1', { spam: 0, ham: 1 }], ['2', { spam: 1, ham: 1 }]]) });
    await label(tenantId, m1, 'spam');
    await relabel();
    expect(await repo.tokenCounts(tenantId, ['1', '2'])).toEqual({ nSpam: 2, nHam: 0, tokens: new Map([['1', { spam: 1, ham: 0 }], ['2', { spam: 2, ham: 0 }]]) });
    expect(await repo.summary(tenantId)).toEqual(expect.objectContaining({ nSpam: 2, nHam: 0, tokens: 3, pending: 0, untrainable: 0 }));
    expect((await repo.feedback(tenantId, { messageId: m1.messageId, limit: 10 })).map((f) => f.outcome)).toEqual(['relabelled', 'relabelled', 'learned']);
    expect((await repo.target(tenantId, m1.messageId))!.learnedLabel).toBe('spam');
  });

  it('when a relabel empties a token, then its row is deleted', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    await label(tenantId, m, 'spam');
    await learnFirst({ [m.messageId]: ['42'] });
    // A hand-made plan that takes the token away entirely: the row goes.
    await pool.query(`INSERT INTO spam_feedback (tenant_id, message_id, store_received_at, label, source, actor) VALUES ($1, $2, $3, 'ham', 'api', 'k/1')`, [tenantId, m.messageId, m.receivedAt]);
    await repo.trainBatch(10, async (rows) => ({
      tokenDeltas: [{ tenantId, tokenHash: '42', spam: -1, ham: 0 }],
      totalDeltas: [{ tenantId, spam: -1, ham: 0 }],
      learned: [],
      stamps: rows.map((r) => ({ id: r.id, outcome: 'relabelled' as const, detail: null })),
    }));
    const left = await pool.query('SELECT count(*)::int AS n FROM spam_tenant_tokens WHERE tenant_id = $1', [tenantId]);
    expect(left.rows[0].n).toBe(0);
    // No totals left: the tenant counts as having learned nothing.
    expect(await repo.tokenCounts(tenantId, ['42'])).toBeNull();
  });

  it('when the plan fails midway, then nothing is counted and the rows stay pending (trained again later)', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    await label(tenantId, m, 'spam');
    await expect(repo.trainBatch(10, async () => Promise.reject(new Error('store unreachable')))).rejects.toThrow(/store unreachable/);
    expect((await repo.summary(tenantId)).pending).toBe(1);
    expect(await repo.tokenCounts(tenantId, ['1'])).toBeNull();
  });

  it('when a message has spam and then ham waiting, then two trainers at once train them in order, never both at once', async () => {
    const tenantId = randomUUID();
    const m = await archived(tenantId);
    await label(tenantId, m, 'spam');
    await label(tenantId, m, 'ham');
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const seen: PendingSpamFeedback[][] = [];
    // The first trainer holds the spam row while the second looks: it must not take the ham row.
    const first = repo.trainBatch(10, async (rows) => {
      seen.push(rows);
      await held;
      return { tokenDeltas: [], totalDeltas: [], learned: [], stamps: rows.map((r) => ({ id: r.id, outcome: 'untrainable' as const, detail: 'test' })) };
    });
    await new Promise((r) => setTimeout(r, 200));
    const second = await repo.trainBatch(10, async (rows) => {
      seen.push(rows);
      return { tokenDeltas: [], totalDeltas: [], learned: [], stamps: rows.map((r) => ({ id: r.id, outcome: 'untrainable' as const, detail: 'test' })) };
    });
    release();
    await first;
    expect(seen[0]!.filter((r) => r.messageId === m.messageId).map((r) => r.label)).toEqual(['spam']);
    expect(second).toBe(seen.length > 1 ? seen[1]!.length : 0);
    expect((seen[1] ?? []).filter((r) => r.messageId === m.messageId)).toEqual([]);
    // Then the ham row is next.
    const after = await repo.trainBatch(10, async (rows) => {
      seen.push(rows);
      return { tokenDeltas: [], totalDeltas: [], learned: [], stamps: rows.map((r) => ({ id: r.id, outcome: 'untrainable' as const, detail: 'test' })) };
    });
    expect(after).toBeGreaterThanOrEqual(1);
    expect(seen[seen.length - 1]!.filter((r) => r.messageId === m.messageId).map((r) => r.label)).toEqual(['ham']);
  });
});
