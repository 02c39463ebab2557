import { Api, type Me, type Tenant } from './api.js';

/**
 * The signed-in key, kept in this tab's sessionStorage: closing the tab signs out, another tab
 * signs in on its own, and nothing is stored in a cookie the browser would send by itself.
 */
const storageKey = 'moat.console.apiKey';

export interface Session {
  api: Api;
  me: Me;
  /** The tenants this key may look at (a tenant key: its own). */
  tenants: Tenant[];
}

let current: Session | null = null;

export function storedToken(): string | null {
  return sessionStorage.getItem(storageKey);
}

/** Checks the key with the API and remembers it; throws ApiError (401) for a key that is not valid. */
export async function signIn(token: string): Promise<Session> {
  const api = new Api(token);
  const me = await api.get<Me>('/me');
  let tenants: Tenant[];
  if (me.role === 'tenant' && me.tenantId) {
    tenants = [{ id: me.tenantId, name: me.tenantName ?? me.tenantId }];
  } else {
    tenants = (await api.get<{ items: Tenant[] }>('/tenants')).items;
  }
  sessionStorage.setItem(storageKey, token);
  current = { api, me, tenants };
  return current;
}

export function session(): Session | null {
  return current;
}

export function signOut(): void {
  sessionStorage.removeItem(storageKey);
  current = null;
}
