import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { defaultFilterPolicy, DigestRepository, FilterPolicyRepository, keyringFromConfig, MessageStore, QuarantineRepository, TenantRepository } from './index.js';

// The per-tenant digest switch (tenant_filter_policies.quarantine_digests) as the digest job sees
// it: which mailboxes have news, and what a mailbox's digest lists after digests come back on.

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let digests: DigestRepository;
let policies: FilterPolicyRepository;
let quarantine: QuarantineRepository;
let tenants: TenantRepository;
let store: MessageStore;
let n = 0;

beforeAll(async () => {
  t = await createTestEnv();
  pool = testPool(t);
  digests = new DigestRepository(pool);
  policies = new FilterPolicyRepository(pool);
  quarantine = new QuarantineRepository(pool);
  tenants = new TenantRepository(pool);
  store = new MessageStore(pool, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await t?.cleanup();
});

async function tenant(): Promise<{ id: string; mailbox: string }> {
  n++;
  const created = await tenants.createTenant({ name: `digests ${n}` });
  const domain = `dg${n}-${t.id}.example`;
  await tenants.createDomain(created.id, { name: domain, routes: [{ host: '127.0.0.1', port: 25, priority: 10 }] });
  return { id: created.id, mailbox: `bob@${domain}` };
}

/** One spam message quarantined now for the mailbox; its id. */
async function spamFor(tenantId: string, mailbox: string): Promise<string> {
  const messageId = randomUUID();
  const receivedAt = new Date().toISOString();
  const raw = Buffer.from('Subject: cheap watches\r\n\r\nbody\r\n');
  await store.put({ id: messageId, tenantId, receivedAt: new Date(receivedAt), sha256: createHash('sha256').update(raw).digest('hex'), raw });
  const recorded = await quarantine.record({
    messageId,
    tenantId,
    storeReceivedAt: receivedAt,
    receivedAt,
    direction: 'inbound',
    mailFrom: 'eve@sender.test',
    rcpts: [mailbox],
    fromHeader: 'Eve <eve@sender.test>',
    toHeader: null,
    subject: 'cheap watches',
    size: raw.length,
    category: 'spam',
    reasons: ['spam: score 12'],
    score: 12,
    retentionDays: 30,
    payload: {
      messageId,
      tenantId,
      direction: 'inbound',
      store: { messageId, receivedAt },
      mailFrom: 'eve@sender.test',
      rcptTo: [mailbox],
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
      headers: { from: null, to: null, subject: 'cheap watches', date: null, messageIdHeader: null },
    },
    preview: null,
  });
  expect(recorded).toBe(true);
  return messageId;
}

const soon = () => new Date(Date.now() + 60_000);
async function mailboxesWithNews(): Promise<string[]> {
  return (await digests.mailboxesWithNews(soon(), new Date(), 10_000)).map((m) => m.mailbox);
}

describe('per-tenant quarantine digests', () => {
  it('when a tenant turns digests off, then its mailboxes get none and another tenant’s still do; back on, only mail quarantined since is listed', async () => {
    const a = await tenant();
    const b = await tenant();
    const before = await spamFor(a.id, a.mailbox);
    await spamFor(b.id, b.mailbox);
    // On by default: a tenant with no policy row, and the default policy.
    expect(await mailboxesWithNews()).toEqual(expect.arrayContaining([a.mailbox, b.mailbox]));
    expect((await policies.getPolicy(a.id)).quarantineDigests).toBe(true);

    expect(await policies.setPolicy(a.id, { ...defaultFilterPolicy, quarantineDigests: false })).toMatchObject({ quarantineDigests: false });
    const off = await mailboxesWithNews();
    expect(off).not.toContain(a.mailbox);
    expect(off).toContain(b.mailbox);
    // A replica that listed the mailbox just before the switch makes nothing.
    let ran = false;
    expect(await digests.withMailbox({ tenantId: a.id, mailbox: a.mailbox }, async () => (ran = true))).toBeNull();
    expect(ran).toBe(false);

    await policies.setPolicy(a.id, { ...defaultFilterPolicy, quarantineDigests: true });
    // What waited while digests were off is not sent now.
    expect(await mailboxesWithNews()).not.toContain(a.mailbox);
    const after = await spamFor(a.id, a.mailbox);
    expect(await mailboxesWithNews()).toContain(a.mailbox);
    const listed = await digests.withMailbox({ tenantId: a.id, mailbox: a.mailbox }, (tx) => tx.newItems(soon(), new Date(), 100));
    expect(listed!.items.map((i) => i.messageId)).toEqual([after]);
    expect(listed!.total).toBe(1);
    expect(before).not.toBe(after);
  });

  it('when a policy is written again with digests still on, then the start of listing does not move', async () => {
    const a = await tenant();
    await policies.setPolicy(a.id, { ...defaultFilterPolicy, quarantineDigests: true });
    const first = await spamFor(a.id, a.mailbox);
    await policies.setPolicy(a.id, { ...defaultFilterPolicy, quarantineDigests: true, spamTagScore: 3 });
    const listed = await digests.withMailbox({ tenantId: a.id, mailbox: a.mailbox }, (tx) => tx.newItems(soon(), new Date(), 100));
    expect(listed!.items.map((i) => i.messageId)).toEqual([first]);
  });
});
