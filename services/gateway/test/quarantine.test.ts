import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { keyringFromConfig, MessageStore, previewKeyringFromConfig, QuarantineRepository, sealPreview, type QuarantineCategory, type QuarantineInput } from '@moat/store';
import { createTestEnv, eventually, silentLog, tapEvents, testPool, type EventTap, type TestEnv } from '@moat/testkit';
import { configSchema, start, type GatewayService } from '../src/index.js';
import { releaseEventId } from '../src/quarantine-release.js';
import { type Answer, apiCaller } from './support/api.js';

// The quarantine API against the real Postgres and RabbitMQ: the test plays the archive (writes
// quarantine rows, with previews sealed as the filter seals them) and watches what the gateway
// publishes. (End to end, with delivery: tests/quarantine.test.ts.)

let t: TestEnv;
let gateway: GatewayService;
let db: pg.Pool;
let base: string;
let operator: string;
let quarantine: QuarantineRepository;
let store: MessageStore;
let tap: EventTap;
const previewKey = randomBytes(32).toString('base64');
const previewKeyring = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: previewKey, MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })!;


const call = apiCaller(() => base, () => operator);

function expectProblem(res: Answer, status: number, detail?: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  if (detail) expect(res.body.detail).toMatch(detail);
}

let n = 0;
async function tenantWithKey(scopes: string[]): Promise<{ tenantId: string; key: string }> {
  n++;
  const tenant = await call('POST', '/api/v1/tenants', { body: { name: `Quarantine ${n}` } });
  expect(tenant.status).toBe(201);
  const key = await call('POST', `/api/v1/tenants/${tenant.body.id}/api-keys`, { body: { name: `admin${n}`, scopes } });
  expect(key.status).toBe(201);
  return { tenantId: tenant.body.id, key: key.body.key };
}

/** A quarantined message as the archive records it, its body in the store. */
async function quarantined(tenantId: string, opts: { category?: QuarantineCategory; subject?: string; rcpts?: string[]; preview?: boolean } = {}): Promise<QuarantineInput> {
  const messageId = randomUUID();
  const receivedAt = new Date().toISOString();
  const subject = opts.subject ?? `Offer ${n}`;
  const raw = Buffer.from(`Subject: ${subject}\r\n\r\nCheap watches\r\n`);
  await store.put({ id: messageId, tenantId, receivedAt: new Date(receivedAt), sha256: createHash('sha256').update(raw).digest('hex'), raw });
  const rcpts = opts.rcpts ?? ['bob@customer.test'];
  const category = opts.category ?? 'spam';
  const reasons = [category === 'virus' ? 'virus: Eicar-Test-Signature' : `${category}: score 14`];
  const input: QuarantineInput = {
    messageId,
    tenantId,
    storeReceivedAt: receivedAt,
    receivedAt,
    direction: 'inbound',
    mailFrom: 'eve@sender.test',
    rcpts,
    fromHeader: 'Eve <eve@sender.test>',
    toHeader: rcpts.join(', '),
    subject,
    size: raw.length,
    category,
    reasons,
    score: 14,
    retentionDays: 30,
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
      prependHeaders: 'Received: from h\r\nAuthentication-Results: mx; none\r\nX-Moat-Verdict: quarantine\r\n',
      receivedAt,
      verdict: 'quarantine',
      score: 14,
      reasons,
      checks: [],
      authResults: 'mx; none',
      headers: { from: 'Eve <eve@sender.test>', to: null, subject, date: null, messageIdHeader: null },
    },
    preview: opts.preview === false ? null : sealPreview(previewKeyring, messageId, { text: 'Cheap watches', truncated: false, source: 'text', attachments: [] }),
  };
  expect(await quarantine.record(input)).toBe(true);
  return input;
}

const releasesOf = (messageId: string) => tap.events.filter((e) => e.event.type === 'message.filtered' && e.event.payload.messageId === messageId);

beforeAll(async () => {
  t = await createTestEnv();
  const config = loadConfig(configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1', MOAT_QUARANTINE_PREVIEW_KEY: previewKey });
  // Least privilege: the preview key, never the master key.
  expect('MOAT_MASTER_KEY' in config).toBe(false);
  gateway = await start(config, silentLog);
  base = `http://127.0.0.1:${gateway.httpPort}`;
  operator = t.env.MOAT_BOOTSTRAP_TOKEN!;
  db = testPool(t);
  quarantine = new QuarantineRepository(db);
  store = new MessageStore(db, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
  tap = await tapEvents(t.env, ['message.filtered', 'message.event']);
});

afterAll(async () => {
  await tap?.close();
  await gateway?.stop();
  await db?.end();
  await t?.cleanup();
});

describe('quarantine API: list and preview', () => {
  it('when a tenant lists its quarantine, then it sees its messages with reasons, per mailbox, category and words, and pages', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:read']);
    const a = await quarantined(tenantId, { subject: 'Cheap watches', rcpts: ['alice@customer.test'] });
    const b = await quarantined(tenantId, { subject: 'Invoice', category: 'virus', rcpts: ['bob@customer.test'] });
    const list = await call('GET', `/api/v1/tenants/${tenantId}/quarantine`, { token: key });
    expect(list.status).toBe(200);
    expect(list.body.items.map((i: any) => i.messageId)).toEqual([b.messageId, a.messageId]);
    expect(list.body.items[0]).toMatchObject({ category: 'virus', reasons: ['virus: Eicar-Test-Signature'], state: 'quarantined', rcpts: ['bob@customer.test'], hasPreview: true });
    const mailbox = await call('GET', `/api/v1/tenants/${tenantId}/quarantine?rcpt=ALICE@customer.test`, { token: key });
    expect(mailbox.body.items.map((i: any) => i.messageId)).toEqual([a.messageId]);
    expect((await call('GET', `/api/v1/tenants/${tenantId}/quarantine?category=virus`, { token: key })).body.items.map((i: any) => i.messageId)).toEqual([b.messageId]);
    expect((await call('GET', `/api/v1/tenants/${tenantId}/quarantine?q=cheap`, { token: key })).body.items.map((i: any) => i.messageId)).toEqual([a.messageId]);
    const page1 = await call('GET', `/api/v1/tenants/${tenantId}/quarantine?limit=1`, { token: key });
    expect(page1.body.items).toHaveLength(1);
    const page2 = await call('GET', `/api/v1/tenants/${tenantId}/quarantine?limit=1&before=${page1.body.next}`, { token: key });
    expect(page2.body.items.map((i: any) => i.messageId)).toEqual([a.messageId]);
    expect(page2.body.next).toBeNull();
    expectProblem(await call('GET', `/api/v1/tenants/${tenantId}/quarantine?category=bulk`, { token: key }), 400, /category/);
  });

  it('when one message is opened, then its text preview comes with it and the view is audited', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:read']);
    const q = await quarantined(tenantId);
    const res = await call('GET', `/api/v1/quarantine/${q.messageId}`, { token: key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ messageId: q.messageId, preview: { text: 'Cheap watches', source: 'text', truncated: false }, previewUnavailable: null });
    const audit = await db.query("SELECT actor, action FROM audit_log WHERE target = $1 AND action = 'quarantine.view'", [q.messageId]);
    expect(audit.rows).toEqual([{ actor: expect.stringMatching(/^admin/), action: 'quarantine.view' }]);
    const none = await quarantined(tenantId, { preview: false });
    expect((await call('GET', `/api/v1/quarantine/${none.messageId}`, { token: key })).body).toMatchObject({ preview: null, previewUnavailable: expect.stringMatching(/no preview was made/) });
  });

  it('when a key lacks quarantine:read, then listing is forbidden', async () => {
    const { tenantId, key } = await tenantWithKey(['messages:read']);
    expectProblem(await call('GET', `/api/v1/tenants/${tenantId}/quarantine`, { token: key }), 403, /quarantine:read/);
  });
});

describe('quarantine API: tenant isolation', () => {
  it('when another tenant asks for, releases or deletes a message, then it does not exist for it (404) and nothing is published', async () => {
    const owner = await tenantWithKey(['quarantine:read']);
    const other = await tenantWithKey(['*']);
    const q = await quarantined(owner.tenantId);
    expectProblem(await call('GET', `/api/v1/quarantine/${q.messageId}`, { token: other.key }), 404);
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: other.key }), 404);
    expectProblem(await call('DELETE', `/api/v1/quarantine/${q.messageId}`, { token: other.key }), 404);
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: other.key }), 404);
    expectProblem(await call('GET', `/api/v1/tenants/${owner.tenantId}/quarantine`, { token: other.key }), 404);
    expect((await quarantine.get(q.messageId))!.state).toBe('quarantined');
    await new Promise((r) => setTimeout(r, 300));
    expect(releasesOf(q.messageId)).toHaveLength(0);
  });
});

describe('quarantine API: release', () => {
  it('when a spam message is released twice at once, then it is released once and both answers name the same release event', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:read', 'quarantine:write']);
    const q = await quarantined(tenantId);
    const [r1, r2] = await Promise.all([call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: key }), call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: key })]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    expect([r1.body.alreadyDone, r2.body.alreadyDone].sort()).toEqual([false, true]);
    expect(r1.body).toMatchObject({ state: 'released', stateChangedBy: expect.stringMatching(/^admin/) });
    const published = await eventually(() => (releasesOf(q.messageId).length === 2 ? releasesOf(q.messageId) : null), 5_000);
    // Both publishes are one event: same id, same payload (the router delivers it once).
    expect(published.map((e) => e.event.id)).toEqual([releaseEventId(q.messageId), releaseEventId(q.messageId)]);
    expect(published[0]!.event.payload).toEqual(published[1]!.event.payload);
    // Stamped with the release time, not the publish time: a late re-publish never moves tracking back.
    expect(published.map((e) => e.event.occurredAt)).toEqual([r1.body.stateChangedAt, r1.body.stateChangedAt]);
    const p = published[0]!.event.payload;
    expect(p.verdict).toBe('deliver');
    expect(p.release).toEqual({ by: r1.body.stateChangedBy, at: r1.body.stateChangedAt });
    expect(p.reasons).toEqual([...q.reasons, `released from quarantine by ${r1.body.stateChangedBy}`]);
    expect(p.prependHeaders).toMatch(/^Received: from h\r\nAuthentication-Results: mx; none\r\nX-Moat-Verdict: deliver\r\nX-Moat-Released: .+ by admin.+\r\n$/);
    expect(p.preview).toBeUndefined();
    const audit = await db.query("SELECT count(*)::int AS n FROM audit_log WHERE target = $1 AND action = 'quarantine.release'", [q.messageId]);
    expect(audit.rows[0].n).toBe(2);
  });

  it('when a virus is released with a key without quarantine:release-dangerous, then it is refused (403) and stays; with it, it is released', async () => {
    const plain = await tenantWithKey(['quarantine:read', 'quarantine:write']);
    const q = await quarantined(plain.tenantId, { category: 'virus' });
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: plain.key }), 403, /quarantine:release-dangerous/);
    expect((await quarantine.get(q.messageId))!.state).toBe('quarantined');
    const admin = await call('POST', `/api/v1/tenants/${plain.tenantId}/api-keys`, { body: { name: 'tenant-admin', scopes: ['quarantine:write', 'quarantine:release-dangerous'] } });
    expect(admin.status).toBe(201);
    const released = await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: admin.body.key });
    expect(released.status).toBe(200);
    expect(released.body.state).toBe('released');
  });

  it('when spoofing is released without the dangerous scope, then it is refused too', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:write']);
    const q = await quarantined(tenantId, { category: 'spoofing' });
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: key }), 403, /spoofing/);
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: key }), 403, /release-dangerous/);
  });
});

describe('quarantine API: delete', () => {
  it('when a message is deleted, then its body is gone, tracking hears the fate, and release is refused (409)', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:read', 'quarantine:write']);
    const q = await quarantined(tenantId);
    const res = await call('DELETE', `/api/v1/quarantine/${q.messageId}`, { token: key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ state: 'deleted', alreadyDone: false, hasPreview: false });
    expect((await db.query('SELECT 1 FROM messages WHERE id = $1', [q.messageId])).rowCount).toBe(0);
    const fate = await eventually(() => tap.events.find((e) => e.event.type === 'message.event' && e.event.payload.messageId === q.messageId), 5_000);
    expect(fate.event.payload).toMatchObject({ kind: 'failed', rcpt: q.rcpts, detail: { reason: expect.stringMatching(/^deleted from quarantine by admin/) } });
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: key }), 409, /deleted/);
    expect((await call('GET', `/api/v1/quarantine/${q.messageId}`, { token: key })).body).toMatchObject({ state: 'deleted', preview: null, previewUnavailable: expect.stringMatching(/deleted/) });
    // Listed among the deleted, not among those waiting.
    expect((await call('GET', `/api/v1/tenants/${tenantId}/quarantine`, { token: key })).body.items).toHaveLength(0);
    expect((await call('GET', `/api/v1/tenants/${tenantId}/quarantine?state=deleted`, { token: key })).body.items).toHaveLength(1);
  });

  it('when a released message is deleted, then it is refused (409): it is on its way', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:write']);
    const q = await quarantined(tenantId);
    expect((await call('POST', `/api/v1/quarantine/${q.messageId}/release`, { token: key })).status).toBe(200);
    expectProblem(await call('DELETE', `/api/v1/quarantine/${q.messageId}`, { token: key }), 409, /released/);
  });
});

describe('quarantine API: not spam', () => {
  it('when a message is marked not spam, then the feedback is recorded once and the message released', async () => {
    const { tenantId, key } = await tenantWithKey(['quarantine:write']);
    const q = await quarantined(tenantId);
    const res = await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: key });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ state: 'released', feedbackRecorded: true, alreadyDone: false });
    const again = await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: key, body: { release: true } });
    expect(again.body).toMatchObject({ state: 'released', feedbackRecorded: false, alreadyDone: true });
    expect(await quarantine.pendingFeedback(tenantId)).toEqual([expect.objectContaining({ messageId: q.messageId, label: 'ham' })]);
  });

  it('when marked not spam without release, then only the feedback is recorded; a virus is never not-spam (409)', async () => {
    const { tenantId, key } = await tenantWithKey(['*']);
    const q = await quarantined(tenantId);
    const res = await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: key, body: { release: false } });
    expect(res.body).toMatchObject({ state: 'quarantined', feedbackRecorded: true });
    const virus = await quarantined(tenantId, { category: 'virus' });
    expectProblem(await call('POST', `/api/v1/quarantine/${virus.messageId}/not-spam`, { token: key }), 409, /virus/);
    expectProblem(await call('POST', `/api/v1/quarantine/${q.messageId}/not-spam`, { token: key, body: { release: 'yes' } }), 400, /release/);
  });
});
