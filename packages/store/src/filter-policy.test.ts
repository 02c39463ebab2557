import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MoatError } from '@moat/runtime';
import { createTestEnv, testPool, type TestEnv } from '@moat/testkit';
import { defaultFilterPolicy, FilterPolicyRepository } from './filter-policy.js';
import { TenantRepository } from './tenants.js';

let t: TestEnv;
let db: ReturnType<typeof testPool>;
let repo: FilterPolicyRepository;
let tenants: TenantRepository;
let n = 0;

beforeAll(async () => {
  t = await createTestEnv();
  db = testPool(t);
  repo = new FilterPolicyRepository(db);
  tenants = new TenantRepository(db);
}, 60_000);

afterAll(async () => {
  await db?.end();
  await t?.cleanup();
});

async function tenant(): Promise<{ id: string; domain: string }> {
  n++;
  const created = await tenants.createTenant({ name: `policy ${n}` });
  const domain = `fp${n}-${t.id}.example`;
  await tenants.createDomain(created.id, { name: domain, routes: [{ host: '127.0.0.1', port: 25, priority: 10 }] });
  return { id: created.id, domain };
}

describe('FilterPolicyRepository', () => {
  it('when a tenant has no row, then the filter reads the defaults, no entries and its domains', async () => {
    const { id, domain } = await tenant();
    expect(await repo.settingsFor(id)).toEqual({ policy: defaultFilterPolicy, entries: [], domains: [domain] });
  });

  it('when a policy and entries are written, then the filter reads them in one query, entries oldest first, values normalised', async () => {
    const { id } = await tenant();
    const policy = { spamTagScore: 2.5, subjectTag: '[SPAM]', quarantineScore: 6, rejectScore: 12, dmarc: 'honour' as const, scannerUnavailable: 'deliver' as const, quarantineDigests: false };
    expect(await repo.setPolicy(id, policy)).toEqual(policy);
    const a = await repo.addEntry(id, { mailbox: null, list: 'block', kind: 'ip', value: '2001:DB8::/32' });
    const b = await repo.addEntry(id, { mailbox: 'U@X.example', list: 'allow', kind: 'address', value: 'News@Shop.Example' });
    const settings = await repo.settingsFor(id);
    expect(settings.policy).toEqual(policy);
    expect(settings.entries).toEqual([a, b]);
    expect(b).toMatchObject({ mailbox: 'u@x.example', value: 'news@shop.example' });
    expect(a.value).toBe('2001:db8::/32');
  });

  it('when the scores are out of order, then the schema refuses them (VALIDATION_FAILED)', async () => {
    const { id } = await tenant();
    const err = await repo.setPolicy(id, { ...defaultFilterPolicy, quarantineScore: 8, rejectScore: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoatError);
    expect((err as MoatError).code).toBe('VALIDATION_FAILED');
  });

  it('when the same entry is added twice, then CONFLICT; deleting it returns it once', async () => {
    const { id } = await tenant();
    const e = await repo.addEntry(id, { mailbox: null, list: 'block', kind: 'domain', value: 'spam.example' });
    const err = await repo.addEntry(id, { mailbox: null, list: 'block', kind: 'domain', value: 'SPAM.example.' }).catch((x: unknown) => x);
    expect((err as MoatError).code).toBe('CONFLICT');
    expect(await repo.deleteEntry(e.id)).toEqual(e);
    expect(await repo.deleteEntry(e.id)).toBeNull();
  });
});
