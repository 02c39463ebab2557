import type { QuarantineItem } from './api.js';
import { h, replace, when } from './dom.js';
import { categories, listQuery, messageHref, quarantineHref, states, type QuarantineFilters } from './route.js';
import type { Session } from './session.js';
import { loadPages, searchForm } from './list-page.js';

/** The tenant's quarantine, newest first, with the API's filters; pages load on "Older". */
export async function renderQuarantineList(view: HTMLElement, s: Session, tenantId: string, filters: QuarantineFilters): Promise<void> {
  const field = (label: string, control: HTMLElement) => h('label', {}, label, control);
  const rcpt = h('input', { name: 'rcpt', type: 'email', value: filters.rcpt, placeholder: 'user@example.com', size: 28 });
  const category = h('select', { name: 'category' }, h('option', { value: '' }, 'any'), ...categories.map((c) => h('option', { value: c, selected: c === filters.category }, c)));
  const state = h('select', { name: 'state' }, ...states.map((st) => h('option', { value: st, selected: st === filters.state }, st)));
  const q = h('input', { name: 'q', type: 'search', value: filters.q, placeholder: 'subject, sender, reason…', size: 28 });
  const form = searchForm(
    () => (location.hash = quarantineHref({ tenant: tenantId, rcpt: rcpt.value.trim(), category: category.value, state: state.value, q: q.value.trim() })),
    field('Mailbox', rcpt),
    field('Category', category),
    field('State', state),
    field('Words', q),
  );
  const body = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Older');
  const summary = h('p', { class: 'muted' });
  const table = h(
    'table',
    { id: 'quarantine' },
    h('thead', {}, h('tr', {}, ...['Quarantined', 'From', 'Recipients', 'Subject', 'Category', 'Score', 'State'].map((c) => h('th', { scope: 'col' }, c)))),
    body,
  );
  replace(view, h('h1', {}, 'Quarantine'), form, summary, table, more);

  const linkFilters = { ...filters, tenant: tenantId };
  await loadPages({
    fetchPage: (before) => s.api.get<{ items: QuarantineItem[]; next: string | null }>(`/tenants/${tenantId}/quarantine?${listQuery(filters, before)}`),
    row: (item) => row(item, linkFilters),
    body,
    summary,
    more,
    what: 'the quarantine',
  });
}

function row(item: QuarantineItem, filters: Partial<QuarantineFilters>): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-message-id': item.messageId },
    h('td', {}, when(item.quarantinedAt)),
    h('td', {}, item.from ?? item.mailFrom ?? ''),
    h('td', {}, item.rcpts.join(', ')),
    h('td', { class: 'subject' }, h('a', { href: messageHref(item.messageId, filters) }, item.subject ?? '(no subject)')),
    h('td', {}, h('span', { class: `category ${item.category}` }, item.category)),
    h('td', {}, item.score.toFixed(2)),
    h('td', {}, item.state),
  );
}
