import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { borderlineMessage, createTestEnv, CustomerServer, eventually, sendSmtp, tapEvents, testPool, type EventTap, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';
import { checkNamed, filteredFor, headerOf, uniq } from './support/spam-engines.js';

// Per-tenant learning end to end (issue 5: "per-tenant training changes that tenant's verdict and
// no other tenant's"): two tenants receive the same borderline message over real SMTP; the filter
// delivers it to both, tagged unsure. Tenant A marks a few such messages as spam through the API;
// the filter's trainer (every 200 ms here) learns them; the next such message to A is quarantined
// and B's is still delivered unsure. A then changes its mind (not spam): the trainer reverses what
// it learned, and A's next one is delivered again.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let tap: EventTap;
let db: ReturnType<typeof testPool>;
const customer = new CustomerServer();
const tenants: Record<'a' | 'b', { id: string; domain: string; key: ApiClient }> = {} as never;

const client = (token: string) => new ApiClient(`http://127.0.0.1:${stack.httpPort}`, token);

async function keyFor(tenantId: string, scopes: string[]): Promise<ApiClient> {
  const res = await api.request('POST', `/api/v1/tenants/${tenantId}/api-keys`, { name: `k${uniq()}`, scopes });
  expect(res.status).toBe(201);
  return client(res.body.key as string);
}

let sent = 0;
/** Sends the borderline message to a new mailbox of the tenant; returns Moat's message id and the filter's verdict. */
async function sendBorderline(to: 'a' | 'b'): Promise<{ messageId: string; rcpt: string; verdict: string; spam: { result: string; reason: string } }> {
  const rcpt = `user${uniq()}@${tenants[to].domain}`;
  const res = await sendSmtp({ port: stack.smtpPort, from: 'dana@partner.example', to: [rcpt], raw: borderlineMessage({ to: rcpt, n: ++sent }) });
  expect(res.code).toBe(250);
  const messageId = /queued as ([0-9a-f-]{36})/.exec(res.response)![1]!;
  const payload = await filteredFor(tap, messageId);
  return { messageId, rcpt, verdict: payload.verdict, spam: checkNamed(payload, 'spam')! };
}

async function trained(tenant: 'a' | 'b', expected: { nSpam: number; nHam: number }): Promise<void> {
  await eventually(async () => {
    const res = await tenants[tenant].key.request('GET', `/api/v1/tenants/${tenants[tenant].id}/spam-learning`);
    return res.status === 200 && res.body.pending === 0 && res.body.nSpam === expected.nSpam && res.body.nHam === expected.nHam;
  }, 20_000);
}

beforeAll(async () => {
  await customer.start();
  t = await createTestEnv({ MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0', MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS: '200', MOAT_FILTER_SPAM_TENANT_CACHE_MS: '0' });
  tap = await tapEvents(t.env, ['message.filtered']);
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  db = testPool(t);
  for (const name of ['a', 'b'] as const) {
    const domain = `learn${name}${uniq()}.example`;
    const { tenantId } = await api.provision(`Learning ${name}`, [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    tenants[name] = { id: tenantId, domain, key: await keyFor(tenantId, ['spam-feedback:read', 'spam-feedback:write', 'archive:read', 'quarantine:read', 'quarantine:write']) };
  }
}, 120_000);

afterAll(async () => {
  await tap?.close();
  await stack?.stop();
  await db?.end();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('per-tenant spam learning (end to end)', () => {
  const labelled: string[] = [];
  let quarantined = { messageId: '', rcpt: '' };

  it('when both tenants receive the borderline message, then both get it delivered, tagged unsure', async () => {
    for (const to of ['a', 'b'] as const) {
      const out = await sendBorderline(to);
      expect(out.verdict).toBe('deliver');
      expect(out.spam.result).toBe('neutral');
      expect(out.spam.reason).toMatch(/^unsure: /);
      // No tenant counts yet: the reason names none.
      expect(out.spam.reason).not.toMatch(/tenant=/);
      await eventually(() => customer.transactions.some((tx) => headerOf(tx.data, 'X-Moat-Spam-Status')?.startsWith('unsure') && tx.rcptTo[0]!.endsWith(tenants[to].domain)), 20_000);
      if (to === 'a') labelled.push(out.messageId);
    }
  }, 60_000);

  it('when another tenant or a key without the scope labels A’s message, then it is refused and nothing is recorded', async () => {
    const messageId = labelled[0]!;
    // B's own key on B's path, and on A's path: A's message does not exist for B.
    expect((await tenants.b.key.request('POST', `/api/v1/tenants/${tenants.b.id}/spam-feedback`, { messageId, label: 'spam' })).status).toBe(404);
    expect((await tenants.b.key.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId, label: 'spam' })).status).toBe(404);
    const readOnly = await keyFor(tenants.a.id, ['spam-feedback:read']);
    const refused = await readOnly.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId, label: 'spam' });
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/spam-feedback:write/);
    const bad = await tenants.a.key.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId, label: 'junk' });
    expect(bad.status).toBe(400);
    expect((await tenants.a.key.request('GET', `/api/v1/tenants/${tenants.a.id}/spam-feedback`)).body.items).toEqual([]);
  }, 30_000);

  it('when A marks a few such messages as spam, then A’s next one is quarantined and B’s is still delivered unsure', async () => {
    for (let i = 0; i < 2; i++) labelled.push((await sendBorderline('a')).messageId);
    for (const messageId of labelled) {
      const res = await tenants.a.key.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId, label: 'spam' });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ messageId, tenantId: tenants.a.id, label: 'spam', previousLabel: null, recorded: true });
    }
    // A repeated click records nothing.
    const again = await tenants.a.key.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId: labelled[0], label: 'spam' });
    expect(again.body).toMatchObject({ recorded: false, previousLabel: 'spam' });
    const audit = await db.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'spam.feedback' AND target = ANY($1)`, [labelled]);
    expect(audit.rows[0].n).toBe(labelled.length + 1);

    await trained('a', { nSpam: labelled.length, nHam: 0 });
    const feedback = await tenants.a.key.request('GET', `/api/v1/tenants/${tenants.a.id}/spam-feedback`);
    expect(feedback.body.items.map((f: { outcome: string }) => f.outcome)).toEqual(labelled.map(() => 'learned'));

    const a = await sendBorderline('a');
    expect(a.verdict).toBe('quarantine');
    expect(a.spam.result).toBe('fail');
    expect(a.spam.reason).toMatch(new RegExp(`tenant=${labelled.length}s/0h`));
    await eventually(async () => (await tenants.a.key.request('GET', `/api/v1/quarantine/${a.messageId}`)).status === 200, 20_000);
    quarantined = a;
    expect(customer.transactions.some((tx) => tx.rcptTo.includes(a.rcpt))).toBe(false);

    const b = await sendBorderline('b');
    expect(b.verdict).toBe('deliver');
    expect(b.spam.result).toBe('neutral');
    expect(b.spam.reason).not.toMatch(/tenant=/);
    // B learned nothing.
    expect((await tenants.b.key.request('GET', `/api/v1/tenants/${tenants.b.id}/spam-learning`)).body).toMatchObject({ nSpam: 0, nHam: 0, tokens: 0, pending: 0 });
  }, 90_000);

  it('when A relabels them as not spam and releases the quarantined one as not spam, then the spam it taught is reversed (not added to) and its next one is delivered', async () => {
    for (const messageId of labelled) {
      const res = await tenants.a.key.request('POST', `/api/v1/tenants/${tenants.a.id}/spam-feedback`, { messageId, label: 'ham' });
      expect(res.body).toMatchObject({ recorded: true, previousLabel: 'spam' });
    }
    // The quarantine's not-spam feeds the same trainer (and releases the message).
    const notSpam = await tenants.a.key.request('POST', `/api/v1/quarantine/${quarantined.messageId}/not-spam`);
    expect(notSpam.status).toBe(200);
    expect(notSpam.body).toMatchObject({ feedbackRecorded: true, state: 'released' });
    await trained('a', { nSpam: 0, nHam: labelled.length + 1 });
    await eventually(() => customer.transactions.some((tx) => tx.rcptTo.includes(quarantined.rcpt)), 20_000);
    const items = (await tenants.a.key.request('GET', `/api/v1/tenants/${tenants.a.id}/spam-feedback?messageId=${labelled[0]}`)).body.items;
    expect(items.map((f: { label: string; outcome: string }) => `${f.label}:${f.outcome}`)).toEqual(['ham:relabelled', 'spam:learned']);
    const a = await sendBorderline('a');
    expect(a.verdict).toBe('deliver');
    expect(a.spam.reason).toMatch(new RegExp(`^ham: .*tenant=0s/${labelled.length + 1}h`));
  }, 60_000);
});
