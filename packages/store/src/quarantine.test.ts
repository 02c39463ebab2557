import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { keyringFromConfig, MessageStore, openPreview, previewKeyringFromConfig, QuarantineRepository, sealPreview, type QuarantineCategory, type QuarantineInput, type QuarantinePreview } from './index.js';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let repo: QuarantineRepository;
let store: MessageStore;

beforeAll(async () => {
  t = await createTestEnv();
  pool = testPool(t);
  repo = new QuarantineRepository(pool);
  store = new MessageStore(pool, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
});
afterAll(async () => {
  await pool.end();
  await t.cleanup();
});

/** A quarantined message with its body in the message store. */
async function quarantined(opts: { tenantId?: string; category?: QuarantineCategory; subject?: string; rcpts?: string[]; retentionDays?: number } = {}): Promise<QuarantineInput> {
  const messageId = randomUUID();
  const tenantId = opts.tenantId ?? randomUUID();
  const receivedAt = new Date().toISOString();
  const raw = Buffer.from(`Subject: ${opts.subject ?? 'hello'}\r\n\r\nbody\r\n`);
  await store.put({ id: messageId, tenantId, receivedAt: new Date(receivedAt), sha256: createHash('sha256').update(raw).digest('hex'), raw });
  const rcpts = opts.rcpts ?? ['bob@customer.test'];
  const input: QuarantineInput = {
    messageId,
    tenantId,
    storeReceivedAt: receivedAt,
    receivedAt,
    direction: 'inbound',
    mailFrom: 'eve@sender.test',
    rcpts,
    fromHeader: 'Eve <eve@sender.test>',
    toHeader: null,
    subject: opts.subject ?? 'hello',
    size: raw.length,
    category: opts.category ?? 'spam',
    reasons: [opts.category === 'virus' ? 'virus: Eicar-Test-Signature' : 'spam: score 12'],
    score: 12,
    retentionDays: opts.retentionDays ?? 30,
    payload: {
      messageId,
      tenantId,
      direction: 'inbound',
      store: { messageId, receivedAt },
      mailFrom: 'eve@sender.test',
      rcptTo: rcpts,
      client: { ip: '127.0.0.1', helo: 'h', ptr: null, tls: null },
      size: raw.length,
      sha256: 'a'.repeat(64),
      prependHeaders: 'X-Moat-Verdict: quarantine\r\n',
      receivedAt,
      verdict: 'quarantine',
      score: 12,
      reasons: ['spam: score 12'],
      checks: [],
      authResults: 'mx; none',
      headers: { from: null, to: null, subject: opts.subject ?? 'hello', date: null, messageIdHeader: null },
    },
    preview: null,
  };
  expect(await repo.record(input)).toBe(true);
  return input;
}

async function bodyExists(q: QuarantineInput): Promise<boolean> {
  const res = await pool.query('SELECT 1 FROM messages WHERE id = $1', [q.messageId]);
  return res.rowCount === 1;
}

describe('QuarantineRepository.record', () => {
  it('when a message is recorded twice (a redelivered event), then the second changes nothing', async () => {
    const q = await quarantined({ retentionDays: 30 });
    expect(await repo.record({ ...q, subject: 'changed' })).toBe(false);
    const got = await repo.get(q.messageId);
    expect(got).toMatchObject({ subject: 'hello', state: 'quarantined', category: 'spam', reasons: ['spam: score 12'], score: 12, hasPreview: false });
    expect(got!.payload).toEqual(q.payload);
    const days = (Date.parse(got!.expiresAt) - Date.parse(got!.quarantinedAt)) / 86_400_000;
    expect(days).toBeCloseTo(30, 3);
  });
});

describe('QuarantineRepository.search', () => {
  it('when searched per tenant, per mailbox, per category and by words, then only matching quarantined messages come, newest first, in pages', async () => {
    const tenantId = randomUUID();
    const a = await quarantined({ tenantId, subject: 'Cheap watches', rcpts: ['Alice@Customer.test'] });
    const b = await quarantined({ tenantId, subject: 'Invoice', category: 'virus', rcpts: ['bob@customer.test'] });
    const c = await quarantined({ tenantId, subject: 'Cheap pills 100%', rcpts: ['bob@customer.test', 'alice@customer.test'] });
    await quarantined({ subject: 'Cheap watches' }); // another tenant
    const ids = (rows: Array<{ messageId: string }>) => rows.map((r) => r.messageId);
    expect(ids(await repo.search(tenantId, { limit: 10 }))).toEqual([c.messageId, b.messageId, a.messageId]);
    expect(ids(await repo.search(tenantId, { rcpt: 'alice@customer.TEST', limit: 10 }))).toEqual([c.messageId, a.messageId]);
    expect(ids(await repo.search(tenantId, { category: 'virus', limit: 10 }))).toEqual([b.messageId]);
    expect(ids(await repo.search(tenantId, { q: 'cheap', limit: 10 }))).toEqual([c.messageId, a.messageId]);
    expect(ids(await repo.search(tenantId, { q: '100%', limit: 10 }))).toEqual([c.messageId]);
    expect(ids(await repo.search(tenantId, { q: 'eicar', limit: 10 }))).toEqual([b.messageId]);
    const first = await repo.search(tenantId, { limit: 2 });
    const last = first[first.length - 1]!;
    expect(ids(await repo.search(tenantId, { limit: 2, before: { quarantinedAt: last.quarantinedAt, messageId: last.messageId } }))).toEqual([a.messageId]);
    await repo.release(a.messageId, 'tester');
    expect(ids(await repo.search(tenantId, { limit: 10 }))).toEqual([c.messageId, b.messageId]);
    expect(ids(await repo.search(tenantId, { state: 'released', limit: 10 }))).toEqual([a.messageId]);
  });
});

describe('QuarantineRepository transitions', () => {
  it('when five releases race, then exactly one changes the state and the others see it released', async () => {
    const q = await quarantined();
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => repo.release(q.messageId, `actor${i}`)));
    expect(results.filter((r) => r?.outcome === 'changed')).toHaveLength(1);
    expect(results.filter((r) => r?.outcome === 'unchanged')).toHaveLength(4);
    const got = await repo.get(q.messageId);
    expect(got).toMatchObject({ state: 'released' });
    expect(got!.payload).toEqual(q.payload); // kept: a repeated release re-publishes it
    expect(await bodyExists(q)).toBe(true);
  });

  it('when a release and a delete race, then exactly one wins and the other is refused', async () => {
    const q = await quarantined();
    const [released, deleted] = await Promise.all([repo.release(q.messageId, 'r'), repo.delete(q.messageId, 'd')]);
    const outcomes = [released!.outcome, deleted!.outcome].sort();
    expect(outcomes).toEqual(['changed', 'refused']);
    const state = (await repo.get(q.messageId))!.state;
    expect(await bodyExists(q)).toBe(state === 'released');
  });

  it('when a message is deleted, then its body, payload and preview are gone and a release is refused', async () => {
    const q = await quarantined();
    const deleted = await repo.delete(q.messageId, 'admin/1');
    expect(deleted).toMatchObject({ outcome: 'changed', entry: { state: 'deleted', stateChangedBy: 'admin/1', payload: null } });
    expect(await bodyExists(q)).toBe(false);
    expect((await repo.release(q.messageId, 'x'))!.outcome).toBe('refused');
    expect((await repo.delete(q.messageId, 'x'))!.outcome).toBe('unchanged');
    expect(await repo.release(randomUUID(), 'x')).toBeNull();
  });
});

describe('QuarantineRepository.expireDue', () => {
  it('when retention runs out, then due messages expire and lose their bodies, except one a delivery refers to; others stay', async () => {
    const due = await quarantined({ retentionDays: 1 });
    const delivering = await quarantined({ retentionDays: 1 });
    const kept = await quarantined({ retentionDays: 30 });
    // A delivery row for the message (as if it had been routed): its body must stay.
    await pool.query(
      `INSERT INTO deliveries (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, status)
       VALUES ($1, $2, $3, $4, 'default', 'd', '[]', '', '{x@y.test}', '', 1, 'deferred')`,
      [randomUUID(), delivering.messageId, delivering.tenantId, delivering.storeReceivedAt],
    );
    const inTwoDays = new Date(Date.now() + 2 * 86_400_000);
    // Other test files' rows share nothing with this schema; every due row here is ours.
    expect(await repo.expireDue(inTwoDays)).toBeGreaterThanOrEqual(2);
    expect((await repo.get(due.messageId))).toMatchObject({ state: 'expired', stateChangedBy: 'retention', payload: null, preview: null });
    expect(await bodyExists(due)).toBe(false);
    expect((await repo.get(delivering.messageId))!.state).toBe('expired');
    expect(await bodyExists(delivering)).toBe(true);
    expect((await repo.get(kept.messageId))!.state).toBe('quarantined');
    expect(await bodyExists(kept)).toBe(true);
    expect(await repo.expireDue(inTwoDays)).toBe(0);
  });
});

describe('QuarantineRepository.recordFeedback', () => {
  it('when a message is marked not-spam twice, then one feedback row waits for training', async () => {
    const q = await quarantined();
    const f = { tenantId: q.tenantId, messageId: q.messageId, storeReceivedAt: q.storeReceivedAt, label: 'ham' as const, source: 'quarantine', actor: 'a/1' };
    expect(await repo.recordFeedback(f)).toBe(true);
    expect(await repo.recordFeedback(f)).toBe(false);
    expect(await repo.pendingFeedback(q.tenantId)).toEqual([expect.objectContaining({ messageId: q.messageId, label: 'ham', actor: 'a/1' })]);
  });
});

describe('quarantine previews', () => {
  const keyring = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'), MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })!;
  const preview: QuarantinePreview = { text: 'Hello <b>there</b>', truncated: false, source: 'text', attachments: [{ filename: 'a.pdf', mimeType: 'application/pdf', size: 3 }] };

  it('when a preview is sealed, then it opens for its message only, and not with another key', () => {
    const id = randomUUID();
    const sealed = sealPreview(keyring, id, preview);
    expect(sealed.ciphertext).not.toContain('Hello');
    expect(openPreview(keyring, id, sealed)).toEqual(preview);
    expect(openPreview(keyring, id.toUpperCase(), sealed)).toEqual(preview);
    expect(() => openPreview(keyring, randomUUID(), sealed)).toThrow(/failed authentication/);
    const other = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'), MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })!;
    expect(() => openPreview(other, id, sealed)).toThrow(/failed authentication/);
  });

  it('when the key was rotated, then previews sealed with the previous key still open; without a key there is no keyring', () => {
    const oldKey = randomBytes(32).toString('base64');
    const old = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: oldKey, MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })!;
    const id = randomUUID();
    const sealed = sealPreview(old, id, preview);
    const rotated = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'), MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p2', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: `p1:${oldKey}` })!;
    expect(openPreview(rotated, id, sealed)).toEqual(preview);
    expect(previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })).toBeNull();
  });
});
