import { expect } from 'vitest';

/** What the gateway answered: the status, the body (JSON when it parses, else the text), the text, the headers. */
export interface Answer {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

export type Call = (method: string, path: string, opts?: { token?: string; body?: unknown }) => Promise<Answer>;

/**
 * A caller of the gateway under test, as a partner's script would call it: a bearer token (the
 * operator's unless `token` says otherwise), a JSON body when given. `base` and `operator` are
 * read at each call: tests set them in beforeAll, after the caller is made.
 */
export function apiCaller(base: () => string, operator: () => string): Call {
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? operator()}` };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base()}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // text/plain answers stay text
    }
    return { status: res.status, body, text, headers: res.headers };
  };
}

/** An RFC 9457 problem document with this status. */
export function expectProblem(res: Answer, status: number): void {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
}
