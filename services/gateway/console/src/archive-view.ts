import { ApiError, type ArchiveEntry, type SpamFeedbackResult } from './api.js';
import { h, replace, when } from './dom.js';
import { loadPages, searchForm } from './list-page.js';
import { archiveHref, archiveQuery, type ArchiveFilters } from './route.js';
import type { Session } from './session.js';

type Say = { ok: (message: string) => void; error: (message: string) => void };

/**
 * The tenant's LiveArchive (delivered and sent mail, newest first) with "Spam" and "Not spam" on
 * each received message: the labels of per-tenant learning (POST /tenants/{id}/spam-feedback).
 * A label does not move the message; it teaches the tenant's filter for the mail that follows.
 */
export async function renderArchive(view: HTMLElement, s: Session, tenantId: string, filters: ArchiveFilters, say: Say): Promise<void> {
  const q = h('input', { name: 'q', type: 'search', value: filters.q, placeholder: 'subject, sender, recipient…', size: 32 });
  const form = searchForm(() => (location.hash = archiveHref({ tenant: tenantId, q: q.value.trim() })), h('label', {}, 'Words', q));
  const body = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Older');
  const summary = h('p', { class: 'muted' });
  const table = h(
    'table',
    { id: 'archive' },
    h('thead', {}, h('tr', {}, ...['Received', 'From', 'Recipients', 'Subject', 'Direction', 'Teach the filter'].map((c) => h('th', { scope: 'col' }, c)))),
    body,
  );
  replace(view, h('h1', {}, 'Archive'), h('p', { class: 'muted' }, 'Mail delivered to and sent by the tenant. Marking a received message teaches this tenant’s spam filter; it does not move the message.'), form, summary, table, more);

  await loadPages({
    fetchPage: (before) => s.api.get<{ items: ArchiveEntry[]; next: string | null }>(`/tenants/${tenantId}/archive?${archiveQuery(filters, before)}`),
    row: (entry) => row(s, tenantId, entry, say),
    body,
    summary,
    more,
    what: 'the archive',
  });
}

function row(s: Session, tenantId: string, entry: ArchiveEntry, say: Say): HTMLTableRowElement {
  const outcome = h('span', { class: 'label-outcome muted' });
  const label = (name: 'spam' | 'ham', text: string) =>
    h(
      'button',
      {
        type: 'button',
        'data-label': name,
        onclick: async (e: Event) => {
          const buttons = (e.currentTarget as HTMLButtonElement).parentElement!.querySelectorAll('button');
          for (const b of buttons) b.disabled = true;
          try {
            const r = await s.api.post<SpamFeedbackResult>(`/tenants/${tenantId}/spam-feedback`, { messageId: entry.messageId, label: name });
            const what = name === 'spam' ? 'spam' : 'not spam';
            outcome.textContent = r.recorded ? `Marked as ${what}.` : `Already marked as ${what}.`;
            say.ok(r.recorded ? `Marked as ${what}: this tenant’s filter learns from it within a minute or so.` : `It was already marked as ${what}.`);
          } catch (err) {
            say.error(err instanceof ApiError ? `${err.problem.title}: ${err.problem.detail}` : (err as Error).message);
          } finally {
            for (const b of buttons) b.disabled = false;
          }
        },
      },
      text,
    );
  // Only received mail trains the inbound filter (the API refuses outbound with 409).
  const teach = entry.direction === 'inbound' ? h('td', { class: 'teach' }, label('spam', 'Spam'), ' ', label('ham', 'Not spam'), ' ', outcome) : h('td', { class: 'muted' }, '—');
  return h(
    'tr',
    { 'data-message-id': entry.messageId },
    h('td', {}, when(entry.receivedAt)),
    h('td', {}, entry.from ?? entry.mailFrom),
    h('td', {}, entry.rcpts.join(', ')),
    h('td', { class: 'subject' }, entry.subject ?? '(no subject)'),
    h('td', {}, entry.direction),
    teach,
  );
}
