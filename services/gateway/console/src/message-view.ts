import { ApiError, type QuarantineAction, type QuarantineDetail } from './api.js';
import { h, replace, when, type Child } from './dom.js';
import { quarantineHref, type QuarantineFilters } from './route.js';
import type { Session } from './session.js';

export interface Feedback {
  ok(message: string): void;
  error(message: string): void;
}

const dangerous = (category: string) => category === 'virus' || category === 'spoofing';

/**
 * One quarantined message: why it is there, its text-only preview (shown as text: the API has
 * already reduced HTML to words, and the page never parses it as markup), and the actions. What
 * the key may do is decided by the API; its refusal (a virus without quarantine:release-dangerous)
 * is shown as it comes.
 */
export async function renderMessage(view: HTMLElement, s: Session, messageId: string, filters: QuarantineFilters, say: Feedback): Promise<void> {
  const m = await s.api.get<QuarantineDetail>(`/quarantine/${messageId}`);
  const back = h('a', { href: quarantineHref({ ...filters, tenant: m.tenantId }) }, '← Quarantine');
  const field = (label: string, value: Child) => [h('dt', {}, label), h('dd', {}, value)];
  const fields = h(
    'dl',
    { class: 'fields' },
    ...field('From', m.from ?? ''),
    ...field('To', m.to ?? ''),
    ...field('Envelope sender', m.mailFrom || '<> (null sender)'),
    ...field('Recipients', m.rcpts.join(', ')),
    ...field('Received', when(m.receivedAt)),
    ...field('Quarantined', when(m.quarantinedAt)),
    ...field('Kept until', when(m.expiresAt)),
    ...field('Category', h('span', { class: `category ${m.category}` }, m.category)),
    ...field('Score', m.score.toFixed(2)),
    ...field('State', h('span', { id: 'state' }, stateText(m))),
    ...field('Size', `${Math.ceil(m.size / 1024)} KiB`),
  );
  const reasons = h('ul', { id: 'reasons' }, ...m.reasons.map((r) => h('li', {}, r)));
  const preview = m.preview
    ? [
        h('pre', { class: 'preview', id: 'preview' }, m.preview.text || '(no text)'),
        m.preview.truncated ? h('p', { class: 'muted' }, 'The preview is cut at 4,096 characters.') : null,
        m.preview.attachments.length
          ? h('ul', { id: 'attachments' }, ...m.preview.attachments.map((a) => h('li', {}, `${a.filename ?? '(unnamed)'} — ${a.mimeType}, ${a.size} bytes`)))
          : null,
      ]
    : [h('p', { class: 'muted', id: 'preview-unavailable' }, m.previewUnavailable ?? 'No preview.')];

  const actions = h('div', { class: 'actions' });
  const render = (state: QuarantineDetail['state']) => {
    actions.replaceChildren();
    if (state !== 'quarantined') return;
    const act = (label: string, run: () => Promise<QuarantineAction>, done: (r: QuarantineAction) => string, cls?: string) =>
      h(
        'button',
        {
          type: 'button',
          class: cls,
          onclick: async (e: Event) => {
            const button = e.currentTarget as HTMLButtonElement;
            // A destructive action asks once more, in the page (no browser dialog).
            if (cls === 'danger' && button.dataset.confirm !== 'yes') {
              button.dataset.confirm = 'yes';
              button.textContent = `Really ${label.toLowerCase()}?`;
              return;
            }
            for (const b of actions.querySelectorAll('button')) b.disabled = true;
            try {
              const r = await run();
              m.state = r.state;
              m.stateChangedAt = r.stateChangedAt;
              m.stateChangedBy = r.stateChangedBy;
              document.getElementById('state')!.textContent = stateText(m);
              say.ok(done(r));
              render(r.state);
            } catch (err) {
              say.error(err instanceof ApiError ? `${err.problem.title}: ${err.problem.detail}` : (err as Error).message);
              for (const b of actions.querySelectorAll('button')) b.disabled = false;
            }
          },
        },
        label,
      );
    actions.append(
      act('Release', () => s.api.post<QuarantineAction>(`/quarantine/${m.messageId}/release`), (r) => (r.alreadyDone ? 'It had already been released: it is delivered once.' : 'Released: it is on its way to the recipients.')),
      m.category === 'virus' ? '' : act('Not spam', () => s.api.post<QuarantineAction>(`/quarantine/${m.messageId}/not-spam`, { release: true }), () => 'Marked as not spam and released.'),
      act('Delete', () => s.api.delete<QuarantineAction>(`/quarantine/${m.messageId}`), () => 'Deleted: it will never be delivered.', 'danger'),
    );
    if (dangerous(m.category)) actions.append(h('p', { class: 'muted' }, `Quarantined as ${m.category}: only a tenant administrator (quarantine:release-dangerous) can release it.`));
  };
  render(m.state);
  replace(view, back, h('h1', { id: 'subject' }, m.subject ?? '(no subject)'), fields, h('h2', {}, 'Why'), reasons, actions, h('h2', {}, 'Preview (text only)'), ...preview);
}

function stateText(m: Pick<QuarantineDetail, 'state' | 'stateChangedAt' | 'stateChangedBy'>): string {
  return m.state === 'quarantined' ? 'quarantined' : `${m.state}${m.stateChangedBy ? ` by ${m.stateChangedBy}` : ''}${m.stateChangedAt ? ` at ${when(m.stateChangedAt)}` : ''}`;
}
