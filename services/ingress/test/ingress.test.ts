import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, uuidFrom } from '@moat/runtime';
import { keyringFromConfig, MessageStore, TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, type RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, sendOverStartTls, SmtpDialog, startIngress, startProbe, type Accepted } from './support.js';

const maxBytes = 256 * 1024;
let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;
let store: MessageStore;
let tenantA: string;
let tenantB: string;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  tenantA = (await tenants.createTenant({ name: 'Tenant A' })).id;
  tenantB = (await tenants.createTenant({ name: 'Tenant B' })).id;
  const route = { host: '127.0.0.1', port: 2600, priority: 10 };
  await tenants.createDomain(tenantA, { name: 'a.example', routes: [route] });
  await tenants.createDomain(tenantA, { name: 'a2.example', routes: [route] });
  await tenants.createDomain(tenantB, { name: 'b.example', routes: [route] });
  probe = await startProbe(t);
  const env = { MOAT_MAX_MESSAGE_BYTES: String(maxBytes), MOAT_MAX_RECIPIENTS: '3' };
  ingress = await startIngress(t, env);
  store = new MessageStore(pool, keyringFromConfig(loadConfig(configSchema, { ...t.env, ...env })));
});

afterAll(async () => {
  await ingress?.stop();
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
});

async function eventFor(messageId: string): Promise<Accepted> {
  return eventually(() => probe.events.find((e) => e.payload.messageId === messageId));
}

async function storedRows(): Promise<number> {
  return Number((await pool.query('SELECT count(*) AS n FROM messages')).rows[0].n);
}

/** An open session with EHLO and MAIL FROM done. */
async function transaction(): Promise<SmtpDialog> {
  const { dialog } = await SmtpDialog.open(ingress.smtpPort);
  await dialog.command('EHLO client.test');
  expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 /);
  return dialog;
}

describe('ingress', () => {
  it('when a protected domain gets a message, then 250 comes with the exact bytes stored encrypted and message.accepted published', async () => {
    // Dot-stuffed lines, 8-bit bytes and a header-looking body: all must come back unchanged.
    const raw = Buffer.concat([
      makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'], body: '.leading dot\r\n..two dots\r\nReceived: not a header\r\n\u00e9t\u00e9' }),
      Buffer.from([0xc3, 0xa9, 0x0d, 0x0a]),
    ]);
    const result = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['Alice@A.Example'], raw });
    expect(result.ok).toBe(true);
    const messageId = queuedId(result.response);

    const event = await eventFor(messageId);
    expect(event.id).toBe(uuidFrom('message.accepted', messageId));
    expect(event.payload).toMatchObject({
      messageId,
      tenantId: tenantA,
      direction: 'inbound',
      mailFrom: 'sender@outside.example',
      rcptTo: ['Alice@a.example'],
      client: { ip: '127.0.0.1', helo: 'client.test', ptr: null, tls: null },
      size: raw.length,
      sha256: createHash('sha256').update(raw).digest('hex'),
      store: { messageId },
    });
    expect(event.payload.prependHeaders).toMatch(
      new RegExp(
        `^Received: from client\\.test \\(unknown \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.moat\\.test \\(Moat\\) with ESMTP id ${messageId}\\r\\n\\tfor <Alice@a\\.example>;\\r\\n\\t[A-Z][a-z]{2}, \\d{1,2} [A-Z][a-z]{2} \\d{4} \\d{2}:\\d{2}:\\d{2} \\+0000\\r\\n$`,
      ),
    );
    const body = await store.get(event.payload.store);
    expect(body.equals(raw)).toBe(true);
    const row = await pool.query('SELECT tenant_id, size, sha256, body FROM messages WHERE id = $1', [messageId]);
    expect(row.rows).toHaveLength(1);
    expect(row.rows[0]).toMatchObject({ tenant_id: tenantA, size: raw.length, sha256: event.payload.sha256 });
    expect((row.rows[0].body as Buffer).includes(Buffer.from('leading dot'))).toBe(false);
  });

  it('when the recipient domain is not protected, then RCPT gets 550 5.7.1 Relaying denied', async () => {
    const dialog = await transaction();
    expect(await dialog.command('RCPT TO:<someone@elsewhere.example>')).toBe('550 5.7.1 Relaying denied');
    dialog.close();
    const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['someone@elsewhere.example'], raw: makeMessage({ from: 'sender@outside.example', to: ['someone@elsewhere.example'] }) });
    expect(sent).toMatchObject({ ok: false, code: 550, stage: 'RCPT TO' });
  });

  it('when a recipient hides a relay in its address, then RCPT gets 550 5.7.1 even on a protected domain', async () => {
    const dialog = await transaction();
    for (const rcpt of ['user%elsewhere.example@a.example', 'elsewhere.example!user@a.example', 'user@[127.0.0.1]', 'postmaster']) {
      expect(await dialog.command(`RCPT TO:<${rcpt}>`), rcpt).toBe('550 5.7.1 Relaying denied');
    }
    // smtp-server drops a source route before we see the address (RFC 5321 appendix C): what
    // remains is judged on its own, so a route never makes us relay.
    expect(await dialog.command('RCPT TO:<@a.example:user@elsewhere.example>')).toBe('550 5.7.1 Relaying denied');
    dialog.close();
  });

  it('when a client says EHLO, then it sees SIZE with the limit and STARTTLS, and no AUTH', async () => {
    const { dialog, greeting } = await SmtpDialog.open(ingress.smtpPort);
    expect(greeting).toBe('220 mx.moat.test ESMTP Moat');
    const ehlo = await dialog.command('EHLO client.test');
    expect(ehlo).toMatch(new RegExp(`^250[- ]SIZE ${maxBytes}$`, 'm'));
    expect(ehlo).toMatch(/^250[- ]STARTTLS$/m);
    expect(ehlo).not.toMatch(/AUTH/);
    dialog.close();
  });

  it('when MAIL FROM declares a size over the limit, then it gets 552 before any data is sent', async () => {
    const { dialog: d } = await SmtpDialog.open(ingress.smtpPort);
    await d.command('EHLO client.test');
    expect(await d.command(`MAIL FROM:<sender@outside.example> SIZE=${maxBytes + 1}`)).toMatch(/^552 .*maximum message size/);
    expect(await d.command(`MAIL FROM:<sender@outside.example> SIZE=${maxBytes}`)).toMatch(/^250 /);
    d.close();
  });

  it('when the message is over the limit, then DATA gets 552 5.3.4 after the final dot and nothing is stored or published', async () => {
    const before = await storedRows();
    const published = probe.events.length;
    const raw = Buffer.concat([makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'] }), Buffer.alloc(maxBytes, 'x'), Buffer.from('\r\n')]);
    const result = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example'], raw });
    expect(result.ok).toBe(false);
    expect(result.code).toBe(552);
    expect(result.response).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    // The session is still usable: the next message on a new transaction goes through.
    const next = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example'], raw: makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'] }) });
    expect(next.ok).toBe(true);
    await eventFor(queuedId(next.response));
    expect(await storedRows()).toBe(before + 1);
    expect(probe.events.length).toBe(published + 1);
  });

  it('when the client uses STARTTLS, then the development certificate serves it and the event records the TLS session', async () => {
    const raw = makeMessage({ from: 'sender@outside.example', to: ['carol@a.example'] });
    const sent = await sendOverStartTls({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['carol@a.example'], raw });
    expect(sent.peerCn).toBe('mx.moat.test');
    const event = await eventFor(queuedId(sent.response));
    expect(event.payload.client.tls).toEqual({ protocol: sent.protocol, cipher: expect.stringMatching(/^TLS_/) });
    expect(event.payload.client.helo).toBe('tls-client.test');
    expect(event.payload.prependHeaders).toContain(' with ESMTPS id ');
    expect((await store.get(event.payload.store)).equals(raw)).toBe(true);
  });

  it("when a second tenant's domain comes in the same transaction, then it gets 452 4.5.3 and can be sent separately", async () => {
    const dialog = await transaction();
    expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 /);
    expect(await dialog.command('RCPT TO:<bob@b.example>')).toBe('452 4.5.3 Recipients of another organisation: send separately');
    expect(await dialog.command('RCPT TO:<dave@a2.example>')).toMatch(/^250 /);
    // RSET starts a new transaction: the tenant is free again.
    expect(await dialog.command('RSET')).toMatch(/^250 /);
    expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 /);
    expect(await dialog.command('RCPT TO:<bob@b.example>')).toMatch(/^250 /);
    dialog.close();

    const raw = makeMessage({ from: 'sender@outside.example', to: ['alice@a.example', 'bob@b.example'] });
    const first = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example', 'bob@b.example'], raw });
    expect(first).toMatchObject({ ok: true, accepted: ['alice@a.example'], rejected: ['bob@b.example'] });
    const second = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['bob@b.example'], raw });
    expect(second.ok).toBe(true);
    expect((await eventFor(queuedId(first.response))).payload).toMatchObject({ tenantId: tenantA, rcptTo: ['alice@a.example'] });
    const forB = (await eventFor(queuedId(second.response))).payload;
    expect(forB).toMatchObject({ tenantId: tenantB, rcptTo: ['bob@b.example'] });
    expect(forB.prependHeaders).toContain('\tfor <bob@b.example>;\r\n');
  });

  it('when a message has several recipients, then all are in the event and the Received header names none', async () => {
    const to = ['one@a.example', 'two@a2.example'];
    const sent = await sendSmtp({ port: ingress.smtpPort, from: '', to, raw: makeMessage({ from: 'mailer-daemon@outside.example', to }) });
    expect(sent.ok).toBe(true);
    const event = await eventFor(queuedId(sent.response));
    expect(event.payload).toMatchObject({ rcptTo: to, mailFrom: '' });
    expect(event.payload.prependHeaders).not.toContain('for <');
  });

  it('when the recipient limit is reached, then the next RCPT gets 452 4.5.3 Too many recipients', async () => {
    const dialog = await transaction();
    for (const n of [1, 2, 3]) expect(await dialog.command(`RCPT TO:<user${n}@a.example>`)).toMatch(/^250 /);
    expect(await dialog.command('RCPT TO:<user4@a.example>')).toBe('452 4.5.3 Too many recipients');
    expect(await dialog.command('RCPT TO:<USER1@a.example>')).toMatch(/^250 /);
    dialog.close();
  });
});
