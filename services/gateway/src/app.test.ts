import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApp } from './app.js';
import type { GatewayRepositories } from './repositories.js';

let server: http.Server | null = null;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

async function listen(repos: Partial<GatewayRepositories>): Promise<string> {
  const app = createApp({
    repos: repos as GatewayRepositories,
    broker: { publishRaw: async () => {}, publish: async () => {}, envelope: () => { throw new Error('not used here'); } },
    subnetChecks: { start: async () => Promise.reject(new Error('not used here')) },
    health: { handle: async () => false },
    log: pino({ level: 'silent' }),
  });
  server = http.createServer(app);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('createApp', () => {
  it('when a dependency throws an unexpected error, then the answer is a 500 problem that leaks nothing', async () => {
    const base = await listen({
      apiKeys: { authenticate: async () => Promise.reject(new Error('connect ECONNREFUSED 10.9.8.7:5432 password=hunter2')) } as never,
    });
    const res = await fetch(`${base}/api/v1/tenants`, { headers: { authorization: 'Bearer moat_x' } });
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const text = await res.text();
    expect(text).not.toMatch(/hunter2|ECONNREFUSED|10\.9\.8\.7/);
    const body = JSON.parse(text);
    expect(body).toMatchObject({ status: 500, type: 'urn:moat:problem:internal-error', requestId: res.headers.get('x-request-id') });
  });

  it('when a body exceeds the limit, then the answer is a 413 problem', async () => {
    const base = await listen({ apiKeys: { authenticate: async () => null } as never });
    const res = await fetch(`${base}/api/v1/tenants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(200_000) }) });
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});
