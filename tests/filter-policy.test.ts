import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import PostalMime from 'postal-mime';
import { CustomerServer, createTestEnv, eicar, eicarSignature, eventually, makeMessage, makeMessageWithAttachment, sendSmtp, startClamd, StaticDnsZone, TcpProxy, type TestClamd, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: tenant filter policy. Real SMTP into the whole stack, a real clamd (EICAR) behind a
// proxy that can cut it, a CustomerServer per test's tenant domain, and a second server playing
// the senders' MX (found through Moat's static DNS zone), where DSNs arrive. The filter reads
// policies uncached here (MOAT_FILTER_POLICY_CACHE_MS=0) so each change applies to the next message.

const gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';
const dns = new StaticDnsZone({
  'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
  'mx.sender.example': { A: ['127.0.0.1'] },
  // A domain that publishes SPF -all and DMARC p=reject: mail from 127.0.0.1 in its name fails both.
  'strict.example': { TXT: [['v=spf1 -all']], MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
  '_dmarc.strict.example': { TXT: [['v=DMARC1; p=reject']] },
});

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let clamd: TestClamd;
let clamdProxy: TcpProxy;
const customer = new CustomerServer();
const senderMx = new CustomerServer();
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));

/** A tenant with one protected domain routed to the customer server, and its policy and list entries set through the API. */
async function tenantWith(opts: { policy?: Record<string, unknown>; entries?: Array<Record<string, unknown>> } = {}): Promise<{ tenantId: string; domain: string }> {
  const domain = `fp${uniq()}.example`;
  const { tenantId } = await api.provision(`Policy ${domain}`, [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
  if (opts.policy) {
    const res = await api.request('PATCH', `/api/v1/tenants/${tenantId}/filter-policy`, opts.policy);
    expect(res.status).toBe(200);
  }
  for (const entry of opts.entries ?? []) {
    const res = await api.request('POST', `/api/v1/tenants/${tenantId}/filter-lists`, entry);
    expect(res.status).toBe(201);
  }
  return { tenantId, domain };
}

async function send(from: string, rcpt: string, raw: Buffer): Promise<string> {
  const res = await sendSmtp({ port: stack.smtpPort, from, to: [rcpt], raw });
  expect(res.code).toBe(250);
  return messageIdOf(res.response);
}

/** The quarantine entry of a message, once the archive has it. */
async function quarantined(tenantId: string, messageId: string): Promise<{ category: string; reasons: string[]; rcpts: string[] }> {
  return eventually(async () => {
    const res = await api.request('GET', `/api/v1/tenants/${tenantId}/quarantine`);
    expect(res.status).toBe(200);
    const item = res.body.items.find((i: { messageId: string }) => i.messageId === messageId);
    expect(item).toBeDefined();
    return item;
  }, 20_000);
}

beforeAll(async () => {
  await customer.start();
  await senderMx.start();
  clamd = await startClamd();
  clamdProxy = new TcpProxy('127.0.0.1', clamd.port);
  await clamdProxy.start();
  t = await createTestEnv({
    MOAT_CLAMD_ADDRESS: `127.0.0.1:${clamdProxy.port}`,
    MOAT_CLAMD_RETRY_MS: '1000',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_FILTER_POLICY_CACHE_MS: '0',
    MOAT_DNS_STATIC_FILE: dns.path,
    MOAT_MX_PORT: String(senderMx.port),
    MOAT_DSN_REPORTING_MTA: 'mx.moat.test',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await clamdProxy?.stop();
  await clamd?.stop();
  await customer.stop().catch(() => {});
  await senderMx.stop().catch(() => {});
  await t?.cleanup();
  dns.remove();
}, 60_000);

describe('tenant filter policy', () => {
  it('when the sender is allow-listed, then GTUBE is delivered (scored, tagged, subject tagged) but an EICAR attachment from the same sender is quarantined as a virus', async () => {
    const { tenantId, domain } = await tenantWith({ policy: { subjectTag: '[SPAM]' }, entries: [{ list: 'allow', kind: 'domain', value: 'sender.example' }] });
    const spamRcpt = `spam@${domain}`;
    await send('news@mail.sender.example', spamRcpt, makeMessage({ from: 'news@mail.sender.example', to: [spamRcpt], subject: 'Weekly offer', body: gtube }));
    await eventually(() => expect(receivedBy(spamRcpt)).toHaveLength(1), 20_000);
    const delivered = receivedBy(spamRcpt)[0]!.data.toString('latin1');
    expect(delivered).toMatch(/X-Moat-Spam-Status: spam score=/);
    expect(delivered).toContain('X-Moat-Verdict: deliver');
    expect((await PostalMime.parse(receivedBy(spamRcpt)[0]!.data)).subject).toBe('[SPAM] Weekly offer');

    const virusRcpt = `virus@${domain}`;
    const id = await send('news@sender.example', virusRcpt, makeMessageWithAttachment({ from: 'news@sender.example', to: [virusRcpt], subject: 'invoice', attachment: { name: 'invoice.com', content: eicar } }));
    const item = await quarantined(tenantId, id);
    expect(item.category).toBe('virus');
    expect(item.reasons).toContain(`virus: ${eicarSignature}`);
    await sleep(500);
    expect(receivedBy(virusRcpt)).toHaveLength(0);
  }, 60_000);

  it('when the sender is block-listed, then a clean message is quarantined in category policy with the entry named', async () => {
    const { tenantId, domain } = await tenantWith({ entries: [{ list: 'block', kind: 'address', value: 'Mallory@Sender.Example' }] });
    const rcpt = `u@${domain}`;
    const id = await send('mallory@sender.example', rcpt, makeMessage({ from: 'mallory@sender.example', to: [rcpt], subject: 'lunch?', body: 'See you at noon.' }));
    const item = await quarantined(tenantId, id);
    expect(item.category).toBe('policy');
    expect(item.reasons[0]).toBe("policy: blocked by the tenant's block list (address mallory@sender.example matches the envelope sender)");
    await sleep(500);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);

  it("when one mailbox blocks the sender, then the others get the message in one transaction, that mailbox's copy is quarantined, tracked per recipient, and released to it exactly once", async () => {
    const domain0 = `fp${uniq()}.example`;
    const [a, b, c] = ['ann', 'bob', 'cid'].map((u) => `${u}@${domain0}`) as [string, string, string];
    const { tenantId } = await api.provision(`Policy ${domain0}`, [{ name: domain0, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    expect((await api.request('POST', `/api/v1/tenants/${tenantId}/filter-lists`, { list: 'block', kind: 'domain', value: 'sender.example', mailbox: b })).status).toBe(201);
    const raw = makeMessage({ from: 'carol@sender.example', to: [a, b, c], subject: 'team lunch', body: 'Friday at noon, usual place.' });
    const res = await sendSmtp({ port: stack.smtpPort, from: 'carol@sender.example', to: [a, b, c], raw });
    expect(res.code).toBe(250);
    const id = messageIdOf(res.response);
    await eventually(() => expect(receivedBy(a)).toHaveLength(1), 20_000);
    // One transaction for the two who get it; nothing for the mailbox that blocks the sender.
    expect(receivedBy(a)[0]!.rcptTo).toEqual([a, c]);
    const item = await quarantined(tenantId, id);
    expect(item).toMatchObject({ category: 'policy', rcpts: [b] });
    expect(item.reasons[0]).toBe(`policy: blocked by the block list of ${b} (domain sender.example matches the envelope sender)`);
    await sleep(500);
    expect(receivedBy(b)).toHaveLength(0);
    const statuses = async () => {
      const tracked = await api.request('GET', `/api/v1/messages/${id}`);
      return Object.fromEntries((tracked.body?.recipients ?? []).map((r: { rcpt: string; status: string }) => [r.rcpt, r.status]));
    };
    await eventually(async () => expect(await statuses()).toEqual({ [a]: 'delivered', [b]: 'quarantined', [c]: 'delivered' }), 20_000);

    // Released twice at once: b gets its copy once, in a transaction of its own; a and c nothing more.
    const [r1, r2] = await Promise.all([api.request('POST', `/api/v1/quarantine/${id}/release`), api.request('POST', `/api/v1/quarantine/${id}/release`)]);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    await eventually(() => expect(receivedBy(b)).toHaveLength(1), 30_000);
    expect(receivedBy(b)[0]!.rcptTo).toEqual([b]);
    await eventually(async () => expect(await statuses()).toEqual({ [a]: 'delivered', [b]: 'delivered', [c]: 'delivered' }), 20_000);
    await sleep(1_500);
    expect([receivedBy(a).length, receivedBy(b).length, receivedBy(c).length]).toEqual([1, 1, 1]);
  }, 90_000);

  it("when mail claims the tenant's own domain without passing authentication, then it is quarantined as spoofing (only a tenant admin may release it)", async () => {
    const { tenantId, domain } = await tenantWith();
    const rcpt = `cfo@${domain}`;
    const id = await send(`ceo@${domain}`, rcpt, makeMessage({ from: `ceo@${domain}`, to: [rcpt], subject: 'urgent wire transfer', body: 'Please pay the attached invoice today.' }));
    const item = await quarantined(tenantId, id);
    expect(item.category).toBe('spoofing');
    expect(item.reasons[0]).toContain(`spoofing: ${domain} is the tenant's own domain`);
    const key = await api.request('POST', `/api/v1/tenants/${tenantId}/api-keys`, { name: `plain${uniq()}`, scopes: ['quarantine:read', 'quarantine:write'] });
    const plain = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, key.body.key);
    const refused = await plain.request('POST', `/api/v1/quarantine/${id}/release`);
    expect(refused.status).toBe(403);
    expect(refused.body.detail).toMatch(/quarantine:release-dangerous/);
    await sleep(500);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);

  it("when two tenants get the same message, then one tenant's thresholds quarantine it and the other's deliver it", async () => {
    const relaxed = await tenantWith();
    const body = 'Hi, the minutes of Tuesday are attached below.\r\nRegards, Alice';
    const relaxedRcpt = `u@${relaxed.domain}`;
    await send('alice@sender.example', relaxedRcpt, makeMessage({ from: 'alice@sender.example', to: [relaxedRcpt], subject: 'minutes', body }));
    await eventually(() => expect(receivedBy(relaxedRcpt)).toHaveLength(1), 20_000);
    const score = Number(/X-Moat-Spam-Score: ([0-9.]+)/.exec(receivedBy(relaxedRcpt)[0]!.data.toString('latin1'))![1]);
    // The strict tenant quarantines from a point below what this message scored.
    const quarantineScore = Math.max(0, Math.floor(score) - 1);
    const strict = await tenantWith({ policy: { spamTagScore: 0, quarantineScore } });
    const strictRcpt = `u@${strict.domain}`;
    const id = await send('alice@sender.example', strictRcpt, makeMessage({ from: 'alice@sender.example', to: [strictRcpt], subject: 'minutes', body }));
    const item = await quarantined(strict.tenantId, id);
    expect(item.category).toBe('spam');
    expect(item.reasons[0]).toMatch(/^spam: score /);
    await sleep(500);
    expect(receivedBy(strictRcpt)).toHaveLength(0);
  }, 60_000);

  it('when DMARC fails with p=reject and the tenant honours DMARC, then the message is rejected and its sender gets a DSN; a tenant that only tags gets it delivered', async () => {
    const honour = await tenantWith({ policy: { dmarc: 'honour' } });
    const rcpt = `u@${honour.domain}`;
    const sender = `billing${uniq()}@strict.example`;
    const id = await send(sender, rcpt, makeMessage({ from: sender, to: [rcpt], subject: 'your invoice', body: 'Invoice attached.' }));
    const dsn = await eventually(() => {
      const found = senderMx.transactions.find((tx) => tx.mailFrom === '' && tx.rcptTo.includes(sender));
      expect(found).toBeDefined();
      return found!;
    }, 30_000);
    const text = dsn.data.toString('utf8');
    expect(text).toContain('Status: 5.7.1');
    expect(text).toContain(`Final-Recipient: rfc822; ${rcpt}`);
    expect(text).toContain("policy is reject");
    const tracked = await eventually(async () => {
      const res = await api.request('GET', `/api/v1/messages/${id}`);
      expect(JSON.stringify(res.body)).toContain('rejected');
      return res.body;
    }, 20_000);
    expect(JSON.stringify(tracked)).toContain('dsnMessageId');
    expect(receivedBy(rcpt)).toHaveLength(0);

    // Its spam score carries the failures too (SPF, DMARC rules): a high quarantine score isolates the DMARC handling.
    const tag = await tenantWith({ policy: { quarantineScore: 100 } });
    const tagRcpt = `u@${tag.domain}`;
    await send(sender, tagRcpt, makeMessage({ from: sender, to: [tagRcpt], subject: 'your invoice', body: 'Invoice attached.' }));
    await eventually(() => expect(receivedBy(tagRcpt)).toHaveLength(1), 20_000);
    expect(receivedBy(tagRcpt)[0]!.data.toString('latin1')).toMatch(/dmarc=fail/);
  }, 60_000);

  it("when the virus scanner is down, then a tenant whose fallback is deliver gets its mail marked unscanned, and a tenant on the default waits and gets it once clamd is back: none is lost", async () => {
    const deliver = await tenantWith({ policy: { scannerUnavailable: 'deliver' } });
    const wait = await tenantWith();
    clamdProxy.cut();
    try {
      const fast = `u@${deliver.domain}`;
      const slow = `u@${wait.domain}`;
      await send('alice@sender.example', fast, makeMessage({ from: 'alice@sender.example', to: [fast], subject: 'notes', body: 'minutes of the meeting' }));
      await send('alice@sender.example', slow, makeMessage({ from: 'alice@sender.example', to: [slow], subject: 'notes', body: 'minutes of the meeting' }));
      await eventually(() => expect(receivedBy(fast)).toHaveLength(1), 20_000);
      expect(receivedBy(fast)[0]!.data.toString('latin1')).toContain('X-Moat-Virus-Status: unscanned');
      await sleep(3_000);
      expect(receivedBy(slow)).toHaveLength(0);
      clamdProxy.restore();
      await eventually(() => expect(receivedBy(slow)).toHaveLength(1), 40_000);
      expect(receivedBy(slow)[0]!.data.toString('latin1')).not.toContain('X-Moat-Virus-Status: unscanned');
    } finally {
      clamdProxy.restore();
    }
  }, 90_000);
});
