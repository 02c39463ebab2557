import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface SendResult {
  ok: boolean;
  /** The final reply line (250 … on success, the error's response otherwise). */
  response: string;
  code: number | null;
  accepted: string[];
  rejected: string[];
  /** The stage the transaction stopped at when it failed (MAIL, RCPT, DATA, CONN). */
  stage: string | null;
}

/** Sends one message with a real SMTP client and reports exactly what the server answered. */
export async function sendSmtp(opts: { port: number; host?: string; from: string; to: string[]; raw: Buffer | string; name?: string; size?: number }): Promise<SendResult> {
  const conn = new SMTPConnection({ port: opts.port, host: opts.host ?? '127.0.0.1', name: opts.name ?? 'client.test', ignoreTLS: true, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 60_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    const info = await new Promise<{ accepted: string[]; rejected: string[]; response: string }>((resolve, reject) => {
      const envelope: { from: string; to: string[]; size?: number } = { from: opts.from, to: opts.to };
      if (opts.size !== undefined) envelope.size = opts.size;
      conn.send(envelope, typeof opts.raw === 'string' ? Buffer.from(opts.raw) : opts.raw, (err, info) => (err ? reject(err) : resolve(info as never)));
    });
    return { ok: true, response: info.response, code: Number(info.response.slice(0, 3)), accepted: info.accepted, rejected: info.rejected, stage: null };
  } catch (err) {
    const e = err as Error & { responseCode?: number; response?: string; command?: string; rejected?: string[] };
    return { ok: false, response: e.response ?? e.message, code: e.responseCode ?? null, accepted: [], rejected: e.rejected ?? [], stage: e.command ?? 'CONN' };
  } finally {
    try {
      conn.quit();
    } catch {
      conn.close();
    }
  }
}

/** A small valid RFC 5322 message with CRLF line endings. */
export function makeMessage(opts: { from: string; to: string[]; subject?: string; body?: string; messageId?: string }): Buffer {
  const lines = [
    `From: <${opts.from}>`,
    `To: ${opts.to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: ${opts.subject ?? 'test message'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${opts.messageId ?? `${Date.now()}.${Math.random().toString(36).slice(2)}@client.test`}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    opts.body ?? 'Hello from the test suite.',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}
