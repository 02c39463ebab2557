import { archiveCursor, type ArchiveCursor, type ArchiveEntry } from '@moat/store';
import type { GatewayRepositories } from '../repositories.js';
import { defineRoute, type RouteDef } from '../route.js';
import { ArchiveList, ArchiveQuery } from '../schemas.js';
import { decodeCursor, encodeCursor } from './messages.js';
import { tenantParams } from './tenants.js';

// Archive pages use the same opaque cursor format as message tracking: (receivedAt, message id).
function encodeArchiveCursor(c: ArchiveCursor): string {
  return encodeCursor({ receivedAt: c.receivedAt, id: c.messageId });
}

function decodeArchiveCursor(value: string): ArchiveCursor {
  const c = decodeCursor(value);
  return { receivedAt: c.receivedAt, messageId: c.id };
}

function item(e: ArchiveEntry) {
  return {
    messageId: e.messageId,
    receivedAt: e.receivedAt,
    direction: e.direction,
    mailFrom: e.mailFrom,
    rcpts: e.rcpts,
    from: e.fromHeader,
    to: e.toHeader,
    subject: e.subject,
    date: e.dateHeader,
    messageIdHeader: e.messageIdHeader,
    size: e.size,
    verdict: e.verdict,
  };
}

export function archiveRoutes(repos: GatewayRepositories): RouteDef[] {
  return [
    defineRoute({
      method: 'get',
      path: '/tenants/{tenantId}/archive',
      operationId: 'searchArchive',
      summary: 'LiveArchive search: a tenant’s archived messages, newest first',
      description: 'Every word of `q` must occur (case-insensitive) in the subject, the From or To header, the envelope sender or a recipient; without `q`, every archived message.',
      tag: 'archive',
      params: tenantParams,
      query: ArchiveQuery,
      success: { status: 200, description: 'A page of archived messages', schema: ArchiveList },
      handler: async ({ params, query, access }) => {
        access.requireScope('archive:read');
        const tenant = await access.tenant(params.tenantId!);
        // One row beyond the page tells whether another page follows, so the last page says next: null.
        const rows = await repos.archive.search(tenant.id, {
          ...(query.q !== undefined && query.q !== '' ? { q: query.q } : {}),
          ...(query.before !== undefined ? { before: decodeArchiveCursor(query.before) } : {}),
          limit: query.limit + 1,
        });
        const items = rows.slice(0, query.limit);
        const last = items[items.length - 1];
        const next = rows.length > query.limit && last ? encodeArchiveCursor(archiveCursor(last)) : null;
        return { body: { items: items.map(item), next } };
      },
    }),
  ];
}
