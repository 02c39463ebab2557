/** Realistic event sequences of one message, for tests of the consumers of tracking events. */
import { randomUUID } from 'node:crypto';
import type { AnyEvent, EventType, PayloadOf, RecipientResult } from '@moat/contracts';

/** Realistic events of one message, each stamped at `base + offset` seconds. */
export function messageEvents(opts: { rcpts: string[]; tenantId?: string; mailFrom?: string; base?: Date }) {
  const messageId = randomUUID();
  const tenantId = opts.tenantId ?? randomUUID();
  const base = opts.base ?? new Date(Date.now() - 60_000);
  const receivedAt = base.toISOString();
  const at = (seconds: number) => new Date(base.getTime() + seconds * 1000).toISOString();
  const envelope = <T extends EventType>(type: T, payload: PayloadOf<T>, seconds: number, producer: string): AnyEvent =>
    ({ v: 1, id: randomUUID(), type, occurredAt: at(seconds), producer, payload }) as AnyEvent;
  const accepted: PayloadOf<'message.accepted'> = {
    messageId,
    tenantId,
    direction: 'inbound',
    store: { messageId, receivedAt },
    mailFrom: opts.mailFrom ?? 'alice@sender.example',
    rcptTo: opts.rcpts,
    client: { ip: '192.0.2.10', helo: 'mail.sender.example', ptr: 'mail.sender.example', tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } },
    size: 2048,
    sha256: 'a'.repeat(64),
    prependHeaders: 'Received: from mail.sender.example\r\n',
    receivedAt,
  };
  const deliveryId = randomUUID();
  return {
    messageId,
    tenantId,
    accepted: (seconds = 0) => envelope('message.accepted', accepted, seconds, 'ingress'),
    filtered: (seconds = 1, verdict: 'deliver' | 'quarantine' | 'reject' = 'deliver') =>
      envelope(
        'message.filtered',
        {
          ...accepted,
          verdict,
          score: 1.5,
          reasons: [],
          checks: [{ check: 'spf', result: 'pass', reason: 'sender.example: 192.0.2.10 is allowed' }],
          authResults: 'moat.example; spf=pass smtp.mailfrom=sender.example; dkim=none; dmarc=none',
          headers: { from: 'Alice <alice@sender.example>', to: opts.rcpts.join(', '), subject: 'Quarterly report', date: null, messageIdHeader: '<abc@sender.example>' },
        },
        seconds,
        'filter',
      ),
    requested: (seconds = 2, attempt = 1, rcpts = opts.rcpts) =>
      envelope(
        'delivery.requested',
        {
          deliveryId,
          attempt,
          messageId,
          tenantId,
          store: { messageId, receivedAt },
          pool: 'a',
          destination: 'mx.customer.example:25',
          routes: [{ host: 'mx.customer.example', port: 25, priority: 10 }],
          mailFrom: accepted.mailFrom,
          rcptTo: rcpts,
          prependHeaders: accepted.prependHeaders,
          size: accepted.size,
        },
        seconds,
        'router',
      ),
    result: (seconds: number, recipients: RecipientResult[], attempt = 1) =>
      envelope(
        'delivery.result',
        {
          deliveryId,
          attempt,
          messageId,
          tenantId,
          pool: 'a',
          destination: 'mx.customer.example:25',
          sourceIp: '127.0.1.1',
          remoteHost: 'mx.customer.example:25',
          tls: true,
          startedAt: at(seconds - 0.5),
          finishedAt: at(seconds),
          recipients,
          error: null,
        },
        seconds,
        'sender.a',
      ),
    event: (seconds: number, kind: PayloadOf<'message.event'>['kind'], rcpt: string[], detail: Record<string, unknown> = {}) =>
      envelope('message.event', { messageId, tenantId, kind, rcpt, detail }, seconds, 'router'),
  };
}

export const replies = {
  delivered: { code: 250, enhanced: '2.0.0', text: '2.0.0 Ok: queued as 4XyZ1' },
  deferred: { code: 451, enhanced: '4.7.1', text: '4.7.1 Greylisted, please try again in 300 seconds' },
  failed: { code: 550, enhanced: '5.1.1', text: "5.1.1 <carol@customer.example>: Recipient address rejected: User unknown in virtual mailbox table" },
};
