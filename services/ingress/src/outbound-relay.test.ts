import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { OutboundRelay, type OutboundRelayDeps } from './outbound-relay.js';

const T = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const user = { credentialId: '33333333-3333-4333-8333-333333333333', tenantId: T, username: 'relay@acme.example' };

/** A relay over in-memory stand-ins; `failures` counts what authFailures.take saw. */
function relay(over: Partial<OutboundRelayDeps> = {}) {
  const failures: string[] = [];
  const deps: OutboundRelayDeps = {
    authenticate: async (username, password) => (username === user.username && password === 'right' ? user : null),
    tenantForAddress: async () => null,
    findDomain: async (name) => ({ 'acme.example': { tenantId: T }, 'lab.acme.example': { tenantId: OTHER } })[name] ?? null,
    messagesPerWindow: async () => 2,
    messages: { take: async () => ({ allowed: true, count: 1, retryAfterMs: 30_000 }) },
    authFailures: {
      take: async (key) => {
        failures.push(key);
        return { allowed: true, count: failures.length, retryAfterMs: 0 };
      },
      exceeded: async () => false,
    },
    log: pino({ level: 'silent' }),
    ...over,
  };
  return { relay: new OutboundRelay(deps), failures };
}

const reply = (o: { ok: boolean; reply?: { responseCode?: number; message: string } }) => (o.ok ? 'ok' : `${o.reply!.responseCode} ${o.reply!.message}`);

describe('OutboundRelay.authenticate', () => {
  it('when the credentials are right, then the user is returned and no failure is counted', async () => {
    const { relay: r, failures } = relay();
    expect(await r.authenticate({ username: user.username, password: 'right', clientKey: '192.0.2.1' })).toEqual({ ok: true, user });
    expect(failures).toEqual([]);
  });

  it('when they are wrong (or empty), then 535 5.7.8 and the failure is counted under the client key', async () => {
    const { relay: r, failures } = relay();
    expect(reply(await r.authenticate({ username: user.username, password: 'wrong', clientKey: '192.0.2.1' }))).toBe('535 5.7.8 Authentication credentials invalid');
    expect(reply(await r.authenticate({ username: '', password: '', clientKey: '2001:db8:1:2::/64' }))).toMatch(/^535 /);
    expect(failures).toEqual(['192.0.2.1', '2001:db8:1:2::/64']);
  });

  it('when the authorization identity is another one, then 535 even with the right password', async () => {
    const { relay: r } = relay();
    expect(reply(await r.authenticate({ username: user.username, password: 'right', authzid: 'boss@acme.example', clientKey: 'k' }))).toMatch(/^535 5\.7\.8 /);
    expect(reply(await r.authenticate({ username: user.username, password: 'right', authzid: 'RELAY@acme.example', clientKey: 'k' }))).toBe('ok');
  });

  it('when the client is over its failure limit, then 421 4.7.0 without checking the password', async () => {
    let checked = false;
    const { relay: r } = relay({
      authenticate: async () => {
        checked = true;
        return user;
      },
      authFailures: { take: async () => ({ allowed: false, count: 99, retryAfterMs: 1 }), exceeded: async () => true },
    });
    expect(reply(await r.authenticate({ username: user.username, password: 'right', clientKey: 'k' }))).toBe('421 4.7.0 Too many authentication failures from your IP address, try again later');
    expect(checked).toBe(false);
  });

  it('when Redis or Postgres cannot be asked, then 454 4.7.0 (never a pass)', async () => {
    const down = async (): Promise<never> => Promise.reject(new Error('connection refused'));
    expect(reply(await relay({ authFailures: { take: down, exceeded: down } }).relay.authenticate({ username: user.username, password: 'right', clientKey: 'k' }))).toBe('454 4.7.0 Temporary authentication failure, try again later');
    expect(reply(await relay({ authenticate: down }).relay.authenticate({ username: user.username, password: 'right', clientKey: 'k' }))).toMatch(/^454 4\.7\.0 /);
  });
});

describe('OutboundRelay.senderOwner', () => {
  it('when the sender domain is a subdomain, then the most specific protected name decides', async () => {
    const { relay: r } = relay();
    expect(await r.senderOwner('mail.acme.example')).toBe(T);
    expect(await r.senderOwner('x.lab.acme.example')).toBe(OTHER);
    expect(await r.senderOwner('elsewhere.example')).toBeNull();
  });
});

describe('OutboundRelay.takeMessage', () => {
  it('when within the tenant’s limit, then null; over it, 451 4.7.1 with the limit and the wait in seconds', async () => {
    const seen: Array<[string, number | undefined]> = [];
    const { relay: within } = relay({
      messages: {
        take: async (key, limit) => {
          seen.push([key, limit]);
          return { allowed: true, count: 1, retryAfterMs: 0 };
        },
      },
    });
    expect(await within.takeMessage(T)).toBeNull();
    expect(seen).toEqual([[T, 2]]);
    const { relay: over } = relay({ messages: { take: async () => ({ allowed: false, count: 3, retryAfterMs: 12_345 }) } });
    const refused = await over.takeMessage(T);
    expect(`${refused?.responseCode} ${refused?.message}`).toBe('451 4.7.1 Outbound rate limit of 2 messages per minute reached, try again in 13 seconds');
  });

  it('when Redis cannot be asked, then 451 4.3.0: the limit is never skipped', async () => {
    const { relay: r } = relay({ messages: { take: async () => Promise.reject(new Error('redis down')) } });
    const refused = await r.takeMessage(T);
    expect(`${refused?.responseCode} ${refused?.message}`).toBe('451 4.3.0 Temporary failure, please try again later');
  });
});
