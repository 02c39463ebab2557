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

export interface SendOptions {
  port: number;
  host?: string;
  from: string;
  to: string[];
  raw: Buffer | string;
  name?: string;
  size?: number;
  /** Source address to connect from (any 127.x.y.z on Linux): plays a registered or a stranger's server. */
  localAddress?: string;
  /** `starttls`: upgrade with STARTTLS (required); `implicit`: TLS from the first byte (port 465 style). Default: plaintext. */
  tls?: 'starttls' | 'implicit';
  /** SMTP AUTH (PLAIN, or LOGIN when `method` says so), after TLS when `tls` is set. */
  auth?: { user: string; pass: string; method?: 'PLAIN' | 'LOGIN' };
}

/** Sends one message with a real SMTP client and reports exactly what the server answered. */
export async function sendSmtp(opts: SendOptions): Promise<SendResult> {
  const conn = new SMTPConnection({
    port: opts.port,
    host: opts.host ?? '127.0.0.1',
    name: opts.name ?? 'client.test',
    ignoreTLS: opts.tls === undefined,
    requireTLS: opts.tls === 'starttls',
    secure: opts.tls === 'implicit',
    // Moat's development certificate is self-signed.
    tls: { rejectUnauthorized: false },
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 60_000,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('error', reject);
      conn.connect(() => resolve());
    });
    if (opts.auth) {
      const auth = opts.auth;
      await new Promise<void>((resolve, reject) => conn.login({ user: auth.user, pass: auth.pass, ...(auth.method ? { method: auth.method } : {}) }, (err) => (err ? reject(err) : resolve())));
    }
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

/**
 * A multipart/mixed message with one text part (text/plain unless `bodyType` says otherwise) and
 * one base64 attachment, as mail clients send it: what virus and quarantine tests need.
 */
export function makeMessageWithAttachment(opts: {
  from: string;
  to: string[];
  subject?: string;
  body?: string;
  bodyType?: string;
  attachment: { name: string; content: Buffer };
}): Buffer {
  const b64 = opts.attachment.content.toString('base64').replace(/.{76}/g, '$&\r\n');
  const lines = [
    `From: <${opts.from}>`,
    `To: ${opts.to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: ${opts.subject ?? 'test message'}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@client.test>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="part"',
    '',
    '--part',
    `Content-Type: ${opts.bodyType ?? 'text/plain'}; charset=utf-8`,
    '',
    opts.body ?? 'Please find the file attached.',
    '--part',
    `Content-Type: application/octet-stream; name="${opts.attachment.name}"`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${opts.attachment.name}"`,
    '',
    b64,
    '--part--',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}
