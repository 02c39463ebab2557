import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import type { RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe } from './support.js';

// Time limits: an idle client, and clients that drip bytes steadily enough that no idle timeout
// ever fires (slowloris), in a command line and in DATA. Each is cut off with 421 4.4.2, and a
// normal client is served afterwards.

const idleMs = 1_000;
const dataMs = 2_000;
const dripMs = 250;

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  const tenant = (await tenants.createTenant({ name: 'Tenant A' })).id;
  await tenants.createDomain(tenant, { name: 'a.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
  ingress = await startIngress(t, { MOAT_SMTP_IDLE_TIMEOUT_MS: String(idleMs), MOAT_SMTP_DATA_TIMEOUT_MS: String(dataMs) });
});

afterAll(async () => {
  await ingress?.stop();
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
});

async function storedRows(): Promise<number> {
  return Number((await pool.query('SELECT count(*) AS n FROM messages')).rows[0].n);
}

async function aNormalClientIsServed(): Promise<void> {
  const raw = makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'], subject: 'after the abuse' });
  const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example'], raw });
  expect(sent.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
  await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(sent.response)));
}

/** Writes one byte of `text` every dripMs (round and round) until stopped. */
function drip(dialog: SmtpDialog, text: string): { stop(): void } {
  let i = 0;
  const timer = setInterval(() => dialog.write(text[i++ % text.length]!), dripMs);
  return { stop: () => clearInterval(timer) };
}

describe('SMTP time limits', () => {
  it('when a client stays silent, then it gets 421 4.4.2 after the idle timeout and is disconnected', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      expect(await dialog.command('EHLO client.test')).toMatch(/^250-/);
      const since = Date.now();
      expect(await dialog.next(idleMs * 5)).toBe('421 4.4.2 Idle timeout, closing connection');
      expect(Date.now() - since).toBeGreaterThanOrEqual(idleMs - 100);
      await dialog.closed();
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a client drips a command line one byte at a time, then it gets 421 4.4.2 once the line is not complete within the idle timeout', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    const dripping = drip(dialog, 'NOOP and on and on ');
    const since = Date.now();
    try {
      expect(await dialog.next(idleMs * 5)).toBe('421 4.4.2 Command line not completed in time, closing connection');
      // The line's first byte went out one drip after `since`; bytes kept coming the whole time,
      // so no idle timeout could have fired.
      expect(Date.now() - since).toBeGreaterThanOrEqual(idleMs + dripMs - 100);
      await dialog.closed();
    } finally {
      dripping.stop();
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a client drips its message one byte at a time, then it gets 421 4.4.2 after the DATA time limit and nothing is stored', async () => {
    const before = await storedRows();
    const published = probe.events.length;
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    let dripping: { stop(): void } | undefined;
    try {
      expect(await dialog.command('EHLO client.test')).toMatch(/^250-/);
      expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('DATA')).toMatch(/^354 /);
      const since = Date.now();
      dripping = drip(dialog, 'Subject: slow\r\n\r\nslowly, slowly\r\n');
      expect(await dialog.next(dataMs * 3)).toBe('421 4.4.2 Message not completed in time, closing connection');
      expect(Date.now() - since).toBeGreaterThanOrEqual(dataMs - 100);
      await dialog.closed();
    } finally {
      dripping?.stop();
      dialog.close();
    }
    expect(await storedRows()).toBe(before);
    expect(probe.events.length).toBe(published);
    await aNormalClientIsServed();
  });

  it('when a client sends commands and a message at a normal pace, then no time limit gets in its way', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      // Each pause is well under the idle timeout; together they are longer than it.
      for (const line of ['EHLO client.test', 'NOOP', 'NOOP', 'MAIL FROM:<sender@outside.example>', 'RCPT TO:<alice@a.example>']) {
        expect(await dialog.command(line)).toMatch(/^250[ -]/);
        await new Promise((resolve) => setTimeout(resolve, idleMs / 3));
      }
      expect(await dialog.command('DATA')).toMatch(/^354 /);
      dialog.write('Subject: paced\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, idleMs / 2));
      dialog.write('body\r\n.\r\n');
      expect(await dialog.next()).toMatch(/^250 2\.0\.0 Ok: queued as /);
    } finally {
      dialog.close();
    }
  });
});
