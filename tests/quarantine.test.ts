import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import * as gateway from '@moat/gateway';
import { CustomerServer, createTestEnv, eicar, eicarSignature, eventually, makeMessageWithAttachment, sendSmtp, silentLog, startClamd, testPool, type TestClamd, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// The quarantine end to end: a real clamd quarantines EICAR (the quarantine path that exists
// until the spam classifier lands), the archive records it with a sealed preview, and the API on
// two gateway replicas lists, previews, releases (exactly once, even twice at once) and deletes it.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
/** A second gateway on the same stack: the other replica behind the load balancer. */
let replica: gateway.GatewayService;
let replicaApi: ApiClient;
let clamd: TestClamd;
const customer = new CustomerServer();
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;
let tenantId: string;
/** quarantine:read + quarantine:write: a mailbox-level operator, not a tenant admin. */
let plainKey: ApiClient;
/** + quarantine:release-dangerous: a tenant admin. */
let adminKey: ApiClient;
let otherTenant: ApiClient;
let adminToken: string;

function infected(to: string, subject: string): Buffer {
  return makeMessageWithAttachment({
    from: 'alice@sender.example',
    to: [to],
    subject,
    bodyType: 'text/html',
    body: '<p>Please <b>open</b> the invoice.</p><img src="http://tracker.example/pixel.gif"><script>alert(1)</script>',
    attachment: { name: 'invoice.com', content: eicar },
  });
}

const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));

/** A new API key of the tenant: its token. */
async function keyFor(tenant: string, scopes: string[]): Promise<string> {
  const res = await api.request('POST', `/api/v1/tenants/${tenant}/api-keys`, { name: `k${uniq()}`, scopes });
  expect(res.status).toBe(201);
  return res.body.key as string;
}

const client = (token: string, port = stack.httpPort) => new ApiClient(`http://127.0.0.1:${port}`, token);

/** Sends an EICAR message and waits until the quarantine lists it; returns its id. */
async function quarantinedMessage(rcpt: string, subject: string): Promise<string> {
  const sent = await sendSmtp({ port: stack.smtpPort, from: 'alice@sender.example', to: [rcpt], raw: infected(rcpt, subject) });
  expect(sent.code).toBe(250);
  const id = messageIdOf(sent.response);
  await eventually(async () => {
    const res = await api.request('GET', `/api/v1/quarantine/${id}`);
    return res.status === 200;
  }, 20_000);
  return id;
}

beforeAll(async () => {
  await customer.start();
  clamd = await startClamd();
  t = await createTestEnv({ MOAT_CLAMD_ADDRESS: `127.0.0.1:${clamd.port}`, MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  replica = await gateway.start(loadConfig(gateway.configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  domain = `q${uniq()}.example`;
  ({ tenantId } = await api.provision('Quarantine', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]));
  plainKey = client(await keyFor(tenantId, ['quarantine:read', 'quarantine:write', 'messages:read']));
  adminToken = await keyFor(tenantId, ['quarantine:read', 'quarantine:write', 'quarantine:release-dangerous', 'messages:read']);
  adminKey = client(adminToken);
  const other = await api.provision('Other', [{ name: `o${uniq()}.example`, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
  otherTenant = client(await keyFor(other.tenantId, ['*']));
  // The tenant admin's key, through the other replica.
  replicaApi = client(adminToken, replica.httpPort);
}, 120_000);

afterAll(async () => {
  await replica?.stop();
  await stack?.stop();
  await clamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('quarantine (end to end)', () => {
  it('when a virus is quarantined, then the tenant lists it with its reason and a text-only preview; the mailbox filter finds it', async () => {
    const rcpt = `list${uniq()}@${domain}`;
    const subject = `Invoice ${uniq()}`;
    const id = await quarantinedMessage(rcpt, subject);
    const list = await plainKey.request('GET', `/api/v1/tenants/${tenantId}/quarantine?rcpt=${encodeURIComponent(rcpt)}`);
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([
      // The virus reason first; the spam check adds its own (the EICAR file is a .com: an executable attachment).
      expect.objectContaining({ messageId: id, category: 'virus', reasons: [`virus: ${eicarSignature}`, expect.stringMatching(/^spam: .*EXECUTABLE_ATTACHMENT/)], rcpts: [rcpt], subject, state: 'quarantined', hasPreview: true }),
    ]);
    expect((await plainKey.request('GET', `/api/v1/tenants/${tenantId}/quarantine?q=${encodeURIComponent(subject)}`)).body.items.map((i: any) => i.messageId)).toEqual([id]);
    const detail = await plainKey.request('GET', `/api/v1/quarantine/${id}`);
    expect(detail.status).toBe(200);
    // Text only: the HTML reduced to its words; no markup, no script, no remote image.
    expect(detail.body.preview).toEqual({ text: 'Please open the invoice.', truncated: false, source: 'html', attachments: [{ filename: 'invoice.com', mimeType: 'application/octet-stream', size: eicar.length }] });
    expect(JSON.stringify(detail.body)).not.toMatch(/<script|tracker\.example|<p>/);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);

  it('when another tenant asks for it or releases it, then it does not exist for that tenant', async () => {
    const rcpt = `iso${uniq()}@${domain}`;
    const id = await quarantinedMessage(rcpt, 'isolation');
    expect((await otherTenant.request('GET', `/api/v1/quarantine/${id}`)).status).toBe(404);
    expect((await otherTenant.request('POST', `/api/v1/quarantine/${id}/release`)).status).toBe(404);
    expect((await otherTenant.request('DELETE', `/api/v1/quarantine/${id}`)).status).toBe(404);
    expect((await otherTenant.request('GET', `/api/v1/tenants/${tenantId}/quarantine`)).status).toBe(404);
    await sleep(1_500);
    expect(receivedBy(rcpt)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('quarantined');
  }, 60_000);

  it('when a key without quarantine:release-dangerous releases a virus, then it is refused and nothing is delivered', async () => {
    const rcpt = `refuse${uniq()}@${domain}`;
    const id = await quarantinedMessage(rcpt, 'refused');
    const res = await plainKey.request('POST', `/api/v1/quarantine/${id}/release`);
    expect(res.status).toBe(403);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(res.body.detail).toMatch(/quarantine:release-dangerous/);
    await sleep(1_500);
    expect(receivedBy(rcpt)).toHaveLength(0);
    expect((await api.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('quarantined');
  }, 60_000);

  it('when a tenant admin releases it twice at once on two gateway replicas, then the customer receives it exactly once and tracking shows released, then delivered', async () => {
    const rcpt = `release${uniq()}@${domain}`;
    const id = await quarantinedMessage(rcpt, 'release me');
    const [a, b] = await Promise.all([adminKey.request('POST', `/api/v1/quarantine/${id}/release`), replicaApi.request('POST', `/api/v1/quarantine/${id}/release`)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect([a.body.alreadyDone, b.body.alreadyDone].sort()).toEqual([false, true]);
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 30_000);
    // A third click after delivery changes nothing either.
    expect((await plainKey.request('GET', `/api/v1/quarantine/${id}`)).body.state).toBe('released');
    expect((await replicaApi.request('POST', `/api/v1/quarantine/${id}/release`)).body.alreadyDone).toBe(true);
    await sleep(3_000);
    expect(receivedBy(rcpt)).toHaveLength(1);
    const delivered = receivedBy(rcpt)[0]!.data.toString('latin1');
    expect(delivered).toMatch(/^X-Moat-Verdict: deliver\r$/m);
    expect(delivered).toMatch(/^X-Moat-Released: .+ by k[0-9a-f]+\/.+\r$/m);
    expect(delivered).not.toMatch(/X-Moat-Verdict: quarantine/);
    const tracked = await eventually(async () => {
      const res = await plainKey.request('GET', `/api/v1/messages/${id}`);
      return res.body?.recipients?.[0]?.status === 'delivered' ? res.body : null;
    }, 20_000);
    const types = tracked.timeline.map((e: { type: string }) => e.type);
    expect(types.filter((x: string) => x === 'released')).toHaveLength(1);
    expect(types.indexOf('filtered')).toBeLessThan(types.indexOf('released'));
    expect(types.indexOf('released')).toBeLessThan(types.indexOf('delivery_attempt'));
    // One delivery request and one attempt: routed once.
    expect(types.filter((x: string) => x === 'delivery_attempt')).toHaveLength(1);
  }, 90_000);

  it('when a quarantined message is deleted, then it is never delivered, its body is gone, tracking says why, and a release is refused', async () => {
    const rcpt = `delete${uniq()}@${domain}`;
    const id = await quarantinedMessage(rcpt, 'delete me');
    const deleted = await plainKey.request('DELETE', `/api/v1/quarantine/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.state).toBe('deleted');
    const release = await adminKey.request('POST', `/api/v1/quarantine/${id}/release`);
    expect(release.status).toBe(409);
    const db = testPool(t);
    try {
      expect((await db.query('SELECT 1 FROM messages WHERE id = $1', [id])).rowCount).toBe(0);
    } finally {
      await db.end();
    }
    const tracked = await eventually(async () => {
      const res = await plainKey.request('GET', `/api/v1/messages/${id}`);
      return res.body?.recipients?.[0]?.status === 'failed' ? res.body : null;
    }, 20_000);
    expect(JSON.stringify(tracked.timeline)).toMatch(/deleted from quarantine by k[0-9a-f]+/);
    await sleep(1_500);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);
});
