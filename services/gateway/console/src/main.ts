import { ApiError } from './api.js';
import { renderArchive } from './archive-view.js';
import { byId, h, replace } from './dom.js';
import { renderMessage } from './message-view.js';
import { renderQuarantineList } from './quarantine-list-view.js';
import { archiveHref, homeHref, parsePlace, quarantineHref } from './route.js';
import { session, signIn, signOut, storedToken, type Session } from './session.js';
import { renderSignIn } from './signin-view.js';

const view = byId('view');
const status = byId('status');
const error = byId('error');
const identity = byId('identity');

function clearFeedback(): void {
  status.textContent = '';
  error.textContent = '';
}
const say = {
  ok: (message: string) => {
    error.textContent = '';
    status.textContent = message;
  },
  error: (message: string) => {
    status.textContent = '';
    error.textContent = message;
  },
};

function renderIdentity(s: Session | null, tenantId: string | null): void {
  if (!s) return replace(identity);
  const picker =
    s.tenants.length > 1
      ? h(
          'select',
          {
            id: 'tenant',
            'aria-label': 'Tenant',
            onchange: (e: Event) => {
              const tenant = (e.target as HTMLSelectElement).value;
              // The same page, for the other tenant.
              location.hash = parsePlace(location.hash).view === 'archive' ? archiveHref({ tenant }) : quarantineHref({ tenant });
            },
          },
          ...s.tenants.map((t) => h('option', { value: t.id, selected: t.id === tenantId }, t.name)),
        )
      : h('span', { id: 'tenant-name' }, s.tenants[0]?.name ?? '');
  const out = h(
    'button',
    {
      type: 'button',
      id: 'sign-out',
      onclick: () => {
        signOut();
        location.hash = '#/signin';
      },
    },
    'Sign out',
  );
  const nav = h('nav', { id: 'nav' }, h('a', { href: quarantineHref({ tenant: tenantId }) }, 'Quarantine'), ' ', h('a', { href: archiveHref({ tenant: tenantId }), id: 'nav-archive' }, 'Archive'));
  replace(identity, nav, ' ', picker, ' ', h('span', { class: 'muted', id: 'key-name' }, `${s.me.name} (${s.me.role})`), ' ', out);
}

async function route(): Promise<void> {
  clearFeedback();
  let s = session();
  if (!s && storedToken()) {
    try {
      s = await signIn(storedToken()!);
    } catch {
      signOut();
    }
  }
  const place = parsePlace(location.hash);
  if (!s || place.view === 'signin') {
    renderIdentity(s, null);
    if (s) {
      location.hash = homeHref(s.me.scopes);
      return;
    }
    return renderSignIn(view, () => (location.hash = homeHref(session()?.me.scopes ?? [])), say.error);
  }
  const tenantId = place.filters.tenant && s.tenants.some((t) => t.id === place.filters.tenant) ? place.filters.tenant : (s.tenants[0]?.id ?? null);
  renderIdentity(s, tenantId);
  try {
    if (place.view === 'message') return await renderMessage(view, s, place.messageId, place.filters, say);
    if (!tenantId) return replace(view, h('p', {}, 'This key sees no tenants.'));
    if (place.view === 'archive') return await renderArchive(view, s, tenantId, place.filters, say);
    await renderQuarantineList(view, s, tenantId, place.filters);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut();
      location.hash = '#/signin';
      return;
    }
    replace(view);
    say.error(err instanceof ApiError ? `${err.problem.title}: ${err.problem.detail}` : (err as Error).message);
  }
}

window.addEventListener('hashchange', () => void route());
void route();
