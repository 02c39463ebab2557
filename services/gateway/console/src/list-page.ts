import { h } from './dom.js';

/** A search form of the list pages: the fields side by side and a Search button; `onSearch` runs on submit (it changes the URL fragment). */
export function searchForm(onSearch: () => void, ...fields: HTMLElement[]): HTMLFormElement {
  return h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e: Event) => {
        e.preventDefault();
        onSearch();
      },
    },
    ...fields,
    h('button', { type: 'submit' }, 'Search'),
  );
}

export interface PagedList<T> {
  /** One page of the API's list; `next` is its cursor for the following page, null on the last. */
  fetchPage: (before: string | null) => Promise<{ items: T[]; next: string | null }>;
  row: (item: T) => HTMLElement;
  body: HTMLElement;
  summary: HTMLElement;
  more: HTMLButtonElement;
  /** What the list holds, for the error line ("the archive"). */
  what: string;
}

/** Loads the first page into the table and every later one on "Older"; the summary counts what is shown. */
export async function loadPages<T>(list: PagedList<T>): Promise<void> {
  let shown = 0;
  const load = async (before: string | null) => {
    list.more.disabled = true;
    const page = await list.fetchPage(before);
    for (const item of page.items) list.body.appendChild(list.row(item));
    shown += page.items.length;
    list.summary.textContent = shown === 0 ? 'No messages match.' : `${shown} message${shown === 1 ? '' : 's'}${page.next ? ' (more below)' : ''}.`;
    list.more.hidden = page.next === null;
    list.more.disabled = false;
    list.more.onclick = page.next ? () => void load(page.next).catch((err: Error) => (list.summary.textContent = `Could not load ${list.what}: ${err.message}`)) : null;
  };
  await load(null);
}
