import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface Sent {
  benchId: string;
  startedAt: number;
  acceptedAt: number;
  code: number;
}

export function benchMessage(benchId: string, from: string, to: string[], size: number): Buffer {
  const head = [
    `From: <${from}>`,
    `To: ${to.map((t) => `<${t}>`).join(', ')}`,
    `Subject: bench ${benchId}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${benchId}@bench.test>`,
    `X-Bench-Id: ${benchId}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    '',
  ].join('\r\n');
  const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
  let body = '';
  while (head.length + body.length < size) body += line;
  return Buffer.from(head + body.slice(0, Math.max(0, size - head.length)) + '\r\n');
}

async function openSession(port: number): Promise<SMTPConnection> {
  const conn = new SMTPConnection({ port, host: '127.0.0.1', name: 'bench.test', ignoreTLS: true, socketTimeout: 120_000 });
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  return conn;
}

/**
 * Drives `total` messages through `sessions` concurrent SMTP sessions (each session reuses its
 * connection, RSET between messages, as a busy MTA does). With `ratePerSec`, sends are paced;
 * with `seconds`, no message is started after that time (the total is then what fitted).
 */
export async function runLoad(opts: { port: number; total: number; sessions: number; rcpts: string[]; from: string; size: number; prefix: string; ratePerSec?: number; seconds?: number }): Promise<Sent[]> {
  const sent: Sent[] = [];
  let next = 0;
  const t0 = performance.now();
  const stopAt = opts.seconds === undefined ? Infinity : t0 + opts.seconds * 1000;
  async function worker(): Promise<void> {
    let conn = await openSession(opts.port);
    for (;;) {
      if (performance.now() >= stopAt) break;
      const i = next++;
      if (i >= opts.total) break;
      if (opts.ratePerSec) {
        const due = t0 + (i * 1000) / opts.ratePerSec;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const benchId = `${opts.prefix}-${i}`;
      const raw = benchMessage(benchId, opts.from, opts.rcpts, opts.size);
      const startedAt = performance.now();
      try {
        const info = await new Promise<{ response: string }>((resolve, reject) =>
          conn.send({ from: opts.from, to: opts.rcpts }, raw, (err, info) => (err ? reject(err) : resolve(info as { response: string }))),
        );
        sent.push({ benchId, startedAt, acceptedAt: performance.now(), code: Number(info.response.slice(0, 3)) });
        await new Promise<void>((resolve) => conn.reset(() => resolve()));
      } catch (err) {
        sent.push({ benchId, startedAt, acceptedAt: performance.now(), code: (err as { responseCode?: number }).responseCode ?? 0 });
        conn.close();
        conn = await openSession(opts.port);
      }
    }
    conn.quit();
  }
  await Promise.all(Array.from({ length: opts.sessions }, () => worker()));
  return sent;
}
