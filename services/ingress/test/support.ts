import net from 'node:net';
import tls from 'node:tls';
import { queues, type EventOf, type QueuePolicy } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { createTestEnv, silentLog, type TestEnv } from '@moat/testkit';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { configSchema, start, type RunningIngress } from '../src/index.js';

export type Accepted = EventOf<'message.accepted'>;

/**
 * createTestEnv, retried while another test file holds the migration lock: store's migrate()
 * takes node-pg-migrate's database-wide advisory lock in 'fail' mode, so two files migrating
 * their own schemas at the same moment collide. (Reported: migrate() should wait for the lock.)
 */
export async function createIsolatedEnv(): Promise<TestEnv> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createTestEnv();
    } catch (err) {
      if (attempt >= 20 || !/Another migration is already running/.test((err as Error).message)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
    }
  }
}

/**
 * A quorum queue of the test's own in the test namespace, bound to message.accepted: it sees
 * exactly what ingress published (and was confirmed), like any real consumer would.
 */
export async function startProbe(t: TestEnv): Promise<{ events: Accepted[]; stop(): Promise<void> }> {
  const policy: QueuePolicy = { name: 'probe', bindings: ['message.accepted'], prefetch: 16, deliveryLimit: 3, handlerTimeoutMs: 5_000 };
  const broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.env.MOAT_NAMESPACE!, producer: 'probe', log: silentLog });
  await broker.connect();
  const events: Accepted[] = [];
  await broker.consume(policy, async ({ event }) => {
    if (event.type === 'message.accepted') events.push(event);
  });
  return {
    events,
    async stop() {
      await broker.drain(1_000);
      await broker.destroyNamespace([queues.filter.name, queues.archive.name, queues.router.name, queues.tracker.name, policy.name]);
      await broker.close();
    },
  };
}

export async function startIngress(t: TestEnv, env: Record<string, string> = {}): Promise<RunningIngress> {
  return start(loadConfig(configSchema, { ...t.env, MOAT_SMTP_HOST: '127.0.0.1', MOAT_SMTP_PORT: '0', MOAT_SUBMISSION_PORT: '0', MOAT_SUBMISSIONS_PORT: '0', MOAT_SMTP_HOSTNAME: 'mx.moat.test', ...env }), silentLog);
}

/** The message id from `250 2.0.0 Ok: queued as <id>`. */
export function queuedId(response: string): string {
  const m = /^250 2\.0\.0 Ok: queued as ([0-9a-f-]{36})$/.exec(response);
  if (!m) throw new Error(`not a queued reply: ${response}`);
  return m[1]!;
}

/**
 * A line-level SMTP client for asserting exact replies (codes and texts) command by command,
 * without a client library's own checks and retries in between.
 */
export class SmtpDialog {
  private buffer = '';
  private readonly replies: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('end', () => (this.ended = true)).on('close', () => (this.ended = true));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      // A reply is complete at a line "ddd text" (a "ddd-" line continues it, RFC 5321 §4.2.1).
      for (;;) {
        const end = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.buffer);
        if (!end) break;
        const upTo = end.index + end[0].length;
        this.replies.push(this.buffer.slice(0, upTo).replace(/^\r\n/, '').replace(/\r\n$/, ''));
        this.buffer = this.buffer.slice(upTo);
      }
      this.waiter?.();
    });
  }

  /** Connects from `localAddress` when given (any 127.x.y.z is a distinct client on loopback). */
  static async open(port: number, localAddress?: string): Promise<{ dialog: SmtpDialog; greeting: string }> {
    const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const dialog = new SmtpDialog(socket);
    return { dialog, greeting: await dialog.next() };
  }

  /**
   * Opens a session and continues it inside TLS: EHLO and STARTTLS in plaintext, then the
   * handshake (the development certificate is self-signed). The dialog starts before EHLO.
   */
  static async openTls(port: number): Promise<SmtpDialog> {
    const raw = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    // Plaintext replies read as Buffers: node:tls takes the socket over afterwards.
    let seen = '';
    const onData = (chunk: Buffer) => (seen += chunk.toString('latin1'));
    raw.on('data', onData);
    const reply = async (code: string) => {
      for (const deadline = Date.now() + 15_000; !new RegExp(`(^|\r\n)${code} [^\r\n]*\r\n$`).test(seen); ) {
        if (Date.now() > deadline) throw new Error(`no ${code} reply (got ${JSON.stringify(seen)})`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      seen = '';
    };
    await reply('220');
    raw.write('EHLO client.test\r\n');
    await reply('250');
    raw.write('STARTTLS\r\n');
    await reply('220');
    raw.off('data', onData);
    const secure = tls.connect({ socket: raw, servername: 'mx.moat.test', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    return new SmtpDialog(secure);
  }

  /** Opens a session over implicit TLS (RFC 8314, the submissions port); the greeting is read. */
  static async openImplicitTls(port: number, localAddress?: string): Promise<{ dialog: SmtpDialog; greeting: string }> {
    const secure = tls.connect({ port, host: '127.0.0.1', servername: 'mx.moat.test', rejectUnauthorized: false, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const dialog = new SmtpDialog(secure);
    return { dialog, greeting: await dialog.next() };
  }

  /** Sends one command line and returns the whole reply (lines joined with CRLF). */
  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }

  /** Writes bytes without waiting for a reply (message data after 354); a string is taken as latin1. */
  write(data: string | Buffer): void {
    if (typeof data === 'string') this.socket.write(data, 'latin1');
    else this.socket.write(data);
  }

  /** Bytes written but not yet handed to the kernel. */
  get unsent(): number {
    return this.socket.writableLength;
  }

  /** The next reply, also one the server sends unasked (421). */
  async next(timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (Date.now() > deadline) throw new Error(`no SMTP reply within ${timeoutMs} ms (buffer: ${JSON.stringify(this.buffer)})`);
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 100);
      });
    }
    return this.replies.shift()!;
  }

  /** Resolves once the server has closed the connection; rejects when it is still open after timeoutMs. */
  async closed(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`the server did not close the connection within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Sends one message over STARTTLS with nodemailer (requireTLS: plaintext is never a fallback). */
export async function sendOverStartTls(opts: { port: number; from: string; to: string[]; raw: Buffer }): Promise<{ response: string; protocol: string | null; peerCn: string | null }> {
  const conn = new SMTPConnection({ port: opts.port, host: '127.0.0.1', name: 'tls-client.test', requireTLS: true, tls: { rejectUnauthorized: false }, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    const socket = (conn as unknown as { _socket: import('node:tls').TLSSocket })._socket;
    const protocol = typeof socket.getProtocol === 'function' ? socket.getProtocol() : null;
    const cn = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate().subject?.CN : undefined;
    const info = await new Promise<{ response: string }>((resolve, reject) => {
      conn.send({ from: opts.from, to: opts.to }, opts.raw, (err, info) => (err ? reject(err) : resolve(info as never)));
    });
    return { response: info.response, protocol, peerCn: typeof cn === 'string' ? cn : null };
  } finally {
    conn.quit();
  }
}
