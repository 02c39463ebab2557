import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import PostalMime from 'postal-mime';
import { CustomerServer, eventually, StaticDnsZone, type Transaction } from '@moat/testkit';
import { startHarness, uniq, type Harness } from './harness.js';

// Expiry and delay warnings on a compressed clock: a 4 s queue lifetime, a warning after 1 s,
// retries every 0.2–1 s. The senders' MX (where DSNs arrive) is a real SMTP server found
// through a static DNS zone.

let h: Harness;
const senderMx = new CustomerServer();
const servers: CustomerServer[] = [];
const dns = new StaticDnsZone({ 'sender.example': { MX: [{ exchange: 'mx.sender.example', priority: 10 }] }, 'mx.sender.example': { A: ['127.0.0.1'] } });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dsnsTo = (rcpt: string) => senderMx.transactions.filter((tx) => tx.mailFrom === '' && tx.rcptTo.includes(rcpt));

async function report(tx: Transaction) {
  const parsed = await PostalMime.parse(tx.data);
  const a = parsed.attachments.find((x) => x.mimeType === 'message/delivery-status')!;
  const text = typeof a.content === 'string' ? a.content : Buffer.from(a.content as Uint8Array).toString('utf8');
  const groups = text
    .replace(/\r\n/g, '\n')
    .replace(/\n[ \t]+/g, ' ')
    .split(/\n\n+/)
    .filter((g) => g.trim())
    .map((g) => Object.fromEntries(g.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])));
  return { subject: parsed.subject, recipients: groups.slice(1) };
}

beforeAll(async () => {
  await senderMx.start();
  const env = { MOAT_DNS_STATIC_FILE: dns.path, MOAT_MX_PORT: String(senderMx.port) };
  h = await startHarness({ router: { ...env, MOAT_QUEUE_LIFETIME_MS: '4000', MOAT_DSN_DELAY_WARNING_MS: '1000' }, sender: env });
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all([senderMx, ...servers].map((s) => s.stop().catch(() => {})));
  dns.remove();
}, 60_000);

describe('expiry and delay warnings', () => {
  it('when a recipient keeps getting 451, then its sender gets one delay warning, and once the lifetime is over a bounce for it as expired', async () => {
    const s = new CustomerServer({ rcptReply: (r) => (r.startsWith('slow') ? [451, '4.2.1 Mailbox busy, try again later'] : null) });
    await s.start();
    servers.push(s);
    const domain = `x${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const sender = `alice${uniq()}@sender.example`;
    const fed = await h.feed({ tenantId, rcpts: [`slow@${domain}`, `fast@${domain}`], mailFrom: sender });

    const warning = await eventually(() => dsnsTo(sender)[0], 10_000);
    const w = await report(warning);
    expect(w.subject).toBe('Delayed Mail (still being retried)');
    expect(w.recipients).toEqual([
      expect.objectContaining({
        'final-recipient': `rfc822; slow@${domain}`,
        action: 'delayed',
        status: '4.2.1',
        'diagnostic-code': 'smtp; 451 4.2.1 Mailbox busy, try again later',
        'will-retry-until': expect.stringMatching(/\+0000$/),
      }),
    ]);

    const bounce = await eventually(() => dsnsTo(sender)[1], 15_000);
    const b = await report(bounce);
    expect(b.subject).toBe('Undelivered Mail Returned to Sender');
    expect(b.recipients).toEqual([expect.objectContaining({ 'final-recipient': `rfc822; slow@${domain}`, action: 'failed', status: '4.2.1', 'diagnostic-code': 'smtp; 451 4.2.1 Mailbox busy, try again later' })]);
    expect(b.recipients[0]!['will-retry-until']).toBeUndefined();

    // Several deferred attempts, one warning; after the bounce, nothing more.
    const attempts = h.resultsFor(fed.messageId).length;
    expect(attempts).toBeGreaterThanOrEqual(4);
    await sleep(1_500);
    expect(dsnsTo(sender)).toHaveLength(2);
    expect(s.transactions.filter((tx) => tx.rcptTo.includes(`fast@${domain}`))).toHaveLength(1);

    const events = h.trackingFor(fed.messageId);
    const bounced = events.filter((e) => e.kind === 'bounced');
    expect(bounced).toEqual([expect.objectContaining({ rcpt: [`slow@${domain}`], detail: expect.objectContaining({ reason: 'expired', reply: { code: 451, enhanced: '4.2.1', text: 'Mailbox busy, try again later' } }) })]);
    // Bounced replaces expired: the bounce is the recipient's fate.
    expect(events.some((e) => e.kind === 'expired')).toBe(false);
    const warned = events.filter((e) => e.kind === 'retry_scheduled' && e.detail.delayWarningMessageId);
    expect(new Set(warned.map((e) => e.detail.delayWarningMessageId)).size).toBe(1);
  });

  it('when the customer server stays unreachable until the lifetime is over, then the bounce says delivery time expired (4.4.7) with the connection error', async () => {
    const s = new CustomerServer();
    await s.start();
    const domain = `d${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    await s.stop();
    const sender = `bob${uniq()}@sender.example`;
    await h.feed({ tenantId, rcpts: [`u@${domain}`], mailFrom: sender });
    const bounce = await eventually(() => dsnsTo(sender).find((tx) => tx.data.includes('Undelivered Mail Returned')), 15_000);
    const b = await report(bounce);
    expect(b.recipients).toEqual([expect.objectContaining({ 'final-recipient': `rfc822; u@${domain}`, action: 'failed', status: '4.4.7', 'diagnostic-code': expect.stringMatching(/^X-Moat; .*(ECONNREFUSED|refused)/i) })]);
    expect(b.recipients[0]!['remote-mta']).toBeUndefined();
  });

  it('when the envelope sender is the null sender, then an expired recipient gets neither a warning nor a bounce', async () => {
    const s = new CustomerServer({ rcptReply: () => [451, '4.3.0 try later'] });
    await s.start();
    servers.push(s);
    const domain = `z${uniq()}.example`;
    const tenantId = await h.protect(domain, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const before = senderMx.transactions.length;
    const fed = await h.feed({ tenantId, rcpts: [`u@${domain}`], mailFrom: '' });
    const expired = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'expired'), 15_000);
    expect(expired.rcpt).toEqual([`u@${domain}`]);
    await sleep(1_000);
    expect(h.trackingFor(fed.messageId).some((e) => e.kind === 'bounced')).toBe(false);
    expect(senderMx.transactions.slice(before)).toEqual([]);
  });
});
