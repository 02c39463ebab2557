import { z } from 'zod';
import { routingKeys } from '@moat/contracts';
import type { Broker } from '@moat/runtime';
import { isDangerous, openPreview, type Keyring, type QuarantineEntry, type QuarantinePreview, type QuarantineRecord } from '@moat/store';
import { isUuid, type Access } from '../access.js';
import { conflict, forbidden, notFound } from '../problem.js';
import { deletionEventId, releaseFromQuarantine, settled } from '../quarantine-release.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { NotSpamRequest, NotSpamResult, QuarantineAction, QuarantineDetail, QuarantineList, QuarantineQuery } from '../schemas.js';
import { decodeCursor, encodeCursor } from './messages.js';
import { tenantParams } from './tenants.js';

const messageParams = z.object({ messageId: z.uuid() });

function item(e: QuarantineEntry) {
  return {
    messageId: e.messageId,
    tenantId: e.tenantId,
    receivedAt: e.receivedAt,
    quarantinedAt: e.quarantinedAt,
    expiresAt: e.expiresAt,
    direction: e.direction,
    mailFrom: e.mailFrom,
    rcpts: e.rcpts,
    from: e.fromHeader,
    to: e.toHeader,
    subject: e.subject,
    size: e.size,
    category: e.category,
    reasons: e.reasons,
    score: e.score,
    state: e.state,
    stateChangedAt: e.stateChangedAt,
    stateChangedBy: e.stateChangedBy,
    hasPreview: e.hasPreview,
  };
}

/** The preview, opened with the gateway's preview key, or why there is none. */
function previewOf(record: QuarantineRecord, keyring: Keyring | null): { preview: QuarantinePreview | null; previewUnavailable: string | null } {
  if (!record.preview) {
    if (record.state === 'deleted' || record.state === 'expired') return { preview: null, previewUnavailable: `the message was ${record.state}; its preview went with it` };
    return { preview: null, previewUnavailable: 'no preview was made (the filter has no MOAT_QUARANTINE_PREVIEW_KEY, or could not parse the message)' };
  }
  if (!keyring) return { preview: null, previewUnavailable: 'this gateway has no MOAT_QUARANTINE_PREVIEW_KEY to open previews with' };
  try {
    return { preview: openPreview(keyring, record.messageId, record.preview), previewUnavailable: null };
  } catch {
    return { preview: null, previewUnavailable: `the preview is sealed with key ${record.preview.keyId}, which this gateway does not hold (MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS)` };
  }
}

/**
 * The quarantine (issue 5): list and search per tenant and per mailbox, preview (text only),
 * release, delete, and "not spam". Scopes: quarantine:read to look, quarantine:write to act,
 * and quarantine:release-dangerous as well to release what was quarantined as a virus or as
 * spoofing (operators and `*` keys hold every scope). Another tenant's message answers 404, as one
 * that does not exist. Every view and action is in the audit log with the key that did it.
 */
export function quarantineRoutes(repos: GatewayRepositories, broker: Pick<Broker, 'publish' | 'envelope'>, previewKeyring: Keyring | null): RouteDef[] {
  async function visible(access: Access, messageId: string): Promise<QuarantineRecord> {
    const record = isUuid(messageId) ? await repos.quarantine.get(messageId) : null;
    if (!record || !(await access.canSeeTenantId(record.tenantId))) throw notFound(`quarantined message ${messageId} not found`);
    return record;
  }

  function requireReleasable(access: Access, record: QuarantineRecord): void {
    if (isDangerous(record.category) && !access.holds('quarantine:release-dangerous')) {
      throw forbidden(`message ${record.messageId} was quarantined as ${record.category}: releasing it needs the scope quarantine:release-dangerous (a tenant admin)`);
    }
  }

  async function release(access: Access, record: QuarantineRecord): Promise<{ entry: QuarantineRecord; alreadyDone: boolean }> {
    requireReleasable(access, record);
    return releaseFromQuarantine({ quarantine: repos.quarantine, audit: repos.audit, broker }, record, access.actor);
  }

  return [
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/quarantine',
      operationId: 'listQuarantine',
      summary: 'A tenant’s quarantine (or one mailbox’s, with rcpt), newest first',
      description:
        'By default the messages waiting for a decision (state quarantined). Filter by recipient (a mailbox), category (virus, spoofing, spam, policy), words (`q`: subject, From/To, sender, recipients, reasons) and time (`since`).',
      tag: 'quarantine',
      params: tenantParams,
      query: QuarantineQuery,
      success: { status: 200, description: 'A page of quarantined messages', schema: QuarantineList },
      handler: async ({ params, query, access }) => {
        access.requireScope('quarantine:read');
        const tenant = await access.tenant(params.tenantId!);
        const before = query.before !== undefined ? decodeCursor(query.before) : undefined;
        const rows = await repos.quarantine.search(tenant.id, {
          ...(query.rcpt !== undefined ? { rcpt: query.rcpt } : {}),
          ...(query.category !== undefined ? { category: query.category } : {}),
          state: query.state,
          ...(query.q !== undefined && query.q !== '' ? { q: query.q } : {}),
          ...(query.since !== undefined ? { since: query.since } : {}),
          ...(before ? { before: { quarantinedAt: before.receivedAt, messageId: before.id } } : {}),
          limit: query.limit + 1,
        });
        const items = rows.slice(0, query.limit);
        const last = items[items.length - 1];
        const next = rows.length > query.limit && last ? encodeCursor({ receivedAt: last.quarantinedAt, id: last.messageId }) : null;
        return { body: { items: items.map(item), next } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/quarantine/{messageId}',
      operationId: 'getQuarantinedMessage',
      summary: 'One quarantined message: why it is there, and a safe preview',
      description:
        'The preview is plain text only (the text part, or the HTML part reduced to text: no markup, no images, nothing remote), at most 4096 characters, with the attachments by name, type and size. The view is recorded in the audit log.',
      tag: 'quarantine',
      params: messageParams,
      success: { status: 200, description: 'The message', schema: QuarantineDetail },
      handler: async ({ params, access }) => {
        access.requireScope('quarantine:read');
        const record = await visible(access, params.messageId!);
        const preview = previewOf(record, previewKeyring);
        await repos.audit.record({ actor: access.actor, action: 'quarantine.view', target: record.messageId, detail: { tenantId: record.tenantId, preview: preview.preview !== null } });
        return { body: { ...item(record), ...preview } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/quarantine/{messageId}/release',
      operationId: 'releaseQuarantinedMessage',
      summary: 'Release a quarantined message: it is delivered through the normal path, once',
      description:
        'Needs quarantine:write, and quarantine:release-dangerous as well for a virus or spoofing. Releasing twice (or from two places at once) delivers it once; a repeated release answers 200 with alreadyDone true. 409 when it was deleted or expired.',
      tag: 'quarantine',
      params: messageParams,
      success: { status: 200, description: 'Released', schema: QuarantineAction },
      problems: [409, 502, 503],
      handler: async ({ params, access }) => {
        access.requireScope('quarantine:write');
        const record = await visible(access, params.messageId!);
        const { entry, alreadyDone } = await release(access, record);
        return { body: { ...item(entry), alreadyDone } };
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/quarantine/{messageId}',
      operationId: 'deleteQuarantinedMessage',
      summary: 'Delete a quarantined message: it is never delivered, and its content is erased',
      description:
        'The body is deleted from the message store and the preview with it; the quarantine keeps the metadata (state deleted, who deleted it), and message tracking shows the recipients failed with the reason. 409 when it was already released.',
      tag: 'quarantine',
      params: messageParams,
      success: { status: 200, description: 'Deleted', schema: QuarantineAction },
      problems: [409, 502, 503],
      handler: async ({ params, access }) => {
        access.requireScope('quarantine:write');
        const record = await visible(access, params.messageId!);
        const t = await repos.quarantine.delete(record.messageId, access.actor);
        const entry = settled(record.messageId, t, 'deleted');
        const by = entry.stateChangedBy ?? access.actor;
        await broker.publish(
          routingKeys.messageEvent,
          {
            ...broker.envelope('message.event', { messageId: entry.messageId, tenantId: entry.tenantId, kind: 'failed', rcpt: entry.rcpts, detail: { reason: `deleted from quarantine by ${by}` } }, deletionEventId(entry.messageId)),
            // The time of the deletion, however often this is re-published (see release above).
            occurredAt: entry.stateChangedAt ?? new Date().toISOString(),
          },
        );
        const alreadyDone = t!.outcome === 'unchanged';
        await repos.audit.record({ actor: access.actor, action: 'quarantine.delete', target: entry.messageId, detail: { tenantId: entry.tenantId, category: entry.category, alreadyDone } });
        return { body: { ...item(entry), alreadyDone } };
      },
    }),
    defineRoute({
      method: 'post',
      path: '/quarantine/{messageId}/not-spam',
      operationId: 'markQuarantinedMessageNotSpam',
      summary: 'Mark a quarantined message as not spam (training feedback), and release it',
      description:
        'Records the message as ham for the tenant’s classifier (table spam_feedback, read by the trainer) and, unless `release` is false, releases it as the release endpoint does. A virus is never "not spam" (409); spoofing needs quarantine:release-dangerous to be released.',
      tag: 'quarantine',
      params: messageParams,
      body: NotSpamRequest,
      bodyOptional: true,
      success: { status: 200, description: 'Recorded (and released)', schema: NotSpamResult },
      problems: [409, 502, 503],
      handler: async ({ params, body, access }) => {
        access.requireScope('quarantine:write');
        const record = await visible(access, params.messageId!);
        if (record.category === 'virus') throw conflict(`message ${record.messageId} was quarantined as a virus, which is not a spam verdict; release it if you must (quarantine:release-dangerous)`);
        if (record.state === 'deleted' || record.state === 'expired') throw conflict(`message ${record.messageId} was ${record.state}: there is nothing left to learn from`);
        if (body.release) requireReleasable(access, record);
        const feedbackRecorded = await repos.quarantine.recordFeedback({
          tenantId: record.tenantId,
          messageId: record.messageId,
          storeReceivedAt: record.storeReceivedAt,
          label: 'ham',
          source: 'quarantine',
          actor: access.actor,
        });
        await repos.audit.record({ actor: access.actor, action: 'quarantine.not-spam', target: record.messageId, detail: { tenantId: record.tenantId, category: record.category, feedbackRecorded } });
        if (!body.release) return { body: { ...item(record), alreadyDone: !feedbackRecorded, feedbackRecorded } };
        const { entry, alreadyDone } = await release(access, record);
        return { body: { ...item(entry), alreadyDone, feedbackRecorded } };
      },
    }),
  ];
}
