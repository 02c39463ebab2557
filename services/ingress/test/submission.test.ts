import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboundIpRepository, SmtpCredentialRepository, TenantRepository } from '@moat/store';
import { eventually, testPool, type TestEnv } from '@moat/testkit';
import type { RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe, type Accepted } from './support.js';

// The submission side of ingress against the real Postgres, Redis and RabbitMQ, command by
// command: what EHLO offers, the SASL exchanges, what a relaying transaction accepts, and the
// message.accepted it publishes. (The whole relay through to the remote MX: tests/outbound.test.ts.)

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;
let acme: string;
let user: { username: string; password: string };
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  acme = (await tenants.createTenant({ name: 'Acme' })).id;
  const other = (await tenants.createTenant({ name: 'Other' })).id;
  const route = { host: '127.0.0.1', port: 2600, priority: 10 };
  await tenants.createDomain(acme, { name: 'acme.example', routes: [route] });
  // A subdomain of Acme's domain that another tenant protects: the more specific name decides.
  await tenants.createDomain(other, { name: 'lab.acme.example', routes: [route] });
  const { credential, password } = await new SmtpCredentialRepository(pool).create(acme, { username: 'relay@acme.example' });
  user = { username: credential.username, password };
  await new OutboundIpRepository(pool).add(acme, { cidr: '127.0.0.81' });
  probe = await startProbe(t);
  ingress = await startIngress(t, { MOAT_MAX_RECIPIENTS: '3', MOAT_DOMAIN_CACHE_MS: '0', MOAT_SMTP_AUTH_MAX_FAILURES: '50' });
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

/** A session on the submission port inside TLS, EHLO sent again there. */
async function tlsSession(): Promise<{ dialog: SmtpDialog; ehlo: string }> {
  const dialog = await SmtpDialog.openTls(ingress.submissionPort);
  return { dialog, ehlo: await dialog.command('EHLO client.test') };
}

/** Sends a small message in an open transaction and returns the DATA reply. */
async function data(dialog: SmtpDialog, subject = 'relayed'): Promise<string> {
  expect(await dialog.command('DATA')).toMatch(/^354 /);
  dialog.write(`From: <alice@acme.example>\r\nSubject: ${subject}\r\n\r\nbody\r\n.\r\n`);
  return dialog.next();
}

describe('submission port', () => {
  it('when a client says EHLO before and after STARTTLS, then AUTH PLAIN LOGIN is offered only inside TLS, and ENHANCEDSTATUSCODES both times', async () => {
    const { dialog, greeting } = await SmtpDialog.open(ingress.submissionPort);
    try {
      expect(greeting).toMatch(/^220 /);
      const before = await dialog.command('EHLO client.test');
      expect(before).toContain('STARTTLS');
      expect(before).toContain('ENHANCEDSTATUSCODES');
      expect(before).not.toMatch(/AUTH/);
    } finally {
      dialog.close();
    }
    const { dialog: secure, ehlo } = await tlsSession();
    try {
      expect(ehlo).toMatch(/^250-AUTH PLAIN LOGIN$/m);
      expect(ehlo).not.toContain('STARTTLS');
    } finally {
      secure.close();
    }
  });

  it('when AUTH LOGIN is answered step by step, then 334 prompts, 235 2.7.0, AUTH is no longer offered, a second AUTH is refused, and <> relays as the tenant’s outbound mail with ESMTPSA', async () => {
    const { dialog } = await tlsSession();
    try {
      expect(await dialog.command('AUTH LOGIN')).toBe(`334 ${b64('Username:')}`);
      expect(await dialog.command(b64(user.username.toUpperCase()))).toBe(`334 ${b64('Password:')}`);
      expect(await dialog.command(b64(user.password))).toBe('235 2.7.0 Authentication successful');
      expect(await dialog.command('EHLO client.test')).not.toMatch(/AUTH/);
      expect(await dialog.command(`AUTH PLAIN ${b64(`\0${user.username}\0${user.password}`)}`)).toMatch(/^503 5\.5\.1 /);
      expect(await dialog.command('MAIL FROM:<>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<someone@Remote.Example>')).toMatch(/^250 /);
      const reply = await data(dialog, 'auto-reply');
      const event = await eventFor(queuedId(reply));
      expect(event.payload).toMatchObject({ tenantId: acme, direction: 'outbound', mailFrom: '', rcptTo: ['someone@remote.example'] });
      expect(event.payload.prependHeaders).toMatch(/\sby mx\.moat\.test \(Moat\) with ESMTPSA id /);
    } finally {
      dialog.close();
    }
  });

  it('when an AUTH exchange is aborted with *, then 501 and the session goes on; a line that is not base64 ASCII ends the exchange', async () => {
    const { dialog } = await tlsSession();
    try {
      expect(await dialog.command('AUTH LOGIN')).toMatch(/^334 /);
      expect(await dialog.command('*')).toMatch(/^501 5\.\d\.\d+ Authentication aborted/);
      expect(await dialog.command('NOOP')).toMatch(/^250 /);
      expect(await dialog.command('AUTH LOGIN')).toMatch(/^334 /);
      expect(await dialog.command('bäd')).toMatch(/^501 5\.5\.2 /);
      // The exchange is over: the next line is a command again.
      expect(await dialog.command('NOOP')).toMatch(/^250 /);
    } finally {
      dialog.close();
    }
  });

  it('when AUTH PLAIN names another authorization identity, or an unoffered mechanism is asked for, then it is refused', async () => {
    const { dialog } = await tlsSession();
    try {
      expect(await dialog.command(`AUTH PLAIN ${b64(`boss@acme.example\0${user.username}\0${user.password}`)}`)).toBe('535 5.7.8 Authentication credentials invalid');
      expect(await dialog.command('AUTH CRAM-MD5')).toMatch(/^504 5\.\d\.\d+ /);
      // The authorization identity may be the username itself, or be left empty.
      expect(await dialog.command(`AUTH PLAIN ${b64(`${user.username}\0${user.username}\0${user.password}`)}`)).toBe('235 2.7.0 Authentication successful');
    } finally {
      dialog.close();
    }
  });

  it('when an authenticated client gives recipients, then any domain is accepted, relay tricks get 553 5.1.3, and the fourth gets 452 4.5.3', async () => {
    const { dialog } = await tlsSession();
    try {
      expect(await dialog.command(`AUTH PLAIN ${b64(`\0${user.username}\0${user.password}`)}`)).toMatch(/^235 /);
      expect(await dialog.command('MAIL FROM:<news@mail.acme.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<a@one.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<user@[10.0.0.1]>')).toBe('553 5.1.3 Recipient address not accepted for relaying (ip-literal)');
      expect(await dialog.command('RCPT TO:<user%far.example@two.example>')).toBe('553 5.1.3 Recipient address not accepted for relaying (percent-hack)');
      expect(await dialog.command('RCPT TO:<b@acme.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<c@lab.acme.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<d@three.example>')).toBe('452 4.5.3 Too many recipients');
      const event = await eventFor(queuedId(await data(dialog)));
      expect(event.payload).toMatchObject({ direction: 'outbound', tenantId: acme, mailFrom: 'news@mail.acme.example', rcptTo: ['a@one.example', 'b@acme.example', 'c@lab.acme.example'] });
    } finally {
      dialog.close();
    }
  });

  it('when the sender is a subdomain another tenant protects, then it is not the client’s (550 5.7.1)', async () => {
    const { dialog } = await tlsSession();
    try {
      expect(await dialog.command(`AUTH PLAIN ${b64(`\0${user.username}\0${user.password}`)}`)).toMatch(/^235 /);
      expect(await dialog.command('MAIL FROM:<x@lab.acme.example>')).toBe('550 5.7.1 Sender address <x@lab.acme.example> is not in a domain of your organisation');
      expect(await dialog.command('MAIL FROM:<x@[192.0.2.1]>')).toBe('553 5.1.7 Sender address is not a valid mailbox in a domain');
    } finally {
      dialog.close();
    }
  });
});

describe('implicit TLS port', () => {
  it('when a client connects, then TLS comes first, EHLO offers AUTH and no STARTTLS, and an authenticated message is accepted', async () => {
    const { dialog, greeting } = await SmtpDialog.openImplicitTls(ingress.submissionsPort);
    try {
      expect(greeting).toMatch(/^220 /);
      const ehlo = await dialog.command('EHLO client.test');
      expect(ehlo).toMatch(/AUTH PLAIN LOGIN/);
      expect(ehlo).not.toContain('STARTTLS');
      expect(await dialog.command(`AUTH PLAIN ${b64(`\0${user.username}\0${user.password}`)}`)).toMatch(/^235 /);
      expect(await dialog.command('MAIL FROM:<alice@acme.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<bob@remote.example>')).toMatch(/^250 /);
      const event = await eventFor(queuedId(await data(dialog)));
      expect(event.payload.direction).toBe('outbound');
      expect(event.payload.client.tls).not.toBeNull();
    } finally {
      dialog.close();
    }
  });
});

describe('MX port', () => {
  it('when a registered address sends as its tenant, then the message is outbound; AUTH stays unknown there', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort, '127.0.0.81');
    try {
      expect(await dialog.command('EHLO server.acme.example')).not.toMatch(/AUTH/);
      expect(await dialog.command('AUTH LOGIN')).toBe('500 5.5.1 Command not recognized');
      expect(await dialog.command('MAIL FROM:<alice@acme.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<bob@remote.example>')).toMatch(/^250 /);
      const event = await eventFor(queuedId(await data(dialog)));
      expect(event.payload).toMatchObject({ direction: 'outbound', tenantId: acme, client: expect.objectContaining({ ip: '127.0.0.81' }) });
      expect(event.payload.prependHeaders).toMatch(/\(Moat\) with ESMTP id /);
    } finally {
      dialog.close();
    }
  });

  it('when the same registered address sends to its own protected domain with a foreign sender, then that is inbound mail as from anyone', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort, '127.0.0.81');
    try {
      await dialog.command('EHLO server.acme.example');
      expect(await dialog.command('MAIL FROM:<news@vendor.example>')).toMatch(/^250 /);
      expect(await dialog.command('RCPT TO:<bob@remote.example>')).toMatch(/^550 5\.7\.1 Relaying denied: the sender/);
      expect(await dialog.command('RCPT TO:<carol@acme.example>')).toMatch(/^250 /);
      const event = await eventFor(queuedId(await data(dialog)));
      expect(event.payload).toMatchObject({ direction: 'inbound', tenantId: acme });
    } finally {
      dialog.close();
    }
  });
});
