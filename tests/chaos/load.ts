import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** What the client was told about one message. */
export interface Attempt {
  chaosId: string;
  /** Recipients the server accepted at RCPT (a 4xx for one recipient leaves it to the client). */
  rcpts: string[];
  /** Recipients refused at RCPT, with the reply. */
  refusedRcpts: string[];
  /** The reply code to DATA (or to the command that failed); 0 when the connection was lost. */
  code: number;
  response: string;
}

export function chaosMessage(chaosId: string, from: string, to: string[], size: number): Buffer {
  const head = [
    `From: <${from}>`,
    `To: ${to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: chaos ${chaosId}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${chaosId}@chaos.test>`,
    `X-Chaos-Id: ${chaosId}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  const line = 'Nothing accepted is lost; nothing disappears silently.\r\n';
  let body = '';
  while (head.length + body.length < size) body += line;
  return Buffer.from(head + body.slice(0, Math.max(0, size - head.length)) + '\r\n');
}

interface Session {
  conn: SMTPConnection;
  /** The server closed it (e.g. after a 421 while it drains): open a new one before sending. */
  gone: boolean;
}

async function openSession(port: number): Promise<Session> {
  const conn = new SMTPConnection({ port, host: '127.0.0.1', name: 'chaos.test', ignoreTLS: true, socketTimeout: 60_000, connectionTimeout: 5_000 });
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  const session: Session = { conn, gone: false };
  const markGone = () => (session.gone = true);
  conn.on('end', markGone);
  conn.on('error', markGone);
  return session;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends up to `total` messages (until stop()) over `sessions` concurrent SMTP sessions and
 * records each reply. A
 * session that loses its connection (ingress killed, 421) records code 0 for the message in
 * flight and reconnects, waiting while the port refuses. Messages are not re-sent: a message
 * without a 250 simply counts as not accepted (a real client would retry it later).
 */
export class ChaosLoad {
  readonly attempts: Attempt[] = [];
  private next = 0;
  private stopped = false;
  private readonly recorded = new Set<string>();

  constructor(
    private readonly opts: {
      port: number;
      sessions: number;
      from: string;
      rcpts: string[];
      size: number;
      prefix: string;
      total: number;
      /** The message and envelope sender for message i (default: chaosMessage of `size` from `from`). */
      build?: (chaosId: string, i: number) => { raw: Buffer; from: string };
    },
  ) {}

  get accepted(): number {
    return this.attempts.filter((a) => a.code === 250).length;
  }

  get done(): number {
    return this.attempts.length;
  }

  /** No new messages after this; the ones in flight finish. */
  stop(): void {
    this.stopped = true;
  }

  async run(): Promise<Attempt[]> {
    await Promise.all(Array.from({ length: this.opts.sessions }, () => this.worker()));
    return this.attempts;
  }

  private async connect(): Promise<Session> {
    for (let i = 0; ; i++) {
      try {
        return await openSession(this.opts.port);
      } catch (err) {
        if (i > 600) throw err;
        await sleep(100);
      }
    }
  }

  private async worker(): Promise<void> {
    let session: Session | null = null;
    for (;;) {
      if (this.stopped) break;
      const i = this.next++;
      if (i >= this.opts.total) break;
      const chaosId = `${this.opts.prefix}-${i}`;
      const { raw, from } = this.opts.build?.(chaosId, i) ?? { raw: chaosMessage(chaosId, this.opts.from, this.opts.rcpts, this.opts.size), from: this.opts.from };
      try {
        // A session the server closed between messages is replaced before this message starts:
        // nothing was attempted on it, so nothing is recorded.
        if (session?.gone) session = null;
        session ??= await this.connect();
        const s = session;
        const info = await new Promise<{ response: string; accepted?: string[]; rejected?: string[] }>((resolve, reject) => {
          // A connection dropped mid-transaction emits 'end' or 'error' and may never call back;
          // a reply that came with the close (421) is reported through the callback first.
          const onGone = () => setTimeout(() => reject(Object.assign(new Error('connection lost'), { responseCode: 0 })), 20);
          s.conn.once('end', onGone);
          s.conn.once('error', onGone);
          s.conn.send({ from, to: this.opts.rcpts }, raw, (err, sent) => {
            s.conn.off('end', onGone);
            s.conn.off('error', onGone);
            if (err) reject(err);
            else resolve(sent as { response: string; accepted?: string[]; rejected?: string[] });
          });
        });
        // nodemailer goes on with the recipients the server accepted and lists the refused ones.
        this.record({ chaosId, rcpts: info.accepted ?? this.opts.rcpts, refusedRcpts: info.rejected ?? [], code: Number(info.response.slice(0, 3)), response: info.response });
        // RSET for the next message; a connection that died meanwhile never answers it.
        const reset = await Promise.race([new Promise<boolean>((resolve) => s.conn.reset(() => resolve(true))), sleep(5_000).then(() => false)]);
        if (!reset) session = null;
      } catch (err) {
        const e = err as { responseCode?: number; response?: string; message: string };
        this.record({ chaosId, rcpts: this.opts.rcpts, refusedRcpts: [], code: e.responseCode ?? 0, response: e.response ?? e.message });
        try {
          session?.conn.close();
        } catch {
          // already closed
        }
        session = null;
        // A refusing or restarting ingress: do not spin.
        await sleep(50);
      }
    }
    try {
      session?.conn.quit();
    } catch {
      // already closed
    }
  }

  /** One record per message: the first outcome wins (a late 'connection lost' after a reply is ignored). */
  private record(a: Attempt): void {
    if (this.recorded.has(a.chaosId)) return;
    this.recorded.add(a.chaosId);
    this.attempts.push(a);
  }
}
