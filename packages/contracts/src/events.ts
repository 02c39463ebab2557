import { z } from 'zod';
import { envelopeBase } from './envelope.js';
import { address, direction, route, smtpReply, storeRef } from './common.js';

// ---------------------------------------------------------------------------------------------
// message.accepted — ingress stored the message and answers 250 once this is confirmed.
// ---------------------------------------------------------------------------------------------
export const messageAcceptedPayload = z.object({
  messageId: z.string().uuid(),
  tenantId: z.string().uuid(),
  direction,
  store: storeRef,
  mailFrom: address,
  rcptTo: z.array(address).min(1),
  client: z.object({
    ip: z.string(),
    helo: z.string(),
    /** Reverse DNS name of the client, when the resolver gave one. */
    ptr: z.string().nullable(),
    tls: z.object({ protocol: z.string(), cipher: z.string() }).nullable(),
  }),
  size: z.number().int().nonnegative(),
  /** sha256 (hex) of the bytes the client sent, before any header Moat prepends. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Header lines Moat prepends on delivery (Received), CRLF-terminated. */
  prependHeaders: z.string(),
  receivedAt: z.string().datetime({ offset: true }),
});
export type MessageAcceptedPayload = z.infer<typeof messageAcceptedPayload>;

// ---------------------------------------------------------------------------------------------
// message.filtered — the filter's verdict. Closed vocabulary: deliver | quarantine | reject.
// ---------------------------------------------------------------------------------------------
export const verdict = z.enum(['deliver', 'quarantine', 'reject']);
export type Verdict = z.infer<typeof verdict>;

export const checkResult = z.object({
  check: z.string(),
  result: z.enum(['pass', 'fail', 'skip', 'error', 'neutral', 'none', 'softfail', 'temperror', 'permerror', 'policy']),
  reason: z.string(),
});
export type CheckResult = z.infer<typeof checkResult>;

/**
 * A quarantined message's safe preview (text only), sealed by the filter with the quarantine
 * preview key (AES-256-GCM with a per-preview data key, the message id as additional data), so it
 * can ride the broker and rest in the quarantine without being readable by anyone but the holders
 * of that key (filter and gateway; never the master key). Binary fields are base64.
 */
export const sealedPreview = z.object({
  keyId: z.string().min(1).max(32),
  wrappedKey: z.string().max(200),
  iv: z.string().max(64),
  tag: z.string().max(64),
  /** Bounded: a preview is a few KiB of text and a list of attachment names. */
  ciphertext: z.string().max(96 * 1024),
});
export type SealedPreview = z.infer<typeof sealedPreview>;

export const messageFilteredPayload = messageAcceptedPayload.extend({
  verdict,
  score: z.number(),
  reasons: z.array(z.string()),
  checks: z.array(checkResult),
  /** The Authentication-Results header value Moat computed (RFC 8601). */
  authResults: z.string(),
  /** Headers read from the message, for the archive and tracking (never re-parse the body). */
  headers: z.object({
    from: z.string().nullable(),
    to: z.string().nullable(),
    subject: z.string().nullable(),
    date: z.string().nullable(),
    messageIdHeader: z.string().nullable(),
  }),
  /** Quarantined messages only: the sealed text preview the quarantine shows (absent: none was made). */
  preview: sealedPreview.optional(),
  /**
   * Set when this event releases a quarantined message (published by the gateway, verdict
   * `deliver`): who released it and when. Tracking shows the recipients `released`; the router
   * delivers as usual (its delivery ids derive from the message id, so a second release of the
   * same message delivers nothing twice).
   */
  release: z.object({ by: z.string().min(1).max(300), at: z.string().datetime({ offset: true }) }).optional(),
  /**
   * Set when the recipients' own allow and block lists (per-mailbox lists) gave them different
   * verdicts: the message is split into one event per verdict, each with only its recipients in
   * `rcptTo`. `part` names this event's part (its verdict when filtered; a release keeps it);
   * `parts` lists every part's recipients, the same on each event. The router routes a released
   * quarantine part under its own key (the delivered part is keyed as the whole message), so the
   * parts of one message never collide and each is delivered once. At most one part per verdict,
   * so the router's verdict-keyed tracking events and rejection DSN stay one per message. Absent:
   * every recipient has `verdict`.
   */
  split: z
    .object({
      part: verdict,
      parts: z.array(z.object({ verdict, rcptTo: z.array(address).min(1) })).min(2),
    })
    .optional(),
});
export type MessageFilteredPayload = z.infer<typeof messageFilteredPayload>;

/** What the message as a whole became: a split message is `deliver` when any part is delivered, else `quarantine` when any part is kept, else `reject`. */
export function wholeMessageVerdict(p: Pick<MessageFilteredPayload, 'verdict' | 'split'>): Verdict {
  if (!p.split) return p.verdict;
  const verdicts = new Set(p.split.parts.map((part) => part.verdict));
  return verdicts.has('deliver') ? 'deliver' : verdicts.has('quarantine') ? 'quarantine' : 'reject';
}

/** Every recipient of the message, whichever part (for the archive row, which is one per message). */
export function allRecipients(p: Pick<MessageFilteredPayload, 'rcptTo' | 'split'>): string[] {
  return p.split ? p.split.parts.flatMap((part) => part.rcptTo) : p.rcptTo;
}

// ---------------------------------------------------------------------------------------------
// delivery.requested.<pool> — one SMTP transaction to one destination, for some recipients.
// ---------------------------------------------------------------------------------------------
export const deliveryRequestedPayload = z.object({
  deliveryId: z.string().uuid(),
  /** Attempt number, from 1. The sender claims (deliveryId, attempt) once. */
  attempt: z.number().int().min(1),
  messageId: z.string().uuid(),
  tenantId: z.string().uuid(),
  store: storeRef,
  pool: z.string(),
  /** Stable key of the destination (its route set), used for connection reuse and health. */
  destination: z.string(),
  routes: z.array(route).min(1),
  mailFrom: address,
  rcptTo: z.array(address).min(1),
  prependHeaders: z.string(),
  size: z.number().int().nonnegative(),
});
export type DeliveryRequestedPayload = z.infer<typeof deliveryRequestedPayload>;

// ---------------------------------------------------------------------------------------------
// delivery.result — what happened to each recipient of one attempt.
// ---------------------------------------------------------------------------------------------
export const recipientOutcome = z.enum(['delivered', 'deferred', 'failed']);
export type RecipientOutcome = z.infer<typeof recipientOutcome>;

export const recipientResult = z.object({
  rcpt: address,
  outcome: recipientOutcome,
  reply: smtpReply,
});
export type RecipientResult = z.infer<typeof recipientResult>;

export const deliveryResultPayload = z.object({
  deliveryId: z.string().uuid(),
  attempt: z.number().int().min(1),
  messageId: z.string().uuid(),
  tenantId: z.string().uuid(),
  pool: z.string(),
  destination: z.string(),
  sourceIp: z.string().nullable(),
  /** The host:port that answered (or the last one tried). */
  remoteHost: z.string().nullable(),
  tls: z.boolean(),
  startedAt: z.string().datetime({ offset: true }),
  finishedAt: z.string().datetime({ offset: true }),
  recipients: z.array(recipientResult).min(1),
  /** Why the transaction failed as a whole (connection refused, timeout…), when it did. */
  error: z.string().nullable(),
});
export type DeliveryResultPayload = z.infer<typeof deliveryResultPayload>;

// ---------------------------------------------------------------------------------------------
// message.event — anything else tracking must show (routing decisions, final fates, rejections).
// ---------------------------------------------------------------------------------------------
export const trackingKind = z.enum(['routed', 'retry_scheduled', 'failed', 'bounced', 'quarantined', 'rejected', 'archived', 'parked', 'expired']);
export type TrackingKind = z.infer<typeof trackingKind>;

/**
 * A message Moat wrote itself (a DSN): no message.accepted announces it, so the event that
 * reports it being generated (kind `routed`) carries what tracking shows of a message.
 */
export const generatedMessage = z.object({
  direction,
  /** `''` for a DSN (MAIL FROM:<>). */
  mailFrom: address,
  rcptTo: z.array(address).min(1),
  subject: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  receivedAt: z.string().datetime({ offset: true }),
});
export type GeneratedMessage = z.infer<typeof generatedMessage>;

/**
 * A transaction ingress refused at SMTP time (unknown user, DNSBL, greylisting, rate limits):
 * no message.accepted exists for it, so the `rejected` event that reports the refusal carries
 * what tracking shows of the message. Its messageId is fresh per refused transaction.
 */
export const refusedTransaction = z.object({
  direction,
  /** The envelope sender as given (`''`: the null reverse-path). */
  mailFrom: address,
  client: z.object({ ip: z.string().max(64), helo: z.string().max(255) }),
  receivedAt: z.string().datetime({ offset: true }),
});
export type RefusedTransaction = z.infer<typeof refusedTransaction>;

export const messageEventPayload = z.object({
  messageId: z.string().uuid(),
  tenantId: z.string().uuid().nullable(),
  kind: trackingKind,
  rcpt: z.array(address).default([]),
  detail: z.record(z.string(), z.unknown()).default({}),
  /** Only on the `routed` event of a message Moat generated (optional: older events lack it). */
  generated: generatedMessage.optional(),
  /** Only on the `rejected` events of a transaction refused at SMTP time (see refusedTransaction). */
  refused: refusedTransaction.optional(),
});
export type MessageEventPayload = z.infer<typeof messageEventPayload>;

// ---------------------------------------------------------------------------------------------
// subnetcheck.requested — probe a customer's routes from one source address (a pool's, or the
// outsider address), without ever sending DATA. The gateway publishes one per pool and one for
// the outsider; a sender writes the results into subnet_check_probes.
// ---------------------------------------------------------------------------------------------
export const subnetCheckSource = z.enum(['pool', 'outsider']);
export type SubnetCheckSource = z.infer<typeof subnetCheckSource>;

export const subnetCheckRequestedPayload = z.object({
  checkId: z.string().uuid(),
  tenantId: z.string().uuid(),
  /** The protected domain: the probe asks RCPT TO:<postmaster@domain>. */
  domain: z.string().min(1).max(253),
  /** The domain's configured routes, read from the database by the gateway (never from a caller). */
  routes: z.array(route).min(1),
  source: subnetCheckSource,
  /** The pool to probe from (`source: pool`); null for the outsider. */
  pool: z.string().nullable(),
  /**
   * For a pool: its ranges, so the sender can tell whether its own address lies in them. For the
   * outsider: every published range, none of which may contain the outsider address.
   */
  cidrs: z.array(z.string()),
  /** After this the gateway reports missing results as `timeout`: a sender drops a later request. */
  deadline: z.string().datetime({ offset: true }),
});
export type SubnetCheckRequestedPayload = z.infer<typeof subnetCheckRequestedPayload>;

// ---------------------------------------------------------------------------------------------
// The catalog: type name → schema. Consumers parse at the boundary with `parseEvent`.
// ---------------------------------------------------------------------------------------------
export const eventSchemas = {
  'message.accepted': envelopeBase.extend({ type: z.literal('message.accepted'), payload: messageAcceptedPayload }),
  'message.filtered': envelopeBase.extend({ type: z.literal('message.filtered'), payload: messageFilteredPayload }),
  'delivery.requested': envelopeBase.extend({ type: z.literal('delivery.requested'), payload: deliveryRequestedPayload }),
  'delivery.result': envelopeBase.extend({ type: z.literal('delivery.result'), payload: deliveryResultPayload }),
  'message.event': envelopeBase.extend({ type: z.literal('message.event'), payload: messageEventPayload }),
  'subnetcheck.requested': envelopeBase.extend({ type: z.literal('subnetcheck.requested'), payload: subnetCheckRequestedPayload }),
} as const;

export type EventType = keyof typeof eventSchemas;
export type EventOf<T extends EventType> = z.infer<(typeof eventSchemas)[T]>;
export type PayloadOf<T extends EventType> = EventOf<T>['payload'];
export type AnyEvent = { [K in EventType]: EventOf<K> }[EventType];

export const anyEvent = z.discriminatedUnion('type', [
  eventSchemas['message.accepted'],
  eventSchemas['message.filtered'],
  eventSchemas['delivery.requested'],
  eventSchemas['delivery.result'],
  eventSchemas['message.event'],
  eventSchemas['subnetcheck.requested'],
]);

export class EventParseError extends Error {
  override readonly name = 'EventParseError';
  constructor(
    message: string,
    readonly issues: unknown,
  ) {
    super(message);
  }
}

/** Parse raw bytes from the broker into a typed event, or throw EventParseError (→ parking). */
export function parseEvent(body: Buffer | string): AnyEvent {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (err) {
    throw new EventParseError(`event body is not JSON: ${(err as Error).message}`, null);
  }
  const parsed = anyEvent.safeParse(json);
  if (!parsed.success) {
    throw new EventParseError(`event does not match any contract: ${parsed.error.message}`, parsed.error.issues);
  }
  return parsed.data as AnyEvent;
}
