import { ApiError } from './api.js';
import { h, replace } from './dom.js';
import { signIn } from './session.js';

export function renderSignIn(view: HTMLElement, onSignedIn: () => void, showError: (message: string) => void): void {
  const input = h('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        button.disabled = true;
        try {
          await signIn(input.value.trim());
          onSignedIn();
        } catch (err) {
          showError(err instanceof ApiError && err.status === 401 ? 'This API key is not valid (or was revoked).' : `Sign-in failed: ${(err as Error).message}`);
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an API key (operator, partner or tenant). It stays in this browser tab only.'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    button,
  );
  replace(view, form);
  input.focus();
}
