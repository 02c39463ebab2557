import type { SpamFeedbackTarget } from '@moat/store';
import { isUuid } from '../access.js';
import { conflict, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { SpamFeedbackList, SpamFeedbackQuery, SpamFeedbackRequest, SpamFeedbackResult, SpamLearningSummary } from '../schemas.js';
import { tenantParams } from './tenants.js';

/**
 * Why a message cannot be labelled, or null. Labels train the filter's inbound classifier for the
 * tenant, so they need inbound mail whose content the trainer can read (or already learned: a
 * relabel moves the stored counts and needs no body).
 */
export function labelRefusal(target: SpamFeedbackTarget): string | null {
  const id = target.messageId;
  if (target.direction !== 'inbound') return `message ${id} is outbound mail: labels train the filter for mail the tenant receives`;
  if (target.quarantine?.category === 'virus') return `message ${id} was quarantined as a virus, which is not a spam verdict`;
  if (target.learnedLabel !== null) return null;
  if (target.quarantine && (target.quarantine.state === 'deleted' || target.quarantine.state === 'expired')) return `message ${id} was ${target.quarantine.state}: there is nothing left to learn from`;
  if (!target.bodyStored) return `the content of message ${id} is no longer stored (retention): there is nothing left to learn from`;
  return null;
}

/**
 * Per-tenant learning (issue 5): "this is spam" / "this is not spam" for any message the tenant
 * received, from its LiveArchive or tracking (delivered mail) or its quarantine. The label goes to
 * spam_feedback; the filter's trainer adds the message's tokens to the tenant's counts. Scopes:
 * spam-feedback:write to label, spam-feedback:read to look. Another tenant's message answers 404,
 * as one that does not exist. Every label is in the audit log with the key that gave it.
 */
export function spamFeedbackRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'post',
      path: '/tenants/{tenantId}/spam-feedback',
      operationId: 'labelMessageForSpamLearning',
      summary: 'Mark a received message as spam or as not spam: the tenant’s filter learns from it',
      description:
        'The label is recorded at once and learned by the filter within MOAT_FILTER_SPAM_TRAIN_INTERVAL_MS; from then on the tenant’s mail is scored with what it taught (no other tenant’s). Repeating a label changes nothing (`recorded` false); changing it (spam, then ham) reverses what the first taught. Labelling does not release or quarantine the message itself (the quarantine’s not-spam releases). 409 for outbound mail, a virus, or a message whose content is gone.',
      tag: 'spam-learning',
      params: tenantParams,
      body: SpamFeedbackRequest,
      success: { status: 200, description: 'Recorded (or already the latest label)', schema: SpamFeedbackResult },
      problems: [409],
      handler: async ({ params, body, access }) => {
        access.requireScope('spam-feedback:write');
        const tenant = await access.tenant(params.tenantId!);
        const target = isUuid(body.messageId) ? await repos.spamLearning.target(tenant.id, body.messageId) : null;
        if (!target) throw notFound(`message ${body.messageId} not found`);
        const refusal = labelRefusal(target);
        if (refusal !== null) throw conflict(refusal);
        const outcome = await repos.spamLearning.record({
          tenantId: tenant.id,
          messageId: target.messageId,
          storeReceivedAt: target.storeReceivedAt,
          label: body.label,
          source: 'api',
          actor: access.actor,
        });
        await repos.audit.record({ actor: access.actor, action: 'spam.feedback', target: target.messageId, detail: { tenantId: tenant.id, label: body.label, previous: outcome.previous, recorded: outcome.recorded } });
        return { body: { messageId: target.messageId, tenantId: tenant.id, label: body.label, previousLabel: outcome.previous, recorded: outcome.recorded } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/spam-feedback',
      operationId: 'listSpamFeedback',
      summary: 'A tenant’s spam/not-spam labels, newest first, with what training did with each',
      tag: 'spam-learning',
      params: tenantParams,
      query: SpamFeedbackQuery,
      success: { status: 200, description: 'The labels', schema: SpamFeedbackList },
      handler: async ({ params, query, access }) => {
        access.requireScope('spam-feedback:read');
        const tenant = await access.tenant(params.tenantId!);
        const items = await repos.spamLearning.feedback(tenant.id, { ...(query.messageId !== undefined ? { messageId: query.messageId } : {}), limit: query.limit });
        return { body: { items } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/spam-learning',
      operationId: 'getSpamLearning',
      summary: 'What the tenant’s spam model has learned: messages per class, tokens, labels pending',
      tag: 'spam-learning',
      params: tenantParams,
      success: { status: 200, description: 'The summary', schema: SpamLearningSummary },
      handler: async ({ params, access }) => {
        access.requireScope('spam-feedback:read');
        const tenant = await access.tenant(params.tenantId!);
        return { body: { tenantId: tenant.id, ...(await repos.spamLearning.summary(tenant.id)) } };
      },
    }),
  ];
}
