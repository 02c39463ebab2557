import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, eventually } from '@moat/testkit';
import { startHarness, uniq, type Harness } from './harness.js';

// The router with a real sender: message.filtered in, SMTP out to servers playing the
// customer's, delivery.result back, retries through the scheduler.

let h: Harness;
const servers: CustomerServer[] = [];

async function customer(opts: ConstructorParameters<typeof CustomerServer>[0] = {}): Promise<CustomerServer> {
  const s = new CustomerServer(opts);
  await s.start();
  servers.push(s);
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  h = await startHarness();
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
}, 60_000);

describe('routing', () => {
  it('when recipients are in two domains with different routes, then each destination gets one transaction and a result per recipient', async () => {
    const s1 = await customer();
    const s2 = await customer();
    const d1 = `a${uniq()}.example`;
    const d2 = `b${uniq()}.example`;
    const tenantId = await h.protect(d1, [{ host: '127.0.0.1', port: s1.port, priority: 10 }]);
    await h.tenants.createDomain(tenantId, { name: d2, routes: [{ host: '127.0.0.1', port: s2.port, priority: 10 }] });
    const rcpts = [`x@${d1}`, `y@${d2}`, `z@${d1}`];
    const fed = await h.feed({ tenantId, rcpts });
    await eventually(() => h.resultsFor(fed.messageId).length === 2);
    expect(s1.transactions.map((tx) => tx.rcptTo)).toEqual([[`x@${d1}`, `z@${d1}`]]);
    expect(s2.transactions.map((tx) => tx.rcptTo)).toEqual([[`y@${d2}`]]);
    const recipients = h.resultsFor(fed.messageId).flatMap((r) => r.recipients);
    expect(recipients.map((r) => r.rcpt).sort()).toEqual([...rcpts].sort());
    for (const r of recipients) {
      expect(r.outcome).toBe('delivered');
      expect(r.reply.code).toBe(250);
      expect(r.reply.text).toMatch(/queued as/);
    }
    const rows = await eventually(async () => {
      const all = await h.deliveries.forMessage(fed.messageId);
      return all.length === 2 && all.every((d) => d.status === 'done') ? all : null;
    });
    expect(rows.map((d) => d.destination).sort()).toEqual([`127.0.0.1:${s1.port}/10`, `127.0.0.1:${s2.port}/10`].sort());
    // The routing decision is visible through one delivery.requested per destination (the
    // tracker's delivery_requested timeline entries); no separate 'routed' event is published.
    const requested = h.events.flatMap((e) => (e.type === 'delivery.requested' && e.payload.messageId === fed.messageId ? [e.payload] : []));
    expect(requested.map((r) => r.destination).sort()).toEqual(rows.map((d) => d.destination).sort());
    expect(h.trackingFor(fed.messageId).filter((e) => e.kind === 'routed')).toEqual([]);
  });

  it('when recipients get 450, 550 and 250 at RCPT, then they are deferred, failed and delivered, and the deferred one is retried alone', async () => {
    const rcptAttempts = new Map<string, number>();
    const s = await customer({
      rcptReply: (rcpt) => {
        const n = (rcptAttempts.get(rcpt) ?? 0) + 1;
        rcptAttempts.set(rcpt, n);
        if (rcpt.startsWith('later@') && n === 1) return [450, '4.2.1 Mailbox busy, try later'];
        if (rcpt.startsWith('nobody@')) return [550, '5.1.1 <nobody> User unknown'];
        return null;
      },
    });
    const d = `m${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const fed = await h.feed({ tenantId, rcpts: [`later@${d}`, `nobody@${d}`, `ok@${d}`] });
    const first = await eventually(() => h.resultsFor(fed.messageId).find((r) => r.attempt === 1));
    const byRcpt = Object.fromEntries(first.recipients.map((r) => [r.rcpt.split('@')[0], r]));
    expect(byRcpt.later).toMatchObject({ outcome: 'deferred', reply: { code: 450, enhanced: '4.2.1', text: 'Mailbox busy, try later' } });
    expect(byRcpt.nobody).toMatchObject({ outcome: 'failed', reply: { code: 550, enhanced: '5.1.1', text: '<nobody> User unknown' } });
    expect(byRcpt.ok).toMatchObject({ outcome: 'delivered', reply: { code: 250 } });

    const second = await eventually(() => h.resultsFor(fed.messageId).find((r) => r.attempt === 2));
    expect(second.recipients).toEqual([expect.objectContaining({ rcpt: `later@${d}`, outcome: 'delivered' })]);
    expect(s.transactions.map((tx) => tx.rcptTo)).toEqual([[`ok@${d}`], [`later@${d}`]]);
    const retry = h.trackingFor(fed.messageId).find((e) => e.kind === 'retry_scheduled');
    expect(retry).toMatchObject({ rcpt: [`later@${d}`], detail: { attempt: 2 } });
    const [row] = await eventually(async () => {
      const rows = await h.deliveries.forMessage(fed.messageId);
      return rows[0]?.status === 'done' ? rows : null;
    });
    expect(row!.rcpts).toEqual([]);
    expect(row!.attempt).toBe(2);
  });

  it('when the customer server is down, then the recipients are deferred, and once it is back they are delivered exactly once', async () => {
    const s = await customer();
    const d = `down${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    await s.stop();
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`, `v@${d}`] });
    const deferred = await eventually(() => h.resultsFor(fed.messageId)[0]);
    expect(deferred.recipients.every((r) => r.outcome === 'deferred' && r.reply.code === null)).toBe(true);
    expect(deferred.error).toMatch(/ECONNREFUSED|refused/i);
    await eventually(() => h.trackingFor(fed.messageId).some((e) => e.kind === 'retry_scheduled'));
    await s.restart();
    await eventually(() => h.resultsFor(fed.messageId).some((r) => r.recipients.every((x) => x.outcome === 'delivered')), 20_000);
    // Let the scheduler run a few more rounds: nothing may be sent again.
    await sleep(1_500);
    expect(s.transactions.map((tx) => tx.rcptTo)).toEqual([[`u@${d}`, `v@${d}`]]);
    const [row] = await h.deliveries.forMessage(fed.messageId);
    expect(row!.status).toBe('done');
  });

  it('when a row is stuck in publishing with an expired lease (a router died), then the scheduler publishes it and it is delivered', async () => {
    const s = await customer();
    const d = `stuck${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const raw = Buffer.from(`Subject: stuck\r\n\r\nbody\r\n`);
    const messageId = randomUUID();
    const receivedAt = new Date();
    await h.store.put({ id: messageId, tenantId, receivedAt, sha256: '0'.repeat(64), raw });
    const deliveryId = randomUUID();
    const prepend = 'X-Moat-Verdict: deliver\r\n';
    await h.db.query(
      `INSERT INTO deliveries (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, lease_until)
       VALUES ($1, $2, $3, $4, 'default', $5, $6, 's@outside.test', $7, $8, $9, 1, 'publishing', now() - interval '1 second')`,
      [deliveryId, messageId, tenantId, receivedAt, `127.0.0.1:${s.port}/10`, JSON.stringify([{ host: '127.0.0.1', port: s.port, priority: 10 }]), [`u@${d}`], prepend, raw.length + prepend.length],
    );
    const tx = await eventually(() => s.transactions.find((x) => x.rcptTo.includes(`u@${d}`)));
    expect(tx.data.toString()).toBe(prepend + raw.toString());
    await eventually(async () => (await h.deliveries.get(deliveryId))?.status === 'done');
    expect(s.transactions).toHaveLength(1);
  });

  it('when a row has been queued for very long (its request was dead-lettered), then the scheduler publishes it again and it is delivered', async () => {
    const s = await customer();
    const d = `parked${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const raw = Buffer.from(`Subject: parked\r\n\r\nbody\r\n`);
    const messageId = randomUUID();
    const receivedAt = new Date();
    await h.store.put({ id: messageId, tenantId, receivedAt, sha256: '0'.repeat(64), raw });
    const deliveryId = randomUUID();
    await h.db.query(
      `INSERT INTO deliveries (id, message_id, tenant_id, received_at, pool, destination, routes, mail_from, rcpts, prepend_headers, size, attempt, status, updated_at)
       VALUES ($1, $2, $3, $4, 'default', $5, $6, 's@outside.test', $7, '', $8, 1, 'queued', now() - interval '2 hours')`,
      [deliveryId, messageId, tenantId, receivedAt, `127.0.0.1:${s.port}/10`, JSON.stringify([{ host: '127.0.0.1', port: s.port, priority: 10 }]), [`u@${d}`], raw.length],
    );
    await eventually(async () => (await h.deliveries.get(deliveryId))?.status === 'done');
    expect(s.transactions.map((tx) => tx.data.toString())).toEqual([raw.toString()]);
  });

  it('when message.filtered is delivered twice, then the message is routed and sent once', async () => {
    const s = await customer();
    const d = `twice${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
    await eventually(() => h.resultsFor(fed.messageId).length === 1);
    await h.broker.publish('message.filtered', fed.event);
    await sleep(1_000);
    expect(s.transactions).toHaveLength(1);
    expect(h.events.filter((e) => e.type === 'delivery.requested' && e.payload.messageId === fed.messageId)).toHaveLength(1);
  });

  it('when a message is split (one part delivered, one quarantined and later released twice), then each part is routed once under its own key', async () => {
    const s = await customer();
    const d = `split${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const [u, v] = [`u@${d}`, `v@${d}`];
    const parts = [
      { verdict: 'deliver' as const, rcptTo: [u] },
      { verdict: 'quarantine' as const, rcptTo: [v] },
    ];
    const fed = await h.feed({ tenantId, rcpts: [u] });
    if (fed.event.type !== 'message.filtered') throw new Error('fed a message.filtered');
    const base = fed.event.payload;
    // The delivered part, as the filter publishes it (the feed above was the whole message: republished as the part, nothing more goes out).
    await h.broker.publish('message.filtered', h.broker.envelope('message.filtered', { ...base, split: { part: 'deliver', parts } }));
    await h.broker.publish('message.filtered', h.broker.envelope('message.filtered', { ...base, rcptTo: [v], verdict: 'quarantine', split: { part: 'quarantine', parts } }));
    await eventually(() => h.trackingFor(fed.messageId).some((e) => e.kind === 'quarantined' && e.rcpt.join() === v));
    await eventually(() => s.transactions.length === 1);
    const released = h.broker.envelope('message.filtered', { ...base, rcptTo: [v], verdict: 'deliver', split: { part: 'quarantine', parts }, release: { by: 'test', at: new Date().toISOString() } });
    await h.broker.publish('message.filtered', released);
    await h.broker.publish('message.filtered', { ...released, id: randomUUID() });
    await eventually(() => s.transactions.length === 2);
    await sleep(1_000);
    expect(s.transactions.map((x) => x.rcptTo)).toEqual([[u], [v]]);
    expect(await h.deliveries.forMessage(fed.messageId)).toHaveLength(2);
  });

  it('when a recipient domain is no longer protected, then that recipient gets a final failed event and the others are delivered', async () => {
    const s = await customer();
    const d = `kept${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const gone = `gone${uniq()}.example`;
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`, `v@${gone}`] });
    const failed = await eventually(() => h.trackingFor(fed.messageId).find((e) => e.kind === 'failed'));
    expect(failed.rcpt).toEqual([`v@${gone}`]);
    expect(String(failed.detail.reason)).toContain(gone);
    await eventually(() => s.transactions.find((x) => x.rcptTo.includes(`u@${d}`)));
    expect(s.transactions[0]!.rcptTo).toEqual([`u@${d}`]);
  });

  it('when the verdict is quarantine or reject, then an event is published and nothing is delivered', async () => {
    const s = await customer();
    const d = `q${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const q = await h.feed({ tenantId, rcpts: [`u@${d}`], verdict: 'quarantine' });
    const r = await h.feed({ tenantId, rcpts: [`u@${d}`], verdict: 'reject' });
    await eventually(() => h.trackingFor(q.messageId).some((e) => e.kind === 'quarantined'));
    await eventually(() => h.trackingFor(r.messageId).some((e) => e.kind === 'rejected'));
    await sleep(300);
    expect(await h.deliveries.forMessage(q.messageId)).toEqual([]);
    expect(await h.deliveries.forMessage(r.messageId)).toEqual([]);
    expect(s.transactions).toHaveLength(0);
  });
});
