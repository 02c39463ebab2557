import { isIP } from 'node:net';
import { z } from 'zod';
import { CidrError, dkimAlgorithms, dkimKeyStates, findOverlap, isDkimSelector, normalizeCidr, parseCidr, poolStates, quarantineCategories, quarantineStates, subnetProbeStatuses, subnetProbeSteps, trackedStatuses } from '@moat/store';
import { apiScopes } from './access.js';

// Request and response schemas of the partner API. Requests are validated with them; the
// OpenAPI document is generated from them, so the two cannot drift apart.

/** RFC 1035 §2.3.1 labels (RFC 1123 §2.1 allows a leading digit): 1–63 of [a-z0-9-], no hyphen at either end. */
const label = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** A fully qualified domain name: at least two labels, at most 253 octets, a TLD that is not all digits. */
export function isDomainName(value: string): boolean {
  const name = value.replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.length >= 2 && labels.every((l) => label.test(l)) && !/^[0-9]+$/.test(labels[labels.length - 1]!);
}

/** A host name (one label is enough: `postfix` in a compose network) or an IPv4/IPv6 address. */
export function isHostOrIp(value: string): boolean {
  if (isIP(value) !== 0) return true;
  const name = value.replace(/\.$/, '');
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  // All-numeric dotted names would be mistaken for malformed IPv4 addresses.
  return labels.every((l) => label.test(l)) && !labels.every((l) => /^[0-9]+$/.test(l));
}

/** local@domain (RFC 5321 §4.1.2 / §4.5.3.1: local part ≤ 64 octets, domain a domain name). */
export function isMailboxAddress(value: string): boolean {
  const at = value.lastIndexOf('@');
  if (at <= 0) return false;
  const local = value.slice(0, at);
  return local.length <= 64 && /^[^\s@"<>()\[\]\\,;:]+$/.test(local) && !local.startsWith('.') && !local.endsWith('.') && !local.includes('..') && isDomainName(value.slice(at + 1));
}

const id = z.uuid();
const timestamp = z.iso.datetime({ offset: true });

// --- problems --------------------------------------------------------------------------------

export const Problem = z
  .object({
    type: z.string().meta({ description: 'A URI identifying the kind of problem (urn:moat:problem:…)', example: 'urn:moat:problem:invalid-request' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().meta({ description: 'What went wrong in this request, naming the field when one is at fault' }),
    instance: z.string().meta({ description: 'The request path' }),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional().meta({ description: 'Every invalid field, for 400 answers' }),
    requestId: z.string().optional(),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' });

// --- tenants ---------------------------------------------------------------------------------

export const TenantCreate = z
  .strictObject({
    name: z.string().trim().min(1).max(200).meta({ example: 'Acme Corp' }),
    partnerId: id.optional().meta({ description: 'Operators only: the partner that runs this tenant. A partner key always creates tenants of its own.' }),
  })
  .meta({ id: 'TenantCreate' });

export const Tenant = z
  .object({ id, name: z.string(), partnerId: id.nullable(), createdAt: timestamp })
  .meta({ id: 'Tenant' });

export const TenantList = z.object({ items: z.array(Tenant) }).meta({ id: 'TenantList' });

// --- partners --------------------------------------------------------------------------------

export const PartnerCreate = z.strictObject({ name: z.string().trim().min(1).max(200).meta({ example: 'Example MSP' }) }).meta({ id: 'PartnerCreate' });
export const Partner = z.object({ id, name: z.string(), createdAt: timestamp }).meta({ id: 'Partner' });
export const PartnerList = z.object({ items: z.array(Partner) }).meta({ id: 'PartnerList' });

// --- domains ---------------------------------------------------------------------------------

export const RouteInput = z
  .strictObject({
    host: z.string().trim().min(1).max(253).refine(isHostOrIp, 'must be a host name or an IP address').meta({ example: 'mail.acme.example' }),
    port: z.number().int().min(1).max(65535).meta({ example: 25 }),
    priority: z.number().int().min(0).max(65535).default(10).meta({ description: 'Lower is tried first, like an MX preference' }),
  })
  .meta({ id: 'RouteInput', description: "One of the customer's servers for the domain" });

export const DomainCreate = z
  .strictObject({
    name: z.string().trim().max(254).refine(isDomainName, 'must be a domain name such as example.com').meta({ example: 'acme.example' }),
    routes: z.array(RouteInput).min(1, 'at least one route is required').max(16),
  })
  .meta({ id: 'DomainCreate' });

export const Route = z.object({ host: z.string(), port: z.number().int(), priority: z.number().int() }).meta({ id: 'Route' });

export const Domain = z
  .object({ id, tenantId: id, name: z.string(), routes: z.array(Route), createdAt: timestamp })
  .meta({ id: 'Domain', description: 'A protected domain; its routes in delivery order' });

export const DomainList = z.object({ items: z.array(Domain) }).meta({ id: 'DomainList' });

// --- mailboxes -------------------------------------------------------------------------------

export const MailboxCreate = z
  .strictObject({
    address: z.string().trim().max(320).refine(isMailboxAddress, 'must be an address local@domain in one of the tenant’s domains').meta({ example: 'jane@acme.example' }),
    liveArchive: z.boolean().default(true).meta({ description: 'Keep this mailbox in LiveArchive' }),
  })
  .meta({ id: 'MailboxCreate' });

export const Mailbox = z.object({ id, tenantId: id, address: z.string(), liveArchive: z.boolean(), createdAt: timestamp }).meta({ id: 'Mailbox' });
export const MailboxList = z.object({ items: z.array(Mailbox) }).meta({ id: 'MailboxList' });

// --- API keys --------------------------------------------------------------------------------

export const ApiKeyCreate = z
  .strictObject({
    name: z.string().trim().min(1).max(100).meta({ example: 'ticketing integration' }),
    scopes: z.array(z.enum(apiScopes)).min(1).max(apiScopes.length).meta({ description: 'What the key may do; a key can only grant scopes it holds' }),
  })
  .meta({ id: 'ApiKeyCreate' });

export const ApiKeyCreated = z
  .object({
    id,
    key: z.string().meta({ description: 'The bearer token. Shown once: only its hash is stored.' }),
    name: z.string(),
    role: z.enum(['partner', 'tenant']),
    tenantId: id.nullable(),
    partnerId: id.nullable(),
    scopes: z.array(z.enum(apiScopes)),
  })
  .meta({ id: 'ApiKeyCreated' });

// --- message tracking ------------------------------------------------------------------------

export const SmtpReply = z
  .object({ code: z.number().int().nullable(), enhanced: z.string().nullable(), text: z.string() })
  .meta({ id: 'SmtpReply', description: 'A reply exactly as the remote server gave it' });

export const TrackedRecipient = z
  .object({
    rcpt: z.string(),
    status: z.enum(trackedStatuses).meta({ description: 'received → queued ⇄ deferred → one final fate: delivered, failed, bounced, quarantined, rejected or expired; a quarantined message that is released shows released, then its delivery’s fate' }),
    // A union, not .nullable(): the generator drops `null` from a nullable $ref.
    lastReply: z.union([SmtpReply, z.null()]),
    updatedAt: timestamp,
  })
  .meta({ id: 'TrackedRecipient' });

export const MessageSummary = z
  .object({
    id,
    tenantId: id.nullable(),
    direction: z.string(),
    mailFrom: z.string().nullable(),
    subject: z.string().nullable(),
    size: z.number().int().nullable(),
    receivedAt: timestamp,
    verdict: z.enum(['deliver', 'quarantine', 'reject']).nullable(),
    recipients: z.array(TrackedRecipient),
  })
  .meta({ id: 'MessageSummary' });

export const MessageList = z
  .object({ items: z.array(MessageSummary), next: z.string().nullable().meta({ description: 'Pass as `before` for the next page; null on the last page' }) })
  .meta({ id: 'MessageList' });

export const TimelineEntry = z
  .object({
    at: timestamp,
    type: z.string().meta({
      description:
        'accepted (clientIp, helo, ptr, tls, size, sha256) · filtered (verdict, score, authResults, checks, reasons) · delivery_requested (deliveryId, attempt, pool, destination, routes) · delivery_attempt (attempt, sourceIp, remoteHost, tls, error, recipients[{rcpt, outcome, reply}]) · routed, retry_scheduled, failed, bounced, quarantined, rejected, archived, parked, expired (kind, detail)',
    }),
    rcpts: z.array(z.string()),
    detail: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'TimelineEntry' });

export const MessageDetail = MessageSummary.extend({
  client: z.object({ ip: z.string().nullable(), helo: z.string().nullable(), tls: z.object({ protocol: z.string(), cipher: z.string() }).nullable() }),
  sha256: z.string().nullable(),
  timeline: z.array(TimelineEntry),
}).meta({ id: 'MessageDetail' });

export const MessageQuery = z.strictObject({
  tenant: id.optional().meta({ description: 'Only this tenant' }),
  rcpt: z.string().min(1).max(320).optional().meta({ description: 'Only messages to this recipient (case-insensitive)' }),
  from: z.string().max(320).optional().meta({ description: 'Only messages from this envelope sender (case-insensitive; empty for bounces)' }),
  since: timestamp.optional().meta({ description: 'Only messages received at or after (RFC 3339)' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().max(200).optional().meta({ description: 'The `next` value of the previous page' }),
});

// --- LiveArchive -----------------------------------------------------------------------------

/** One row of look-ahead tells whether a next page exists, so a page stays below the store's cap. */
export const maxArchivePage = 200;

export const ArchiveEntry = z
  .object({
    messageId: id,
    receivedAt: timestamp,
    direction: z.enum(['inbound', 'outbound']),
    mailFrom: z.string().meta({ description: 'The envelope sender (RFC 5321 MAIL FROM); empty for bounces' }),
    rcpts: z.array(z.string()).meta({ description: 'The envelope recipients (RFC 5321 RCPT TO)' }),
    from: z.string().nullable().meta({ description: 'The From header (RFC 5322 §3.6.2)' }),
    to: z.string().nullable().meta({ description: 'The To header (RFC 5322 §3.6.3)' }),
    subject: z.string().nullable(),
    date: z.string().nullable().meta({ description: 'The Date header as written by the sender (RFC 5322 §3.6.1)' }),
    messageIdHeader: z.string().nullable().meta({ description: 'The Message-ID header (RFC 5322 §3.6.4)' }),
    size: z.number().int(),
    verdict: z.enum(['deliver', 'quarantine', 'reject']),
  })
  .meta({ id: 'ArchiveEntry' });

export const ArchiveList = z
  .object({ items: z.array(ArchiveEntry), next: z.string().nullable().meta({ description: 'Pass as `before` for the next (older) page; null on the last page' }) })
  .meta({ id: 'ArchiveList' });

export const ArchiveQuery = z.strictObject({
  q: z.string().trim().max(500).optional().meta({ description: 'Words that must all occur (case-insensitive) in the subject, From or To header, envelope sender or a recipient' }),
  limit: z.coerce.number().int().min(1).max(maxArchivePage).default(50),
  before: z.string().max(200).optional().meta({ description: 'The `next` value of the previous page' }),
});

// --- quarantine ------------------------------------------------------------------------------

export const maxQuarantinePage = 200;

export const QuarantineItem = z
  .object({
    messageId: id,
    tenantId: id,
    receivedAt: timestamp,
    quarantinedAt: timestamp,
    expiresAt: timestamp.meta({ description: 'When retention expires it (MOAT_QUARANTINE_RETENTION_DAYS after quarantine) unless released or deleted first' }),
    direction: z.enum(['inbound', 'outbound']),
    mailFrom: z.string().meta({ description: 'The envelope sender; empty for bounces' }),
    rcpts: z.array(z.string()).meta({ description: 'The envelope recipients (the mailboxes whose quarantine it is in)' }),
    from: z.string().nullable().meta({ description: 'The From header' }),
    to: z.string().nullable().meta({ description: 'The To header' }),
    subject: z.string().nullable(),
    size: z.number().int(),
    category: z.enum(quarantineCategories).meta({ description: 'virus and spoofing are released only with the scope quarantine:release-dangerous' }),
    reasons: z.array(z.string()).meta({ description: 'Why the filter quarantined it, e.g. `virus: Eicar-Test-Signature`' }),
    score: z.number(),
    state: z.enum(quarantineStates),
    stateChangedAt: timestamp.nullable(),
    stateChangedBy: z.string().nullable().meta({ description: 'Who released or deleted it (the API key), or `retention`' }),
    hasPreview: z.boolean(),
  })
  .meta({ id: 'QuarantineItem' });

export const QuarantineList = z
  .object({ items: z.array(QuarantineItem), next: z.string().nullable().meta({ description: 'Pass as `before` for the next (older) page; null on the last page' }) })
  .meta({ id: 'QuarantineList' });

export const QuarantineQuery = z.strictObject({
  rcpt: z.string().trim().min(1).max(320).optional().meta({ description: "Only this mailbox's quarantine (a recipient address, case-insensitive)" }),
  category: z.enum(quarantineCategories).optional(),
  state: z.enum(quarantineStates).default('quarantined').meta({ description: 'Default: quarantined (waiting for a decision)' }),
  q: z.string().trim().max(500).optional().meta({ description: 'Words that must all occur (case-insensitive) in the subject, From or To header, envelope sender, a recipient or a reason' }),
  since: timestamp.optional().meta({ description: 'Only messages quarantined at or after (RFC 3339)' }),
  limit: z.coerce.number().int().min(1).max(maxQuarantinePage).default(50),
  before: z.string().max(200).optional().meta({ description: 'The `next` value of the previous page' }),
});

export const QuarantinePreview = z
  .object({
    text: z.string().meta({ description: 'Plain text only (the text part, or the HTML part reduced to text: no markup, no remote content), at most 4096 characters' }),
    truncated: z.boolean(),
    source: z.enum(['text', 'html', 'none']).meta({ description: 'Where the text came from' }),
    attachments: z.array(z.object({ filename: z.string().nullable(), mimeType: z.string(), size: z.number().int() })).meta({ description: 'Attachments by name, type and size; their content is never shown' }),
  })
  .meta({ id: 'QuarantinePreview' });

export const QuarantineDetail = QuarantineItem.extend({
  preview: QuarantinePreview.nullable(),
  previewUnavailable: z.string().nullable().meta({ description: 'Why there is no preview, when there is none' }),
}).meta({ id: 'QuarantineDetail' });

export const QuarantineAction = QuarantineItem.extend({
  alreadyDone: z.boolean().meta({ description: 'The message was already in this state (a repeated request): nothing changed, and for a release nothing is delivered twice' }),
}).meta({ id: 'QuarantineAction' });

export const NotSpamRequest = z
  .strictObject({
    release: z.boolean().default(true).meta({ description: 'Also release the message (default true); false records the feedback only' }),
  })
  .meta({ id: 'NotSpamRequest' });

export const NotSpamResult = QuarantineAction.extend({
  feedbackRecorded: z.boolean().meta({ description: 'false when this message had already been marked not-spam' }),
}).meta({ id: 'NotSpamResult' });

// --- spam feedback (per-tenant learning) -----------------------------------------------------

const spamLabel = z.enum(['spam', 'ham']).meta({ description: '`spam`: this is spam; `ham`: this is not spam' });

export const SpamFeedbackRequest = z
  .strictObject({
    messageId: id.meta({ description: 'A message the tenant received: from its LiveArchive, tracking or quarantine' }),
    label: spamLabel,
  })
  .meta({ id: 'SpamFeedbackRequest' });

export const SpamFeedbackResult = z
  .object({
    messageId: id,
    tenantId: id,
    label: spamLabel,
    previousLabel: spamLabel.nullable().meta({ description: 'The message’s label before this request, or null' }),
    recorded: z.boolean().meta({ description: 'false when this was the message’s latest label already (a repeated request): nothing changes' }),
  })
  .meta({ id: 'SpamFeedbackResult' });

export const SpamFeedbackQuery = z.strictObject({
  messageId: id.optional().meta({ description: 'Only this message’s labels' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

export const SpamFeedbackList = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        messageId: id,
        label: spamLabel,
        source: z.string().meta({ description: '`api` (this endpoint) or `quarantine` (not-spam)' }),
        actor: z.string(),
        at: timestamp,
        trainedAt: timestamp.nullable().meta({ description: 'When the trainer took it; null while pending' }),
        outcome: z.enum(['learned', 'relabelled', 'unchanged', 'untrainable']).nullable().meta({ description: 'What training did: learned, relabelled (the earlier label reversed), unchanged, untrainable (see detail)' }),
        detail: z.string().nullable(),
      }),
    ),
  })
  .meta({ id: 'SpamFeedbackList' });

export const SpamLearningSummary = z
  .object({
    tenantId: id,
    nSpam: z.number().int().meta({ description: 'Messages the tenant’s model holds as spam' }),
    nHam: z.number().int().meta({ description: 'Messages the tenant’s model holds as not spam' }),
    tokens: z.number().int().meta({ description: 'Distinct tokens with counts' }),
    pending: z.number().int().meta({ description: 'Labels waiting for the trainer' }),
    untrainable: z.number().int().meta({ description: 'Labels that could not be learned (the body was gone)' }),
    updatedAt: timestamp.nullable(),
  })
  .meta({ id: 'SpamLearningSummary' });

// --- parked events ---------------------------------------------------------------------------

export const ParkedSummary = z
  .object({
    id: z.string(),
    parkedAt: timestamp,
    sourceQueue: z.string().nullable(),
    routingKey: z.string(),
    reason: z.string().nullable().meta({ description: 'Why the broker dead-lettered it: rejected (unparsable or permanent failure), delivery_limit, …' }),
    eventId: z.string().nullable(),
    eventType: z.string().nullable(),
    messageId: id.nullable(),
    size: z.number().int(),
    replayedAt: timestamp.nullable(),
  })
  .meta({ id: 'ParkedEvent' });

export const ParkedList = z.object({ items: z.array(ParkedSummary), next: z.string().nullable() }).meta({ id: 'ParkedEventList' });

export const ParkedDetail = ParkedSummary.extend({
  headers: z.record(z.string(), z.unknown()),
  body: z.string(),
  bodyEncoding: z.enum(['utf8', 'base64']),
}).meta({ id: 'ParkedEventDetail' });

export const ParkedQuery = z.strictObject({
  queue: z.string().max(200).optional().meta({ description: 'Only events parked from this queue (e.g. tracker, sender.a)' }),
  state: z.enum(['parked', 'all']).default('parked').meta({ description: 'parked: not yet replayed (default); all: replayed ones too' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().regex(/^\d{1,18}$/, 'must be the `next` value of the previous page').optional(),
});

export const ReplayResult = z.object({ id: z.string(), routingKey: z.string(), replayedAt: timestamp }).meta({ id: 'ReplayResult' });

// --- queue control ---------------------------------------------------------------------------

const deliveryState = z.enum(['publishing', 'queued', 'sending', 'deferred', 'held']);

export const QueueItem = z
  .object({
    id,
    messageId: id,
    tenantId: id,
    destination: z.string().meta({ description: 'The destination server(s): `host:port/priority`, comma-separated; what a destination pause names' }),
    pool: z.string(),
    mailFrom: z.string(),
    rcpts: z.array(z.string()).meta({ description: 'Recipients still to deliver (for a purge: the recipients it removed)' }),
    status: z.enum(['publishing', 'queued', 'sending', 'deferred', 'held', 'done']),
    heldBy: z.enum(['operator', 'destination']).nullable().meta({ description: 'Why a held delivery is held: by hand, or because its destination is paused' }),
    attempt: z.number().int(),
    nextAttemptAt: timestamp.nullable(),
    lastError: z.string().nullable(),
    createdAt: timestamp,
    expiresAt: timestamp.nullable().meta({ description: 'An extended lifetime; null: the default queue lifetime from createdAt' }),
    size: z.number().int(),
    retry: z
      .object({
        attempts: z.number().int(),
        firstAttemptAt: z.string().nullable(),
        nextAttemptAt: z.string().nullable(),
        lastReplies: z.record(z.string(), z.string()).meta({ description: 'The last reply per recipient still queued' }),
      })
      .nullable()
      .optional()
      .meta({ description: 'Retry state from the retry schedule (Redis): null before a first failed attempt' }),
  })
  .meta({ id: 'QueuedDelivery' });

export const QueuedDestination = z
  .object({
    destination: z.string(),
    waiting: z.number().int().meta({ description: 'Deliveries not done' }),
    deferred: z.number().int(),
    held: z.number().int(),
    oldestAt: timestamp,
    nextAttemptAt: timestamp.nullable(),
    failures: z.number().int().meta({ description: 'Consecutive attempts that found the destination down (0: up)' }),
    backoffUntil: timestamp.nullable().meta({ description: 'While down: no attempt before then except one probe' }),
    lastError: z.string().nullable(),
  })
  .meta({ id: 'QueuedDestination' });

export const QueuedDestinationList = z.object({ items: z.array(QueuedDestination) }).meta({ id: 'QueuedDestinationList' });

export const QueueList = z.object({ items: z.array(QueueItem), next: z.string().nullable() }).meta({ id: 'QueuedDeliveryList' });

export const QueueQuery = z.strictObject({
  tenant: id.optional(),
  domain: z.string().max(253).optional().meta({ description: 'Deliveries with a recipient in this domain' }),
  destination: z.string().max(2000).optional(),
  state: deliveryState.optional(),
  olderThanSeconds: z.coerce.number().int().min(0).max(365 * 86_400).optional().meta({ description: 'Queued at least this long' }),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.string().max(200).optional().meta({ description: 'The `next` value of the previous page' }),
});

export const QueueExtend = z.strictObject({ expiresAt: timestamp.meta({ description: 'New expiry (in the future); deferred recipients expire then' }) });

export const PurgeRequest = z.strictObject({ bounce: z.boolean().meta({ description: 'true: the sender gets a DSN for the removed recipients' }) });

export const DestinationHoldCreate = z.strictObject({
  destination: z.string().min(1).max(2000),
  tenantId: id.optional().meta({ description: 'Whose deliveries; omitted: the caller\'s tenant, or (operators) every tenant' }),
  reason: z.string().max(500).optional(),
});

export const DestinationHold = z
  .object({
    id: z.string(),
    destination: z.string(),
    tenantId: id.nullable(),
    reason: z.string().nullable(),
    actor: z.string(),
    createdAt: timestamp,
    held: z.number().int().optional().meta({ description: 'Waiting deliveries held by this pause when it began' }),
  })
  .meta({ id: 'DestinationHold' });

export const DestinationHoldList = z.object({ items: z.array(DestinationHold) }).meta({ id: 'DestinationHoldList' });

export const DestinationRelease = z
  .object({ id: z.string(), destination: z.string(), tenantId: id.nullable(), released: z.number().int().meta({ description: 'Deliveries the pause held, now due' }) })
  .meta({ id: 'DestinationRelease' });

// --- sending pools ---------------------------------------------------------------------------

/** A pool name becomes part of a queue name (`sender.<pool>`): lower-case letters, digits, hyphens. */
const poolName = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be 1–63 lower-case letters, digits or hyphens, not starting or ending with a hyphen')
  .meta({ example: 'eu-1' });

/** One range in CIDR notation, normalised (`2001:DB8:1::0/48` → `2001:db8:1::/48`); the message names the bad value. */
const cidr = z.string().transform((value, ctx) => {
  try {
    return normalizeCidr(value);
  } catch (err) {
    if (!(err instanceof CidrError)) throw err;
    ctx.addIssue({ code: 'custom', message: err.message, input: value });
    return z.NEVER;
  }
});

const cidrList = z
  .array(cidr)
  .min(1, 'at least one range is required')
  .max(256)
  .superRefine((values, ctx) => {
    const overlap = findOverlap(values.map(parseCidr));
    if (overlap) ctx.addIssue({ code: 'custom', message: overlap, input: values });
  })
  .meta({ description: 'The source ranges in CIDR notation (IPv4 or IPv6), without host bits and without overlaps', example: ['64.182.140.0/24', '2001:db8:1::/48'] });

/** RFC 5321 §4.1.1.1: EHLO gives the client's fully qualified domain name. */
const ehloName = z.string().trim().max(253).refine(isDomainName, 'must be a fully qualified domain name such as out1.moat.example').meta({ example: 'out1.moat.example' });

export const PoolCreate = z
  .strictObject({
    name: poolName,
    cidrs: cidrList,
    state: z.enum(poolStates).default('active').meta({ description: 'active and warming pools send; draining ones finish what they hold; disabled ones are not published' }),
    ehloName: ehloName.optional(),
  })
  .meta({ id: 'PoolCreate' });

export const PoolUpdate = z
  .strictObject({
    state: z.enum(poolStates).optional(),
    cidrs: cidrList.optional().meta({ description: 'Replaces every range of the pool' }),
    ehloName: ehloName.nullable().optional().meta({ description: 'null clears it' }),
  })
  .refine((p) => p.state !== undefined || p.cidrs !== undefined || p.ehloName !== undefined, 'give at least one of state, cidrs, ehloName')
  .meta({ id: 'PoolUpdate' });

export const PoolRange = z
  .object({
    cidr: z.string().meta({ example: '64.182.140.0/24' }),
    firstLast: z.string().meta({ description: 'First and last address, for rules that take a range', example: '64.182.140.0-64.182.140.255' }),
    netmask: z.string().meta({ description: 'Address and netmask, as Windows and older firewalls take them', example: '64.182.140.0 / 255.255.255.0' }),
  })
  .meta({ id: 'PoolRange' });

export const SendingPool = z
  .object({ name: z.string(), state: z.enum(poolStates), ehloName: z.string().nullable(), ranges: z.array(PoolRange) })
  .meta({ id: 'Pool', description: 'A sending pool: the ranges Moat delivers from' });

export const PoolList = z.object({ items: z.array(SendingPool) }).meta({ id: 'PoolList' });

export const PoolQuery = z.strictObject({
  format: z.enum(['json', 'txt']).default('json').meta({ description: 'txt: text/plain, one CIDR per line, of every pool that is not disabled' }),
});

// --- subnet checks ---------------------------------------------------------------------------

const checkResults = ['pending', 'pass', 'fail', 'error', 'timeout'] as const;
const lockdownResults = ['pending', 'locked', 'open', 'unknown'] as const;

export const TranscriptLine = z
  .object({
    at: z.number().int().meta({ description: 'Milliseconds since the probe started' }),
    from: z.enum(['client', 'server', 'note']).meta({ description: 'client: what Moat sent; server: what the server answered; note: connection, TLS and timeout events' }),
    text: z.string().meta({ description: 'The line without CRLF; control characters escaped as \\xNN' }),
  })
  .meta({ id: 'SubnetProbeTranscriptLine' });

export const SubnetProbe = z
  .object({
    host: z.string(),
    port: z.number().int(),
    priority: z.number().int(),
    result: z.enum(subnetProbeStatuses).meta({
      description:
        'pass: RCPT TO:<postmaster@domain> accepted · fail: refused (or unreachable) at failedStep · error: the probe could not be made from this source (see error) · timeout: no result before the deadline · pending: still running',
    }),
    sourceIp: z.string().nullable().meta({ description: 'The address the probe left from' }),
    remoteAddress: z.string().nullable().meta({ description: 'address:port of the server that answered' }),
    tls: z.boolean().nullable().meta({ description: 'Whether STARTTLS was used (when offered, as in deliveries)' }),
    failedStep: z.enum(subnetProbeSteps).nullable().meta({ description: 'The step that failed: resolve, connect, banner, ehlo, starttls, mail or rcpt' }),
    // A union, not .nullable(): the generator drops `null` from a nullable $ref.
    reply: z.union([SmtpReply, z.null()]).meta({ description: 'The deciding reply: the RCPT reply on a pass, the refusing reply on a fail' }),
    latencyMs: z.number().int().nullable().meta({ description: 'From the TCP connect to the deciding reply' }),
    error: z.string().nullable(),
    transcript: z.array(TranscriptLine),
    finishedAt: timestamp.nullable(),
  })
  .meta({ id: 'SubnetProbe', description: 'One probe of one route: connect, banner, EHLO, STARTTLS when offered, MAIL FROM:<>, RCPT TO:<postmaster@domain>, QUIT (never DATA)' });

export const SubnetCheckPool = z
  .object({
    pool: z.string(),
    state: z.string().nullable(),
    ranges: z.array(z.string()).meta({ description: 'The pool’s ranges (CIDR) when the check was asked for' }),
    result: z.enum(checkResults).meta({ description: 'pass when every route accepted this pool; fail when one refused it' }),
    sourceIp: z.string().nullable(),
    range: z.string().nullable().meta({ description: 'The range sourceIp lies in' }),
    routes: z.array(SubnetProbe),
  })
  .meta({ id: 'SubnetCheckPool' });

export const SubnetCheckLockdown = z
  .object({
    result: z.enum(lockdownResults).meta({
      description: 'locked: every route refused the outsider while accepting a pool (recommended) · open: a route accepted the outsider · unknown: could not be told (see detail) · pending',
    }),
    detail: z.string(),
    sourceIp: z.string().nullable().meta({ description: 'The outsider address (in no pool range)' }),
    routes: z.array(SubnetProbe.extend({ lockdown: z.enum(lockdownResults) }).meta({ id: 'SubnetLockdownProbe' })),
  })
  .meta({ id: 'SubnetCheckLockdown' });

export const SubnetCheck = z
  .object({
    id,
    domainId: id,
    domain: z.string(),
    status: z.enum(['running', 'done']).meta({ description: 'done once every probe has a result or the deadline has passed' }),
    result: z.enum(checkResults).meta({ description: 'pass when every pool passed on every route' }),
    routes: z.array(Route).meta({ description: 'The routes probed: the domain’s configured routes' }),
    createdAt: timestamp,
    deadline: timestamp,
    finishedAt: timestamp.nullable(),
    pools: z.array(SubnetCheckPool),
    lockdown: SubnetCheckLockdown,
  })
  .meta({ id: 'SubnetCheck' });

export const SubnetCheckSummary = z
  .object({ id, status: z.enum(['running', 'done']), result: z.enum(checkResults), lockdown: z.enum(lockdownResults), createdAt: timestamp, finishedAt: timestamp.nullable() })
  .meta({ id: 'SubnetCheckSummary' });

export const SubnetCheckList = z.object({ items: z.array(SubnetCheckSummary) }).meta({ id: 'SubnetCheckList' });

// --- DKIM keys ------------------------------------------------------------------------------

export const DkimKeyCreate = z
  .strictObject({
    selector: z
      .string()
      .trim()
      .toLowerCase()
      .max(253)
      .refine(isDkimSelector, 'must be one or more DNS labels (letters, digits, hyphens, dots between labels), e.g. s2024')
      .optional()
      .meta({ description: 'The s= tag and the DNS name’s first label(s); never reused within the domain. Default: moat-<yyyymmdd>-<4 hex digits>', example: 's2024' }),
    algorithm: z.enum(dkimAlgorithms).default('rsa-sha256').meta({ description: 'rsa-sha256 (2048-bit key, verified everywhere) or ed25519-sha256 (RFC 8463; not every receiver verifies it yet)' }),
    activate: z
      .boolean()
      .default(false)
      .meta({ description: 'Sign with this key at once, retiring the active one. Default false: publish the DNS record first, then activate (a signature whose key is not in DNS fails at the receiver)' }),
  })
  .meta({ id: 'DkimKeyCreate' });

export const DkimDnsRecord = z
  .object({
    name: z.string().meta({ description: '<selector>._domainkey.<domain>', example: 's2024._domainkey.acme.example' }),
    type: z.literal('TXT'),
    value: z.string().meta({ description: 'The record’s text: v=DKIM1; k=rsa|ed25519; p=<public key>', example: 'v=DKIM1; k=rsa; p=MIIBIjANBg…' }),
    strings: z.array(z.string()).meta({ description: 'The value cut into character-strings of at most 255 characters, for zone files (one TXT record of several strings)' }),
  })
  .meta({ id: 'DkimDnsRecord', description: 'The DNS record that publishes the public key (RFC 6376 §3.6.2)' });

export const DkimKey = z
  .object({
    id,
    domainId: id,
    tenantId: id,
    domain: z.string(),
    selector: z.string(),
    algorithm: z.enum(dkimAlgorithms),
    state: z.enum(dkimKeyStates).meta({ description: 'pending: created, not signing yet; active: signs the domain’s outbound mail (one per domain); retired: never signs again' }),
    dnsRecord: DkimDnsRecord,
    createdAt: timestamp,
    activatedAt: timestamp.nullable(),
    retiredAt: timestamp.nullable(),
  })
  .meta({ id: 'DkimKey', description: 'A DKIM signing key of a protected domain; the private key never leaves Moat' });

export const DkimKeyList = z.object({ items: z.array(DkimKey) }).meta({ id: 'DkimKeyList' });

export const Health = z.object({ status: z.string() }).meta({ id: 'Health' });
