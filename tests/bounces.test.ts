import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import PostalMime from 'postal-mime';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, StaticDnsZone, type TestEnv, type Transaction } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: DSN bounces. Real SMTP into the stack, a real server playing the customer's, and a
// second real server playing the *sender's* MX, found through Moat's static DNS zone (MX record
// → 127.0.0.1, MOAT_MX_PORT → that server's port). A compressed queue lifetime makes expiry
// observable.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
const senderMx = new CustomerServer();
const picky = new CustomerServer({ rcptReply: (r) => (r.startsWith('nobody@') ? [550, '5.1.1 <nobody> User unknown in virtual mailbox table'] : null) });
const dns = new StaticDnsZone({
  'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
  'mx.sender.example': { A: ['127.0.0.1'] },
});
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dsnsTo = (rcpt: string) => senderMx.transactions.filter((tx) => tx.mailFrom === '' && tx.rcptTo.includes(rcpt));

async function readDsn(tx: Transaction) {
  const parsed = await PostalMime.parse(tx.data);
  const part = (type: string) => {
    const a = parsed.attachments.find((x) => x.mimeType === type);
    return a ? (typeof a.content === 'string' ? a.content : Buffer.from(a.content as Uint8Array).toString('utf8')) : null;
  };
  const groups = (part('message/delivery-status') ?? '')
    .replace(/\r\n/g, '\n')
    .replace(/\n[ \t]+/g, ' ')
    .split(/\n\n+/)
    .filter((g) => g.trim())
    .map((g) => Object.fromEntries(g.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
  return { parsed, recipients: groups.slice(1), headers: part('text/rfc822-headers') };
}

const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const message = async (id: string) => (await api.request('GET', `/api/v1/messages/${id}`)).body;

beforeAll(async () => {
  await senderMx.start();
  await picky.start();
  t = await createTestEnv({
    MOAT_DNS_STATIC_FILE: dns.path,
    MOAT_MX_PORT: String(senderMx.port),
    MOAT_DSN_REPORTING_MTA: 'mx.moat.test',
    MOAT_QUEUE_LIFETIME_MS: '4000',
    MOAT_DSN_DELAY_WARNING_MS: '0',
    MOAT_RETRY_BASE_MS: '300',
    MOAT_RETRY_MAX_MS: '1000',
    MOAT_DESTINATION_BACKOFF_BASE_MS: '300',
    MOAT_DESTINATION_BACKOFF_MAX_MS: '1000',
    MOAT_DESTINATION_PROBE_LEASE_MS: '3000',
    MOAT_RETRY_SWEEP_MS: '500',
    MOAT_RETRY_SWEEP_GRACE_MS: '300',
    MOAT_SCHEDULER_INTERVAL_MS: '100',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await senderMx.stop().catch(() => {});
  await picky.stop().catch(() => {});
  await t?.cleanup();
  dns.remove();
}, 60_000);

describe('bounces', () => {
  it('when the customer server answers 250 for one recipient and 550 5.1.1 for the other, then one is delivered, the other bounced, and a DSN reaches the sender’s MX', async () => {
    const domain = `p${uniq()}.example`;
    await api.provision('Picky', [{ name: domain, routes: [{ host: '127.0.0.1', port: picky.port, priority: 10 }] }]);
    const sender = `alice${uniq()}@sender.example`;
    const rcpts = [`somebody@${domain}`, `nobody@${domain}`];
    const subject = `figures ${uniq()}`;
    const secret = `BODY-${uniq()}-X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR`;
    const res = await sendSmtp({ port: stack.smtpPort, from: sender, to: rcpts, raw: makeMessage({ from: sender, to: rcpts, subject, body: secret }) });
    expect(res.code).toBe(250);
    const messageId = messageIdOf(res.response);

    const dsn = await eventually(() => dsnsTo(sender)[0], 20_000);
    expect(dsn.mailFrom).toBe('');
    expect(dsn.rcptTo).toEqual([sender]);
    const { parsed, recipients, headers } = await readDsn(dsn);
    expect(parsed.subject).toBe('Undelivered Mail Returned to Sender');
    expect(parsed.from).toEqual({ name: 'Mail Delivery System', address: 'MAILER-DAEMON@mx.moat.test' });
    expect(parsed.to).toEqual([{ name: '', address: sender }]);
    expect(parsed.headers.find((h) => h.key === 'content-type')?.value).toMatch(/^multipart\/report; report-type=delivery-status/);
    expect(recipients).toEqual([
      expect.objectContaining({
        'final-recipient': `rfc822; nobody@${domain}`,
        action: 'failed',
        status: '5.1.1',
        'diagnostic-code': 'smtp; 550 5.1.1 <nobody> User unknown in virtual mailbox table',
      }),
    ]);
    expect(parsed.text).toContain('550 5.1.1 <nobody> User unknown in virtual mailbox table');
    // The original headers (with the Received line Moat added), never the body.
    expect(headers).toContain(`Subject: ${subject}`);
    expect(headers).toMatch(/^Received: from client\.test/m);
    expect(dsn.data.toString('latin1')).not.toContain(secret.slice(0, 13));
    expect(dsn.data.toString('latin1')).not.toContain('EICAR');

    // The customer got the other recipient only.
    expect(picky.transactions.filter((tx) => tx.rcptTo.some((r) => r.endsWith(domain))).map((tx) => tx.rcptTo)).toEqual([[`somebody@${domain}`]]);

    // Tracking: delivered and bounced (with the reply); the DSN is an outbound message of its own.
    const tracked = await eventually(async () => {
      const m = await message(messageId);
      const statuses = (m?.recipients ?? []).map((r: { rcpt: string; status: string }) => `${r.rcpt.split('@')[0]}:${r.status}`).sort();
      return statuses.join() === 'nobody:bounced,somebody:delivered' ? m : null;
    });
    const nobody = tracked.recipients.find((r: { rcpt: string }) => r.rcpt === `nobody@${domain}`);
    expect(nobody.lastReply).toMatchObject({ code: 550, enhanced: '5.1.1' });
    const bounced = tracked.timeline.find((e: { type: string }) => e.type === 'bounced');
    expect(bounced.detail.detail).toMatchObject({ reason: 'failed', dsnMessageId: expect.any(String) });
    const dsnMessage = await eventually(async () => {
      const m = await message(bounced.detail.detail.dsnMessageId);
      return m?.recipients?.[0]?.status === 'delivered' ? m : null;
    });
    expect(dsnMessage).toMatchObject({ direction: 'outbound', mailFrom: '', subject: 'Undelivered Mail Returned to Sender', recipients: [expect.objectContaining({ rcpt: sender, status: 'delivered' })] });
  });

  it('when the customer server is unreachable for the whole queue lifetime, then the recipient expires and its sender gets a DSN', async () => {
    const down = new CustomerServer();
    await down.start();
    const domain = `e${uniq()}.example`;
    await api.provision('Down', [{ name: domain, routes: [{ host: '127.0.0.1', port: down.port, priority: 10 }] }]);
    await down.stop();
    const sender = `bob${uniq()}@sender.example`;
    const res = await sendSmtp({ port: stack.smtpPort, from: sender, to: [`u@${domain}`], raw: makeMessage({ from: sender, to: [`u@${domain}`] }) });
    expect(res.code).toBe(250);
    const messageId = messageIdOf(res.response);
    const dsn = await eventually(() => dsnsTo(sender)[0], 20_000);
    const { recipients } = await readDsn(dsn);
    expect(recipients).toEqual([expect.objectContaining({ 'final-recipient': `rfc822; u@${domain}`, action: 'failed', status: '4.4.7' })]);
    await eventually(async () => (await message(messageId))?.recipients?.[0]?.status === 'bounced');
  });

  it('when the envelope sender is the null sender, then a 5xx recipient stays failed and no DSN is sent', async () => {
    const domain = `n${uniq()}.example`;
    await api.provision('NullSender', [{ name: domain, routes: [{ host: '127.0.0.1', port: picky.port, priority: 10 }] }]);
    const before = senderMx.transactions.length;
    const res = await sendSmtp({ port: stack.smtpPort, from: '', to: [`nobody@${domain}`], raw: makeMessage({ from: 'mailer-daemon@elsewhere.example', to: [`nobody@${domain}`] }) });
    expect(res.code).toBe(250);
    const messageId = messageIdOf(res.response);
    await eventually(async () => (await message(messageId))?.recipients?.[0]?.status === 'failed');
    await sleep(1_500);
    const m = await message(messageId);
    expect(m.recipients[0].status).toBe('failed');
    expect(m.timeline.some((e: { type: string }) => e.type === 'bounced')).toBe(false);
    expect(senderMx.transactions.slice(before)).toEqual([]);
  });
});
