import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { keyringFromConfig, MessageStore, TenantRepository } from '@moat/store';
import { eventually, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, type RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe } from './support.js';

// SMTP smuggling (CVE-2023-51764/51765/51766): a DATA body holding an end-of-data that some
// relay further on honours (`<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>`) followed by commands.
// The raw socket sends exactly these bytes; a client library would normalise them to CRLF.

const refused = '550 5.6.0 Message contains bare CR or LF line endings (RFC 5321 section 2.3.8); send CRLF line endings';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;
let store: MessageStore;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  const tenant = (await tenants.createTenant({ name: 'Tenant A' })).id;
  await tenants.createDomain(tenant, { name: 'a.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
  ingress = await startIngress(t);
  store = new MessageStore(pool, keyringFromConfig(loadConfig(configSchema, t.env)));
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

/** MAIL, RCPT and DATA on an open session, up to the 354. */
async function startData(dialog: SmtpDialog): Promise<void> {
  expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 /);
  expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 /);
  expect(await dialog.command('DATA')).toMatch(/^354 /);
}

const smuggled = (eol: string) =>
  `MAIL FROM:<x@y>${eol}RCPT TO:<victim@a.example>${eol}DATA${eol}From: <ceo@a.example>${eol}Subject: smuggled${eol}${eol}pay now${eol}.${eol}`;

const payloads: Array<{ name: string; parts: string[] }> = [
  { name: '<LF>.<LF>', parts: [`Subject: hello\r\n\r\nhello\n.\n${smuggled('\n')}\r\n.\r\n`] },
  { name: '<CR>.<CR>', parts: [`Subject: hello\r\n\r\nhello\r.\r${smuggled('\r')}\r\n.\r\n`] },
  { name: '<LF>.<CR><LF>', parts: [`Subject: hello\r\n\r\nhello\n.\r\n${smuggled('\r\n')}`] },
  // The bare CR ends one TCP segment and the dot starts the next: the verdict spans chunks.
  { name: '<CR>.<CR> split after the CR', parts: [`Subject: hello\r\n\r\nhello\r`, `.\r${smuggled('\r')}\r\n.\r\n`] },
];

describe('ingress against SMTP smuggling', () => {
  for (const { name, parts } of payloads) {
    it(`when DATA smuggles ${name}, then one 550 5.6.0 answers it, nothing is stored or published, and the session still serves a CRLF message`, async () => {
      const before = await storedRows();
      const published = probe.events.length;
      const { dialog } = await SmtpDialog.open(ingress.smtpPort);
      try {
        await dialog.command('EHLO client.test');
        await startData(dialog);
        for (const [i, part] of parts.entries()) {
          if (i > 0) await sleep(100);
          dialog.write(part);
        }
        expect(await dialog.next()).toBe(refused);
        // Exactly one reply: the smuggled MAIL/RCPT/DATA were never read as commands.
        await expect(dialog.next(750)).rejects.toThrow('no SMTP reply');
        expect(await storedRows()).toBe(before);
        expect(probe.events.length).toBe(published);

        await startData(dialog);
        dialog.write('Subject: clean\r\n\r\nclean\r\n.\r\n');
        const messageId = queuedId(await dialog.next());
        const event = await eventually(() => probe.events.find((e) => e.payload.messageId === messageId));
        expect(event.payload.rcptTo).toEqual(['alice@a.example']);
        expect((await store.get(event.payload.store)).toString('latin1')).toBe('Subject: clean\r\n\r\nclean\r\n');
        expect(await storedRows()).toBe(before + 1);
        expect(probe.events.length).toBe(published + 1);
      } finally {
        dialog.close();
      }
    });
  }

  it('when a CRLF message has lines that start with a dot, then it is stored byte for byte after dot-unstuffing', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      await dialog.command('EHLO client.test');
      await startData(dialog);
      // RFC 5321 §4.5.2: the client doubles a leading dot; ingress removes exactly one.
      dialog.write('Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n.\r\n');
      const messageId = queuedId(await dialog.next());
      const event = await eventually(() => probe.events.find((e) => e.payload.messageId === messageId));
      const expected = Buffer.from('Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n', 'latin1');
      expect((await store.get(event.payload.store)).equals(expected)).toBe(true);
      expect(event.payload.size).toBe(expected.length);
    } finally {
      dialog.close();
    }
  });
});
