import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRepository } from '@moat/store';
import { eventually, testPool, type TestEnv } from '@moat/testkit';
import type { RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, startIngress, startProbe } from './support.js';

// STARTTLS command injection (CVE-2011-0411 class): commands a client pipelines in the same
// packet after STARTTLS arrived in plaintext, so an on-path attacker can add them; RFC 3207 §4
// and §6 say the server must discard them, never run them inside the TLS session.

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
  ingress = await startIngress(t);
});

afterAll(async () => {
  await ingress?.stop();
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
});

/**
 * SMTP replies read off one socket, plain or TLS. The socket is read as raw bytes (no
 * setEncoding): the plaintext one is handed to node:tls afterwards, which needs Buffers.
 */
class ReplyReader {
  private buffer = '';
  private readonly replies: string[] = [];
  private readonly onData = (chunk: Buffer) => {
    this.buffer += chunk.toString('latin1');
    // A reply is complete at a line "ddd text" (a "ddd-" line continues it, RFC 5321 §4.2.1).
    for (;;) {
      const end = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buffer);
      if (!end) break;
      const upTo = end.index + end[0].length;
      this.replies.push(this.buffer.slice(0, upTo).replace(/^\r\n/, '').replace(/\r\n$/, ''));
      this.buffer = this.buffer.slice(upTo);
    }
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
  }

  async next(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (Date.now() > deadline) throw new Error(`no SMTP reply within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buffer)})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.replies.shift()!;
  }

  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`, 'latin1');
    return this.next();
  }

  /** Stops reading, and says what was received but not yet consumed. */
  detach(): { replies: string[]; partial: string } {
    this.socket.off('data', this.onData);
    return { replies: [...this.replies], partial: this.buffer };
  }
}

describe('ingress against STARTTLS command injection', () => {
  it('when MAIL and RCPT are pipelined in the STARTTLS packet, then they are discarded: inside TLS RCPT gets 503 need MAIL, and a clean transaction is accepted', async () => {
    const raw = net.connect(ingress.smtpPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    let secure: tls.TLSSocket | undefined;
    try {
      const plain = new ReplyReader(raw);
      expect(await plain.next()).toMatch(/^220 /);
      expect(await plain.command('EHLO client.test')).toMatch(/^250[- ].*STARTTLS/s);

      // One write, so the injected lines sit in the same segment as STARTTLS.
      raw.write('STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<alice@a.example>\r\n', 'latin1');
      expect(await plain.next()).toMatch(/^220 /);
      // Nothing else may have come in plaintext, not even a refusal of the injected lines.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(plain.detach()).toEqual({ replies: [], partial: '' });

      // The ingress development certificate is self-signed (MOAT_TLS_* unset in tests).
      secure = tls.connect({ socket: raw, servername: 'mx.moat.test', rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => secure!.once('secureConnect', resolve).once('error', reject));
      const inside = new ReplyReader(secure);

      // EHLO first: smtp-server forgets the plaintext EHLO (RFC 3207 §4.2), and without a new
      // one RCPT gets "503 send HELO/EHLO first", which would prove nothing about MAIL. The
      // EHLO reply being the first reply inside TLS also shows no injected command answered.
      expect(await inside.command('EHLO client.test')).toMatch(/^250[- ]/);
      // 503 "need MAIL": no transaction exists, so the injected MAIL FROM never ran.
      expect(await inside.command('RCPT TO:<alice@a.example>')).toBe('503 5.5.1 Error: need MAIL command');

      expect(await inside.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 /);
      expect(await inside.command('RCPT TO:<alice@a.example>')).toMatch(/^250 /);
      expect(await inside.command('DATA')).toMatch(/^354 /);
      secure.write('Subject: after starttls\r\n\r\nclean\r\n.\r\n', 'latin1');
      const messageId = queuedId(await inside.next());
      const event = await eventually(() => probe.events.find((e) => e.payload.messageId === messageId));
      expect(event.payload.mailFrom).toBe('sender@outside.example');
      expect(event.payload.rcptTo).toEqual(['alice@a.example']);
      expect(event.payload.client.tls).not.toBeNull();
      // Exactly one message came out of this session, and not from the injected sender.
      expect(probe.events.filter((e) => e.payload.mailFrom === 'evil@x.test')).toEqual([]);
    } finally {
      secure?.destroy();
      raw.destroy();
    }
  });
});
