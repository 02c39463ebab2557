import { z } from 'zod';
import type { MessageCursor, TrackedMessage, TrackedMessageDetail } from '@moat/store';
import { isUuid } from '../access.js';
import { badRequest, notFound } from '../problem.js';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { MessageDetail, MessageList, MessageQuery } from '../schemas.js';

/** Page cursors are opaque to clients: base64url of the last item's position. */
export function encodeCursor(c: MessageCursor): string {
  return Buffer.from(JSON.stringify([c.receivedAt, c.id])).toString('base64url');
}

export function decodeCursor(value: string): MessageCursor {
  try {
    const [receivedAt, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as unknown[];
    if (typeof receivedAt === 'string' && !Number.isNaN(Date.parse(receivedAt)) && typeof id === 'string' && isUuid(id)) return { receivedAt, id };
  } catch {
    // fall through
  }
  throw badRequest('before: not a `next` value returned by this API', [{ field: 'before', message: 'not a `next` value returned by this API' }]);
}

function summary(m: TrackedMessage) {
  return {
    id: m.id,
    tenantId: m.tenantId,
    direction: m.direction,
    mailFrom: m.mailFrom,
    subject: m.subject,
    size: m.size,
    receivedAt: m.receivedAt,
    verdict: m.verdict,
    recipients: m.recipients,
  };
}

function detail(m: TrackedMessageDetail) {
  return { ...summary(m), client: { ip: m.clientIp, helo: m.helo, tls: m.tls }, sha256: m.sha256, timeline: m.timeline };
}

export function messageRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'get',
      path: '/messages',
      operationId: 'listMessages',
      summary: 'Message tracking: messages newest first, each recipient with its current status',
      tag: 'messages',
      query: MessageQuery,
      success: { status: 200, description: 'A page of messages', schema: MessageList },
      handler: async ({ query, access }) => {
        access.requireScope('messages:read');
        const scope = await access.tenantFilter(query.tenant);
        const page = await repos.tracking.listMessages({
          ...scope,
          ...(query.rcpt !== undefined ? { rcpt: query.rcpt } : {}),
          ...(query.from !== undefined ? { from: query.from } : {}),
          ...(query.since !== undefined ? { since: query.since } : {}),
          ...(query.before !== undefined ? { before: decodeCursor(query.before) } : {}),
          limit: query.limit,
        });
        return { body: { items: page.items.map(summary), next: page.next ? encodeCursor(page.next) : null } };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/messages/{messageId}',
      operationId: 'getMessage',
      summary: 'Message tracking: one message, its recipients and its timeline',
      description:
        'The timeline shows, in order: accepted (client IP, HELO, TLS, size, sha256), filtered (verdict, authentication results), each delivery request (pool, destination) and attempt (source IP, remote host, the remote server’s exact reply per recipient), and final fates (bounced, quarantined, expired…).',
      tag: 'messages',
      params: z.object({ messageId: z.uuid() }),
      success: { status: 200, description: 'The message', schema: MessageDetail },
      handler: async ({ params, access }) => {
        access.requireScope('messages:read');
        const id = params.messageId!;
        const message = isUuid(id) ? await repos.tracking.getMessage(id) : null;
        if (!message || !(await access.canSeeTenantId(message.tenantId))) throw notFound(`message ${id} not found`);
        return { body: detail(message) };
      },
    }),
  ];
}
