import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import type { RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe, type Accepted } from './support.js';

// The SMTP hardening limits, each abused over a raw socket (exact bytes, exact replies), and
// after each abuse a normal client still gets its 250. Small limits keep the abuse short.

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;

const limits = {
  MOAT_SMTP_MAX_COMMAND_LINE_BYTES: '600',
  MOAT_SMTP_MAX_MESSAGE_LINE_BYTES: '998',
  MOAT_SMTP_MAX_HEADER_BYTES: '2048',
  MOAT_SMTP_MAX_COMMANDS: '40',
  MOAT_SMTP_MAX_ERRORS: '5',
  MOAT_SMTP_MAX_UNKNOWN_COMMANDS: '3',
  MOAT_SMTP_MAX_CLIENTS_PER_IP: '3',
};

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  const tenant = (await tenants.createTenant({ name: 'Tenant A' })).id;
  await tenants.createDomain(tenant, { name: 'a.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
  ingress = await startIngress(t, limits);
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

function eventFor(messageId: string): Promise<Accepted> {
  return eventually(() => probe.events.find((e) => e.payload.messageId === messageId));
}

/** A raw session after its greeting and EHLO. */
async function session(localAddress?: string): Promise<SmtpDialog> {
  const { dialog, greeting } = await SmtpDialog.open(ingress.smtpPort, localAddress);
  expect(greeting).toMatch(/^220 mx\.moat\.test ESMTP/);
  expect(await dialog.command('EHLO client.test')).toMatch(/^250-mx\.moat\.test/);
  return dialog;
}

/** A clean transaction on an open session: 250 with a message id, and its event published. */
async function deliver(dialog: SmtpDialog, body = 'clean'): Promise<Accepted> {
  expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
  expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
  expect(await dialog.command('DATA')).toMatch(/^354 /);
  dialog.write(`Subject: clean\r\n\r\n${body}\r\n.\r\n`);
  return eventFor(queuedId(await dialog.next()));
}

/** A normal client (nodemailer) on a new connection gets 250 and its message is published. */
async function aNormalClientIsServed(): Promise<void> {
  const raw = makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'], subject: 'after the abuse' });
  const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example'], raw });
  expect(sent.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
  await eventFor(queuedId(sent.response));
}

describe('SMTP limits on command lines', () => {
  it('when a command line is longer than the limit, then 500 5.5.2, the command is not run, and the session still delivers', async () => {
    const dialog = await session();
    try {
      expect(await dialog.command(`MAIL FROM:<${'a'.repeat(600)}@outside.example>`)).toBe('500 5.5.2 Line too long (more than 600 octets)');
      // MAIL never ran: RCPT has no transaction to join.
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toBe('503 5.5.1 Error: need MAIL command');
      await deliver(dialog);
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a command line arrives in pieces and is endless, then it is refused at its end without the session breaking', async () => {
    const dialog = await session();
    try {
      for (let i = 0; i < 20; i++) dialog.write('x'.repeat(4_096));
      dialog.write('\r\n');
      expect(await dialog.next()).toBe('500 5.5.2 Line too long (more than 600 octets)');
      await deliver(dialog);
    } finally {
      dialog.close();
    }
  });

  it('when a command ends with a bare LF, then 500 5.5.2 and it is not run, also with a CRLF command pipelined behind it', async () => {
    const dialog = await session();
    try {
      dialog.write('MAIL FROM:<sender@outside.example>\nRCPT TO:<alice@a.example>\r\n');
      expect(await dialog.next()).toBe('500 5.5.2 Command line with a bare CR or LF (RFC 5321 section 2.3.8); end lines with CRLF');
      expect(await dialog.next()).toBe('503 5.5.1 Error: need MAIL command');
      // "DATA<LF>" must never open the data phase.
      dialog.write('DATA\n');
      expect(await dialog.next()).toMatch(/^500 5\.5\.2 Command line with a bare CR or LF/);
      await deliver(dialog);
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a command holds a bare CR, then 500 5.5.2 and nothing of the line runs', async () => {
    const dialog = await session();
    try {
      dialog.write('NOOP\rMAIL FROM:<sender@outside.example>\r\n');
      expect(await dialog.next()).toBe('500 5.5.2 Command line with a bare CR or LF (RFC 5321 section 2.3.8); end lines with CRLF');
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toBe('503 5.5.1 Error: need MAIL command');
      await deliver(dialog);
    } finally {
      dialog.close();
    }
  });

  it('when a command holds a NUL byte, then 500 5.5.2 and it is not run', async () => {
    const dialog = await session();
    try {
      dialog.write('MAIL FROM:<sender\u0000@outside.example>\r\n');
      expect(await dialog.next()).toBe('500 5.5.2 Command line contains a NUL byte');
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toBe('503 5.5.1 Error: need MAIL command');
      await deliver(dialog);
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a client pipelines a whole transaction and QUIT in one packet, then every command is answered in order and the message is accepted', async () => {
    const dialog = await session();
    try {
      // Beyond RFC 2920 (DATA must end a group), but smtp-server has always taken it: what
      // follows DATA in the packet is the message, what follows the final dot commands again.
      dialog.write('MAIL FROM:<sender@outside.example>\r\nRCPT TO:<alice@a.example>\r\nDATA\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n');
      expect(await dialog.next()).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.next()).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.next()).toMatch(/^354 /);
      await eventFor(queuedId(await dialog.next()));
      expect(await dialog.next()).toBe('221 2.0.0 Bye');
      await dialog.closed();
    } finally {
      dialog.close();
    }
  });

  it('when inside TLS a command ends with a bare LF or is too long, then it is refused the same way', async () => {
    const dialog = await SmtpDialog.openTls(ingress.smtpPort);
    try {
      expect(await dialog.command('EHLO client.test')).toMatch(/^250-/);
      dialog.write('MAIL FROM:<sender@outside.example>\n');
      expect(await dialog.next()).toMatch(/^500 5\.5\.2 Command line with a bare CR or LF/);
      expect(await dialog.command(`NOOP ${'n'.repeat(600)}`)).toBe('500 5.5.2 Line too long (more than 600 octets)');
      const event = await deliver(dialog);
      expect(event.payload.client.tls).not.toBeNull();
    } finally {
      dialog.close();
    }
  });

  it('when MAIL or RCPT carry UTF-8 without SMTPUTF8, then 553 5.6.7; bytes that are not UTF-8 get 501 5.5.2; with SMTPUTF8 the message is accepted', async () => {
    const dialog = await session();
    try {
      expect(await dialog.command('MAIL FROM:<jörg@outside.example>')).toBe('553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)');
      dialog.write('MAIL FROM:<j\xf6rg@outside.example> SMTPUTF8\r\n');
      expect(await dialog.next()).toBe('501 5.5.2 Command contains invalid UTF-8');
      expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('RCPT TO:<jörg@a.example>')).toBe('553 5.6.7 Non-ASCII address without SMTPUTF8 (RFC 6531)');
      expect(await dialog.command('RSET')).toBe('250 2.0.0 Flushed');

      expect(await dialog.command('MAIL FROM:<jörg@outside.example> SMTPUTF8')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('RCPT TO:<jörg@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('DATA')).toMatch(/^354 /);
      dialog.write('Subject: utf-8\r\n\r\nhello\r\n.\r\n');
      const event = await eventFor(queuedId(await dialog.next()));
      expect(event.payload.mailFrom).toBe('jörg@outside.example');
      expect(event.payload.rcptTo).toEqual(['jörg@a.example']);
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when another command holds non-ASCII, then 501 5.5.2', async () => {
    const dialog = await session();
    try {
      expect(await dialog.command('EHLO exämple.test')).toBe('501 5.5.2 Non-ASCII characters are allowed only in MAIL and RCPT with SMTPUTF8 (RFC 6531)');
      await deliver(dialog);
    } finally {
      dialog.close();
    }
  });
});

describe('SMTP limits per session', () => {
  it('when a client sends unknown commands, then each gets 500 5.5.1 up to the limit, the next 421 4.7.0 and the connection closes', async () => {
    const dialog = await session();
    try {
      for (const verb of ['FOO', 'AUTH PLAIN AGFiYwBkZWY=', 'WIZ secret']) expect(await dialog.command(verb)).toBe('500 5.5.1 Command not recognized');
      expect(await dialog.command('BAR')).toBe('421 4.7.0 Too many unrecognized commands, closing connection');
      await dialog.closed();
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a session collects the maximum of error replies, then the last one is followed by 421 4.7.0 and the close', async () => {
    const dialog = await session();
    try {
      expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      for (let i = 1; i <= 4; i++) expect(await dialog.command(`RCPT TO:<user${i}@elsewhere.example>`)).toBe('550 5.7.1 Relaying denied');
      expect(await dialog.command('RCPT TO:<user5@elsewhere.example>')).toBe('550 5.7.1 Relaying denied');
      expect(await dialog.next()).toBe('421 4.7.0 Too many errors, closing connection');
      await dialog.closed();
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when a session sends more commands than the limit (pipelined), then the one over it gets 421 4.7.0 and nothing after it runs', async () => {
    const dialog = await session();
    try {
      // EHLO was command 1 of 40.
      dialog.write('NOOP\r\n'.repeat(39) + 'NOOP\r\nMAIL FROM:<sender@outside.example>\r\n');
      for (let i = 0; i < 39; i++) expect(await dialog.next()).toBe('250 2.0.0 OK');
      expect(await dialog.next()).toBe('421 4.7.0 Too many commands in one session, closing connection');
      await dialog.closed();
      await expect(dialog.next(300)).rejects.toThrow('no SMTP reply');
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });

  it('when an HTTP request comes to the SMTP port, then 421 4.7.0 and the connection closes before its headers are read', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      dialog.write('POST / HTTP/1.1\r\nHost: mx.moat.test\r\n\r\n');
      expect(await dialog.next()).toBe('421 4.7.0 HTTP requests are not accepted here, closing connection');
      await dialog.closed();
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });
});

describe('SMTP limits on message content', () => {
  it('when a message holds a NUL byte, a line over the limit or a header over the limit, then each is refused with its code, nothing is stored, and the session still delivers', async () => {
    const before = await storedRows();
    const published = probe.events.length;
    const dialog = await session();
    try {
      const refusals: Array<[string, string]> = [
        ['Subject: nul\r\n\r\na\u0000b\r\n', '550 5.6.0 Message contains NUL bytes'],
        [`Subject: long\r\n\r\n${'x'.repeat(999)}\r\n`, '550 5.6.0 Message has a line longer than 998 octets'],
        [`${'X-Filler: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n'.repeat(30)}\r\nbody\r\n`, '552 5.3.4 Message header exceeds 2048 octets'],
      ];
      for (const [message, reply] of refusals) {
        expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
        expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
        expect(await dialog.command('DATA')).toMatch(/^354 /);
        dialog.write(`${message}.\r\n`);
        expect(await dialog.next()).toBe(reply);
      }
      expect(await storedRows()).toBe(before);
      expect(probe.events.length).toBe(published);
      // A line of exactly the limit passes.
      await deliver(dialog, 'y'.repeat(998));
      expect(await storedRows()).toBe(before + 1);
    } finally {
      dialog.close();
    }
    await aNormalClientIsServed();
  });
});

describe('SMTP limits on connections', () => {
  it('when one address holds the maximum of connections, then its next gets 421 4.7.0 while another address is served, and a freed slot is usable again', async () => {
    const held: SmtpDialog[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await session('127.0.0.5'));
      const { dialog: over, greeting } = await SmtpDialog.open(ingress.smtpPort, '127.0.0.5');
      expect(greeting).toBe('421 4.7.0 Too many connections from your IP address, try again later');
      await over.closed();
      over.close();

      const other = await session('127.0.0.6');
      try {
        await deliver(other);
      } finally {
        other.close();
      }

      held.pop()!.close();
      const again = await eventually(async () => {
        const { dialog, greeting: g } = await SmtpDialog.open(ingress.smtpPort, '127.0.0.5');
        if (g.startsWith('220 ')) return dialog;
        dialog.close();
        return undefined;
      });
      try {
        expect(await again.command('EHLO client.test')).toMatch(/^250-/);
        await deliver(again);
      } finally {
        again.close();
      }
    } finally {
      for (const d of held) d.close();
    }
  });
});
