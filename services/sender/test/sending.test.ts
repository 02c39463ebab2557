import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRequestedPayload, DeliveryResultPayload } from '@moat/contracts';
import { uuidFrom } from '@moat/runtime';
import { CustomerServer, eventually } from '@moat/testkit';
// The router/sender harness lives with the router's tests; both services' tests drive the pair.
import { startHarness, uniq, type Harness } from '../../router/test/harness.js';

let h: Harness;
const servers: CustomerServer[] = [];

async function customer(opts: ConstructorParameters<typeof CustomerServer>[0] = {}): Promise<CustomerServer> {
  const s = new CustomerServer(opts);
  await s.start();
  servers.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A delivery row written directly (as the router would), with its body in the store. */
async function queuedDelivery(port: number, rcpts: string[], opts: { status?: string; outcome?: unknown } = {}): Promise<DeliveryRequestedPayload> {
  const d = rcpts[0]!.split('@')[1]!;
  const tenantId = await h.protect(d, [{ host: '127.0.0.1', port, priority: 10 }]);
  const messageId = randomUUID();
  const receivedAt = new Date();
  const raw = Buffer.from(`Subject: direct ${messageId}\r\n\r\nbody\r\n`);
  const store = await h.store.put({ id: messageId, tenantId, receivedAt, sha256: '0'.repeat(64), raw });
  const deliveryId = uuidFrom(messageId, `127.0.0.1:${port}/10`);
  const routes = [{ host: '127.0.0.1', port, priority: 10 }];
  const prependHeaders = 'X-Moat-Verdict: deliver\r\n';
  await h.db.query(
    `INSERT INTO deliveries (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, outcome)
     VALUES ($1, $2, $3, $4, 'default', $5, $6, 's@outside.test', $7, $8, $9, 1, $10, $11)`,
    [deliveryId, messageId, tenantId, receivedAt, `127.0.0.1:${port}/10`, JSON.stringify(routes), rcpts, prependHeaders, raw.length + prependHeaders.length, opts.status ?? 'queued', opts.outcome === undefined ? null : JSON.stringify(opts.outcome)],
  );
  return {
    deliveryId,
    attempt: 1,
    messageId,
    tenantId,
    store,
    pool: 'default',
    destination: `127.0.0.1:${port}/10`,
    routes,
    mailFrom: 's@outside.test',
    rcptTo: rcpts,
    prependHeaders,
    size: raw.length + prependHeaders.length,
  };
}

const requestEvent = (p: DeliveryRequestedPayload) => h.broker.envelope('delivery.requested', p, uuidFrom(p.deliveryId, String(p.attempt), 'requested'));

beforeAll(async () => {
  h = await startHarness();
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
}, 60_000);

describe('sending', () => {
  it('when a message has 3 recipients of one domain, then the server gets one transaction with the 3 RCPTs and exactly the prepended headers plus the raw body', async () => {
    const s = await customer();
    const d = `three${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const rcpts = [`alice@${d}`, `bob@${d}`, `carol@${d}`];
    // Lines starting with a dot (dot-stuffing must be undone by the server), 8-bit text, a long line.
    const raw = Buffer.from(
      [`From: <s@outside.test>`, `To: <alice@${d}>`, 'Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'Grüße aus Zürich.', '.', '..two dots', '. dot space', 'x'.repeat(990), 'last line', ''].join('\r\n'),
    );
    const fed = await h.feed({ tenantId, rcpts, raw });
    await eventually(() => h.resultsFor(fed.messageId).length === 1);
    expect(s.transactions).toHaveLength(1);
    const tx = s.transactions[0]!;
    expect(tx.rcptTo).toEqual(rcpts);
    expect(tx.mailFrom).toBe('s@outside.test');
    expect(tx.helo).toBe('moat.test');
    expect(tx.data.equals(Buffer.concat([Buffer.from(fed.prependHeaders), raw]))).toBe(true);
    const [result] = h.resultsFor(fed.messageId) as [DeliveryResultPayload];
    expect(result.recipients.map((r) => [r.rcpt, r.outcome, r.reply.code])).toEqual(rcpts.map((r) => [r, 'delivered', 250]));
    expect(result).toMatchObject({ attempt: 1, sourceIp: '127.0.0.1', remoteHost: `127.0.0.1:${s.port}`, tls: false, error: null });
  });

  it('when a body has bare LF line ends, then they arrive as CRLF (RFC 5321 §4.1.1.4; nodemailer normalises them)', async () => {
    const s = await customer();
    const d = `lf${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const raw = Buffer.from('Subject: bare lf\n\nline one\n.dot line\nline three\n');
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`], raw });
    await eventually(() => h.resultsFor(fed.messageId).length === 1);
    expect(s.transactions[0]!.data.toString()).toBe(`${fed.prependHeaders}Subject: bare lf\r\n\r\nline one\r\n.dot line\r\nline three\r\n`);
  });

  it('when the first-priority route refuses connections, then the message goes to the second-priority route', async () => {
    const s = await customer();
    const dead = await closedPort();
    const d = `fallback${uniq()}.example`;
    const tenantId = await h.protect(d, [
      { host: '127.0.0.1', port: s.port, priority: 20 },
      { host: '127.0.0.1', port: dead, priority: 10 },
    ]);
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
    const [result] = await eventually(() => (h.resultsFor(fed.messageId).length ? h.resultsFor(fed.messageId) : null));
    expect(result!.recipients[0]!.outcome).toBe('delivered');
    expect(result!.remoteHost).toBe(`127.0.0.1:${s.port}`);
    expect(s.transactions.map((tx) => tx.rcptTo)).toEqual([[`u@${d}`]]);
  });

  it('when the same delivery.requested is published twice, then there is one transaction only', async () => {
    const s = await customer();
    const req = await queuedDelivery(s.port, [`u@dup${uniq()}.example`]);
    const event = requestEvent(req);
    await Promise.all([h.broker.publish('delivery.requested.default', event), h.broker.publish('delivery.requested.default', event)]);
    await eventually(async () => (await h.deliveries.get(req.deliveryId))?.status === 'done');
    await sleep(500);
    // And once more after it is done: stale, skipped.
    await h.broker.publish('delivery.requested.default', event);
    await sleep(500);
    expect(s.transactions).toHaveLength(1);
    expect(h.events.filter((e) => e.type === 'delivery.result' && e.payload.deliveryId === req.deliveryId)).toHaveLength(1);
  });

  it('when an attempt already has a recorded outcome (its result publish failed), then the outcome is published again and nothing is re-sent', async () => {
    const s = await customer();
    const rcpt = `u@recorded${uniq()}.example`;
    const placeholder = await queuedDelivery(s.port, [rcpt]);
    const recorded: DeliveryResultPayload = {
      deliveryId: placeholder.deliveryId,
      attempt: 1,
      messageId: placeholder.messageId,
      tenantId: placeholder.tenantId,
      pool: 'default',
      destination: placeholder.destination,
      sourceIp: '127.0.0.1',
      remoteHost: `127.0.0.1:${s.port}`,
      tls: false,
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      recipients: [{ rcpt, outcome: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as recorded' } }],
      error: null,
    };
    await h.db.query(`UPDATE deliveries SET status = 'sending', lease_until = now() + interval '1 hour', outcome = $2 WHERE id = $1`, [placeholder.deliveryId, JSON.stringify({ attempt: 1, result: recorded })]);
    await h.broker.publish('delivery.requested.default', requestEvent(placeholder));
    const result = await eventually(() => h.events.find((e) => e.type === 'delivery.result' && e.payload.deliveryId === placeholder.deliveryId));
    expect(result.payload).toEqual(recorded);
    await eventually(async () => (await h.deliveries.get(placeholder.deliveryId))?.status === 'done');
    expect(s.transactions).toHaveLength(0);
  });

  it('when the message is no longer in the store, then its recipients fail for good (5.3.0) and nothing is sent', async () => {
    const s = await customer();
    const rcpt = `u@gone${uniq()}.example`;
    const req = await queuedDelivery(s.port, [rcpt]);
    await h.store.delete(req.store);
    await h.broker.publish('delivery.requested.default', requestEvent(req));
    const found = await eventually(() => h.events.find((e) => e.type === 'delivery.result' && e.payload.deliveryId === req.deliveryId));
    if (found.type !== 'delivery.result') throw new Error('expected a delivery.result');
    const result = found;
    expect(result.payload.recipients).toEqual([expect.objectContaining({ rcpt, outcome: 'failed', reply: expect.objectContaining({ enhanced: '5.3.0' }) })]);
    expect(result.payload.error).toMatch(/not in the store/);
    expect(s.transactions).toHaveLength(0);
  });

  it('when a sender died holding a claim (lease expired, no outcome), then the scheduler starts the next attempt and it is delivered once', async () => {
    const s = await customer();
    const rcpt = `u@died${uniq()}.example`;
    const req = await queuedDelivery(s.port, [rcpt]);
    await h.db.query(`UPDATE deliveries SET status = 'sending', lease_until = now() - interval '1 second' WHERE id = $1`, [req.deliveryId]);
    await eventually(async () => (await h.deliveries.get(req.deliveryId))?.status === 'done');
    const row = await h.deliveries.get(req.deliveryId);
    expect(row!.attempt).toBe(2);
    expect(s.transactions.map((tx) => tx.rcptTo)).toEqual([[rcpt]]);
  });

  it('when DATA is refused after one RCPT was refused, then each recipient keeps the reply that decided it', async () => {
    const s = await customer({
      rcptReply: (r) => (r.startsWith('nobody@') ? [550, '5.1.1 User unknown'] : null),
      dataReply: () => [451, '4.3.0 Temporary local problem'],
    });
    const d = `data${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const fed = await h.feed({ tenantId, rcpts: [`nobody@${d}`, `ok@${d}`] });
    const result = await eventually(() => h.resultsFor(fed.messageId)[0]);
    const byRcpt = Object.fromEntries(result.recipients.map((r) => [r.rcpt.split('@')[0], r]));
    expect(byRcpt.nobody).toMatchObject({ outcome: 'failed', reply: { code: 550, enhanced: '5.1.1', text: 'User unknown' } });
    expect(byRcpt.ok).toMatchObject({ outcome: 'deferred', reply: { code: 451, enhanced: '4.3.0', text: 'Temporary local problem' } });
    expect(result.error).toBeNull();
  });

  it('when several messages go to one destination one after the other, then one kept connection carries them all', async () => {
    const s = await customer();
    // A TCP forwarder in front of the server, counting the connections the sender opens.
    let connections = 0;
    const counter = net.createServer((client) => {
      connections++;
      const upstream = net.connect(s.port, '127.0.0.1');
      client.pipe(upstream).on('error', () => {});
      upstream.pipe(client).on('error', () => {});
      client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
      upstream.on('error', () => client.destroy()).on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => counter.listen(0, '127.0.0.1', () => resolve()));
    const port = (counter.address() as net.AddressInfo).port;
    const d = `reuse${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port, priority: 10 }]);
    const fed: Array<Awaited<ReturnType<typeof h.feed>>> = [];
    for (let i = 0; i < 5; i++) {
      fed.push(await h.feed({ tenantId, rcpts: [`u${i}@${d}`] }));
      await eventually(() => h.resultsFor(fed[i]!.messageId).length === 1);
    }
    expect(s.transactions.map((tx) => tx.rcptTo)).toEqual(fed.map((_, i) => [`u${i}@${d}`]));
    for (const f of fed) expect(h.resultsFor(f.messageId)[0]!.recipients[0]!.outcome).toBe('delivered');
    expect(connections).toBe(1);
    // After MOAT_SMTP_IDLE_MS the kept connection is closed with QUIT.
    await eventually(() => new Promise<boolean>((resolve) => counter.getConnections((_, n) => resolve(n === 0))));
    counter.close();
  });
});
