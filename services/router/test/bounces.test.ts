import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import PostalMime from 'postal-mime';
import type { StaticZone } from '@moat/runtime';
import { CustomerServer, eventually, StaticDnsZone, type Transaction } from '@moat/testkit';
import { startHarness, uniq, type Harness } from './harness.js';

// DSNs and MX routing with a real sender and real SMTP servers: one server plays the customer's
// (protected domains), another every mail exchanger that MX routing finds (the static zone
// points the MX hosts at 127.0.0.1 and MOAT_MX_PORT at that server's port). No test here asks
// the machine's DNS.

let h: Harness;
/** Plays the MX of the senders (DSNs arrive here) and of the outbound destinations. */
const mx = new CustomerServer();
const servers: CustomerServer[] = [];

function zone(overrides: StaticZone = {}): StaticZone {
  return {
    'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] },
    'mx.sender.example': { A: ['127.0.0.1'] },
    'ext.example': { MX: [{ exchange: 'mx1.ext.example', priority: 10 }] },
    'ext2.example': { MX: [{ exchange: 'MX1.ext.example.', priority: 10 }] },
    'mx1.ext.example': { A: ['127.0.0.1'] },
    'other.example': { MX: [{ exchange: 'mx.other.example', priority: 5 }] },
    'mx.other.example': { A: ['127.0.0.1'] },
    'implicit.example': { A: ['127.0.0.1'] },
    'nullmx.example': { MX: [{ exchange: '.', priority: 0 }] },
    'dnsfail.example': { MX: 'SERVFAIL' },
    ...overrides,
  };
}
const dns = new StaticDnsZone();

async function customer(opts: ConstructorParameters<typeof CustomerServer>[0] = {}): Promise<CustomerServer> {
  const s = new CustomerServer(opts);
  await s.start();
  servers.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dsnsTo = (rcpt: string) => mx.transactions.filter((tx) => tx.mailFrom === '' && tx.rcptTo.includes(rcpt));

/** The per-recipient groups of a DSN's message/delivery-status part, fields by lower-case name. */
async function parseDsn(tx: Transaction) {
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
  return { parsed, perMessage: groups[0]!, recipients: groups.slice(1), headers: part('text/rfc822-headers'), raw: tx.data.toString('utf8') };
}

beforeAll(async () => {
  await mx.start();
  dns.write(zone());
  const env = { MOAT_DNS_STATIC_FILE: dns.path, MOAT_MX_PORT: String(mx.port), MOAT_DSN_REPORTING_MTA: 'mx.moat.test' };
  h = await startHarness({ router: env, sender: env });
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all([mx, ...servers].map((s) => s.stop().catch(() => {})));
  dns.remove();
}, 60_000);

describe('MX routing', () => {
  it('when outbound mail goes to domains Moat does not protect, then each goes to its MX: domains sharing an MX set share one transaction', async () => {
    const tenantId = await h.protect(`t${uniq()}.example`, [{ host: '127.0.0.1', port: 1, priority: 10 }]);
    const tag = uniq();
    const rcpts = [`a${tag}@ext.example`, `b${tag}@other.example`, `c${tag}@ext2.example`, `d${tag}@implicit.example`];
    const fed = await h.feed({ tenantId, rcpts, direction: 'outbound', mailFrom: `alice${tag}@sender.example` });
    await eventually(() => h.resultsFor(fed.messageId).length === 3);
    const txs = mx.transactions.filter((tx) => tx.rcptTo.some((r) => r.includes(tag)));
    expect(txs.map((tx) => [...tx.rcptTo].sort()).sort()).toEqual([[`a${tag}@ext.example`, `c${tag}@ext2.example`], [`b${tag}@other.example`], [`d${tag}@implicit.example`]].sort());
    expect(txs.every((tx) => tx.mailFrom === `alice${tag}@sender.example`)).toBe(true);
    const rows = await h.deliveries.forMessage(fed.messageId);
    expect(rows.map((d) => d.destination).sort()).toEqual([`implicit.example:${mx.port}/0`, `mx.other.example:${mx.port}/5`, `mx1.ext.example:${mx.port}/10`].sort());
  });

  it('when an outbound recipient’s domain has a null MX or does not exist, then it fails at once and the sender gets a DSN saying why', async () => {
    const tenantId = await h.protect(`t${uniq()}.example`, [{ host: '127.0.0.1', port: 1, priority: 10 }]);
    const tag = uniq();
    const sender = `alice${tag}@sender.example`;
    const fed = await h.feed({ tenantId, rcpts: [`x${tag}@nullmx.example`, `y${tag}@nowhere${tag}.example`], direction: 'outbound', mailFrom: sender });
    const results = await eventually(() => (h.resultsFor(fed.messageId).length === 2 ? h.resultsFor(fed.messageId) : null));
    const outcomes = results.flatMap((r) => r.recipients).map((r) => [r.rcpt, r.outcome, r.reply.enhanced]);
    expect(outcomes.sort()).toEqual([
      [`x${tag}@nullmx.example`, 'failed', '5.1.10'],
      [`y${tag}@nowhere${tag}.example`, 'failed', '5.1.2'],
    ]);
    // Each failed delivery bounces on its own: two DSNs, each with MAIL FROM:<>.
    const dsns = await eventually(() => (dsnsTo(sender).length === 2 ? dsnsTo(sender) : null));
    const reports = await Promise.all(dsns.map(parseDsn));
    const byRcpt = Object.fromEntries(reports.map((r) => [r.recipients[0]!['final-recipient'], r.recipients[0]!]));
    expect(byRcpt[`rfc822; x${tag}@nullmx.example`]).toMatchObject({ action: 'failed', status: '5.1.10', 'diagnostic-code': expect.stringMatching(/^X-Moat; .*null MX/) });
    expect(byRcpt[`rfc822; y${tag}@nowhere${tag}.example`]).toMatchObject({ action: 'failed', status: '5.1.2', 'diagnostic-code': expect.stringContaining('does not exist') });
    for (const r of reports) expect(r.recipients[0]!['remote-mta']).toBeUndefined();
    const bounced = h.trackingFor(fed.messageId).filter((e) => e.kind === 'bounced');
    expect(bounced.map((e) => e.rcpt[0]).sort()).toEqual([`x${tag}@nullmx.example`, `y${tag}@nowhere${tag}.example`]);
  });

  it('when the MX lookup fails temporarily (SERVFAIL), then the recipient is deferred, not failed, and delivered once DNS answers', async () => {
    const tenantId = await h.protect(`t${uniq()}.example`, [{ host: '127.0.0.1', port: 1, priority: 10 }]);
    const tag = uniq();
    const rcpt = `z${tag}@dnsfail.example`;
    const fed = await h.feed({ tenantId, rcpts: [rcpt], direction: 'outbound', mailFrom: `alice${tag}@sender.example` });
    const retry = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'retry_scheduled'));
    expect(String(retry.detail.lastError)).toContain('4.4.3');
    const first = h.resultsFor(fed.messageId)[0]!;
    expect(first.recipients).toEqual([expect.objectContaining({ rcpt, outcome: 'deferred', reply: expect.objectContaining({ code: null, enhanced: '4.4.3' }) })]);
    // Still deferred after a few more attempts: a DNS outage never fails a recipient.
    await eventually(() => h.resultsFor(fed.messageId).length >= 3);
    expect(h.resultsFor(fed.messageId).every((r) => r.recipients.every((x) => x.outcome === 'deferred'))).toBe(true);
    expect(h.trackingFor(fed.messageId).some((e) => e.kind === 'bounced' || e.kind === 'failed')).toBe(false);

    // DNS recovers (the router reads the zone when it starts).
    dns.write(zone({ 'dnsfail.example': { MX: [{ exchange: 'mx1.ext.example', priority: 10 }] } }));
    await h.router!.stop();
    await h.startRouter();
    const tx = await eventually(() => mx.transactions.find((x) => x.rcptTo.includes(rcpt)), 20_000);
    expect(tx.mailFrom).toBe(`alice${tag}@sender.example`);
    await eventually(async () => (await h.deliveries.forMessage(fed.messageId))[0]?.status === 'done');
    expect(mx.transactions.filter((x) => x.rcptTo.includes(rcpt))).toHaveLength(1);
    dns.write(zone());
  });
});

describe('DSNs', () => {
  it('when a customer server answers 550 5.1.1 for one recipient, then it is bounced: a DSN from <> reaches the sender’s MX with the status, the reply and the original headers, not the body', async () => {
    const picky = await customer({ rcptReply: (r) => (r.startsWith('nobody') ? [550, '5.1.1 <nobody> User unknown in virtual mailbox table'] : null) });
    const domain = `c${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: picky.port, priority: 10 }]);
    const sender = `alice${uniq()}@sender.example`;
    const fed = await h.feed({ tenantId, rcpts: [`somebody@${domain}`, `nobody@${domain}`], mailFrom: sender });
    const [dsn] = await eventually(() => (dsnsTo(sender).length > 0 ? dsnsTo(sender) : null));
    expect(dsn!.mailFrom).toBe('');
    expect(dsn!.rcptTo).toEqual([sender]);
    expect(picky.transactions.map((tx) => tx.rcptTo)).toEqual([[`somebody@${domain}`]]);

    const report = await parseDsn(dsn!);
    expect(report.parsed.subject).toBe('Undelivered Mail Returned to Sender');
    expect(report.parsed.from?.address).toBe('MAILER-DAEMON@mx.moat.test');
    expect(report.parsed.headers.find((x) => x.key === 'auto-submitted')?.value).toBe('auto-replied');
    expect(report.perMessage['reporting-mta']).toBe('dns; mx.moat.test');
    expect(report.recipients).toEqual([
      expect.objectContaining({
        'final-recipient': `rfc822; nobody@${domain}`,
        action: 'failed',
        status: '5.1.1',
        'remote-mta': 'dns; 127.0.0.1',
        'diagnostic-code': 'smtp; 550 5.1.1 <nobody> User unknown in virtual mailbox table',
      }),
    ]);
    expect(report.parsed.text).toContain('550 5.1.1 <nobody> User unknown in virtual mailbox table');
    expect(report.headers).toContain(`Subject: test ${fed.messageId}`);
    expect(report.headers).toMatch(/^Received: from client\.test/);
    // The body never travels back.
    expect(report.raw).not.toContain('Hello.');
    expect(report.raw).not.toContain('a line that starts with a dot');

    // Tracking: the recipient is bounced with the reason and the DSN's id; the DSN is a message of its own.
    const bounced = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'bounced'));
    expect(bounced).toMatchObject({ rcpt: [`nobody@${domain}`], detail: { reason: 'failed', reply: { code: 550, enhanced: '5.1.1' } } });
    const dsnMessageId = String(bounced.detail.dsnMessageId);
    const generated = h.trackingFor(dsnMessageId).find((e) => e.kind === 'routed');
    expect(generated).toMatchObject({ tenantId, generated: { direction: 'outbound', mailFrom: '', rcptTo: [sender], subject: 'Undelivered Mail Returned to Sender' }, detail: { dsnFor: fed.messageId } });
    const dsnRows = await eventually(async () => {
      const rows = await h.deliveries.forMessage(dsnMessageId);
      return rows.length === 1 && rows[0]!.status === 'done' ? rows : null;
    });
    expect(dsnRows[0]).toMatchObject({ tenantId, mailFrom: '', rcpts: [], destination: `mx.sender.example:${mx.port}/10` });
    expect(h.resultsFor(dsnMessageId)).toEqual([expect.objectContaining({ recipients: [expect.objectContaining({ rcpt: sender, outcome: 'delivered' })] })]);
    // Stored like any message: encrypted, in the original's tenant, readable by the senders.
    expect((await h.store.get({ messageId: dsnMessageId, receivedAt: dsnRows[0]!.receivedAt.toISOString() })).equals(dsn!.data)).toBe(true);
    const stored = await h.db.query<{ tenant_id: string; body: Buffer }>('SELECT tenant_id, body FROM messages WHERE id = $1', [dsnMessageId]);
    expect(stored.rows[0]!.tenant_id).toBe(tenantId);
    expect(stored.rows[0]!.body.includes(Buffer.from('Undelivered'))).toBe(false);
  });

  it('when the envelope sender is the null sender, then a 5xx recipient stays failed and no DSN is made', async () => {
    const picky = await customer({ rcptReply: () => [550, '5.1.1 User unknown'] });
    const domain = `n${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: picky.port, priority: 10 }]);
    const before = mx.transactions.length;
    const fed = await h.feed({ tenantId, rcpts: [`nobody@${domain}`], mailFrom: '' });
    await eventually(async () => (await h.deliveries.forMessage(fed.messageId))[0]?.status === 'done');
    expect(h.resultsFor(fed.messageId)[0]!.recipients[0]).toMatchObject({ outcome: 'failed' });
    await sleep(1_000);
    expect(h.trackingFor(fed.messageId).filter((e) => e.kind === 'bounced')).toEqual([]);
    expect(h.events.some((e) => e.type === 'message.event' && e.payload.kind === 'routed' && e.payload.detail.dsnFor === fed.messageId)).toBe(false);
    expect(mx.transactions.slice(before).filter((tx) => tx.mailFrom === '')).toEqual([]);
  });

  it('when a delivery.result is processed again after its DSN was made but before the row moved on (a router crash), then the DSN is delivered once', async () => {
    const picky = await customer({ rcptReply: (r) => (r.startsWith('nobody') ? [550, '5.1.1 User unknown'] : null) });
    const domain = `r${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: picky.port, priority: 10 }]);
    const sender = `alice${uniq()}@sender.example`;
    const rcpts = [`ok@${domain}`, `nobody@${domain}`];
    const fed = await h.feed({ tenantId, rcpts, mailFrom: sender });
    await eventually(() => dsnsTo(sender).length === 1);
    const [row] = await eventually(async () => {
      const rows = await h.deliveries.forMessage(fed.messageId);
      return rows[0]?.status === 'done' ? rows : null;
    });
    const bounced = h.trackingFor(fed.messageId).find((e) => e.kind === 'bounced')!;
    const dsnMessageId = String(bounced.detail.dsnMessageId);
    await eventually(async () => (await h.deliveries.forMessage(dsnMessageId))[0]?.status === 'done');

    // Put the row back where it was before the result was applied, and deliver the result again.
    const resultEvent = h.events.find((e) => e.type === 'delivery.result' && e.payload.messageId === fed.messageId)!;
    await h.db.query(`UPDATE deliveries SET status = 'sending', rcpts = $2, attempt = 1 WHERE id = $1`, [row!.id, rcpts]);
    const eventsBefore = h.trackingFor(fed.messageId).length;
    await h.broker.publish('delivery.result', resultEvent);
    await eventually(async () => (await h.deliveries.get(row!.id))?.status === 'done' && h.trackingFor(fed.messageId).length > eventsBefore);
    await sleep(1_500);
    expect(dsnsTo(sender)).toHaveLength(1);
    const dsnRows = await h.deliveries.forMessage(dsnMessageId);
    expect(dsnRows).toHaveLength(1);
    expect(dsnRows[0]).toMatchObject({ attempt: 1, status: 'done' });
    // The same DSN id and the same event ids again (tracking collapses them).
    const again = h.trackingFor(fed.messageId).filter((e) => e.kind === 'bounced');
    expect(again.map((e) => e.detail.dsnMessageId)).toEqual([dsnMessageId, dsnMessageId]);
    const ids = h.events.filter((e) => e.type === 'message.event' && e.payload.messageId === fed.messageId && e.payload.kind === 'bounced').map((e) => e.id);
    expect(new Set(ids).size).toBe(1);
  });

  it('when the filter rejects an accepted message, then its sender gets one DSN (5.7.1 for every recipient, the reasons quoted) even when the verdict comes twice, and tracking records rejected with the DSN id', async () => {
    const server = await customer();
    const domain = `rj${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: server.port, priority: 10 }]);
    const sender = `alice${uniq()}@sender.example`;
    const rcpts = [`a@${domain}`, `b@${domain}`];
    const fed = await h.feed({ tenantId, rcpts, mailFrom: sender, verdict: 'reject' });
    const rejected = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'rejected'));
    expect(rejected.rcpt).toEqual(rcpts);
    const dsnMessageId = String(rejected.detail.dsnMessageId);
    expect(dsnMessageId).toMatch(/^[0-9a-f-]{36}$/);
    const [dsn] = await eventually(() => (dsnsTo(sender).length === 1 ? dsnsTo(sender) : null));
    const report = await parseDsn(dsn!);
    expect(report.recipients.map((r) => [r['final-recipient'], r.action, r.status])).toEqual(rcpts.map((r) => [`rfc822; ${r}`, 'failed', '5.7.1']));
    expect(report.raw).toContain("rejected by the recipient's filter policy");
    expect(report.headers).toContain(`Subject: test ${fed.messageId}`);
    // The DSN is tracked as Moat's own outbound message.
    expect(h.events.some((e) => e.type === 'message.event' && e.payload.kind === 'routed' && e.payload.detail.dsnFor === fed.messageId && e.payload.messageId === dsnMessageId)).toBe(true);
    // A redelivered verdict (the filter published again after a crash): the same DSN, sent once.
    await h.broker.publish('message.filtered', fed.event);
    await eventually(() => h.trackingFor(fed.messageId).filter((e) => e.kind === 'rejected').length === 2);
    await sleep(1_500);
    expect(dsnsTo(sender)).toHaveLength(1);
    expect(await h.deliveries.forMessage(dsnMessageId)).toHaveLength(1);
    expect(server.transactions).toHaveLength(0);
  });

  it('when the filter rejects a message from the null sender, then no DSN is made and the rejection is still tracked', async () => {
    const domain = `rn${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: 1, priority: 10 }]);
    const before = mx.transactions.length;
    const fed = await h.feed({ tenantId, rcpts: [`a@${domain}`], mailFrom: '', verdict: 'reject' });
    const rejected = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'rejected'));
    expect(rejected.detail.dsnMessageId).toBeNull();
    await sleep(1_000);
    expect(h.events.some((e) => e.type === 'message.event' && e.payload.kind === 'routed' && e.payload.detail.dsnFor === fed.messageId)).toBe(false);
    expect(mx.transactions.slice(before).filter((tx) => tx.mailFrom === '')).toEqual([]);
  });
});
