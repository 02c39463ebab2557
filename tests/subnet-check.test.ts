import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queues } from '@moat/contracts';
import { loadConfig } from '@moat/runtime';
import { CustomerServer, createTestEnv, deleteBrokerNamespace, eventually, silentLog, type TestEnv } from '@moat/testkit';
import * as gateway from '@moat/gateway';
import * as sender from '@moat/sender';
import { ApiClient } from './support/api.js';

// End to end: a subnet check asked through the partner API, answered by two real senders, each
// bound to its pool's address (pool a: 127.0.1.0/24, pool b: 127.0.2.0/24; all of 127.0.0.0/8
// is local on Linux), and by the outsider address 127.0.9.1, against real SMTP servers playing
// the customer's: one locked down to pool a, one open to everyone.

let t: TestEnv;
let api: ApiClient;
let gw: gateway.GatewayService;
const senders: sender.RunningSender[] = [];

const inRange = (ip: string, prefix: string) => ip.startsWith(prefix);
/** Takes pool a; refuses pool b at RCPT (550 5.7.1) and everyone else at connect (554 banner). */
const locked = new CustomerServer({
  allowClient: (ip) => inRange(ip, '127.0.1.') || inRange(ip, '127.0.2.'),
  rcptReply: (_rcpt, client) => (inRange(client.remoteAddress, '127.0.2.') ? [550, '5.7.1 Client host rejected: Access denied'] : null),
});
const open = new CustomerServer();

beforeAll(async () => {
  await locked.start();
  await open.start();
  t = await createTestEnv({ MOAT_SUBNET_CHECK_DEADLINE_MS: '30000' });
  gw = await gateway.start(loadConfig(gateway.configSchema, { ...t.env, MOAT_HTTP_PORT: '0', MOAT_HTTP_HOST: '127.0.0.1' }), silentLog);
  api = new ApiClient(`http://127.0.0.1:${gw.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  expect((await api.request('POST', '/api/v1/pools', { name: 'a', cidrs: ['127.0.1.0/24'] })).status).toBe(201);
  expect((await api.request('POST', '/api/v1/pools', { name: 'b', cidrs: ['127.0.2.0/24'] })).status).toBe(201);
  for (const [pool, ip] of [
    ['a', '127.0.1.1'],
    ['b', '127.0.2.1'],
  ] as const) {
    const env = { ...t.env, MOAT_POOL: pool, MOAT_SOURCE_IP: ip, MOAT_EHLO_NAME: `out-${pool}.moat.test`, MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS: '127.0.9.1', MOAT_SUBNET_CHECK_STEP_TIMEOUT_MS: '5000' };
    senders.push(await sender.start(loadConfig(sender.configSchema, env), silentLog));
  }
}, 60_000);

afterAll(async () => {
  for (const s of senders) await s.stop().catch(() => {});
  await gw?.stop().catch(() => {});
  await locked.stop().catch(() => {});
  await open.stop().catch(() => {});
  if (t) {
    const extra = ['a', 'b'].flatMap((p) => [queues.sender(p).name, queues.subnetCheck(p).name]);
    await deleteBrokerNamespace(t.env.MOAT_AMQP_URL!, t.id, [...extra, queues.subnetCheckOutsider.name]);
    await t.cleanup();
  }
}, 60_000);

/** Starts a check of the domain and polls it until `done`. */
async function runCheck(domainId: string): Promise<any> {
  const started = await api.request('POST', `/api/v1/domains/${domainId}/subnet-checks`);
  expect(started.status).toBe(201);
  expect(started.body.status).toBe('running');
  return eventually(async () => {
    const res = await api.request('GET', `/api/v1/domains/${domainId}/subnet-checks/${started.body.id}`);
    expect(res.status).toBe(200);
    return res.body.status === 'done' ? res.body : null;
  }, 30_000, 200);
}

const pool = (check: any, name: string) => check.pools.find((p: { pool: string }) => p.pool === name);
const sentBy = (probe: any) => probe.transcript.filter((l: { from: string }) => l.from === 'client').map((l: { text: string }) => l.text);

describe('subnet check', () => {
  it('when the server takes pool a, refuses pool b at RCPT and the outsider at connect, then a passes, b fails with the reply, and the lock-down is "locked"', async () => {
    const { domainIds } = await api.provision('Locked Ltd', [{ name: 'locked.example', routes: [{ host: '127.0.0.1', port: locked.port, priority: 10 }] }]);
    const check = await runCheck(domainIds[0]!);
    expect(check.result).toBe('fail');

    const a = pool(check, 'a');
    expect(a).toMatchObject({ result: 'pass', sourceIp: '127.0.1.1', range: '127.0.1.0/24', ranges: ['127.0.1.0/24'] });
    expect(a.routes[0]).toMatchObject({ host: '127.0.0.1', port: locked.port, result: 'pass', failedStep: null, reply: { code: 250 }, remoteAddress: `127.0.0.1:${locked.port}` });
    expect(a.routes[0].latencyMs).toBeGreaterThanOrEqual(0);
    expect(sentBy(a.routes[0])).toEqual(['EHLO out-a.moat.test', 'MAIL FROM:<>', 'RCPT TO:<postmaster@locked.example>', 'QUIT']);

    const b = pool(check, 'b');
    expect(b).toMatchObject({ result: 'fail', sourceIp: '127.0.2.1', range: '127.0.2.0/24' });
    expect(b.routes[0]).toMatchObject({ result: 'fail', failedStep: 'rcpt', reply: { code: 550, enhanced: '5.7.1', text: 'Client host rejected: Access denied' } });
    expect(b.routes[0].transcript.some((l: { from: string; text: string }) => l.from === 'server' && l.text === '550 5.7.1 Client host rejected: Access denied')).toBe(true);

    expect(check.lockdown).toMatchObject({ result: 'locked', sourceIp: '127.0.9.1' });
    expect(check.lockdown.detail).toContain('locked down to Moat');
    expect(check.lockdown.routes[0]).toMatchObject({ result: 'fail', failedStep: 'banner', reply: { code: 554 }, lockdown: 'locked', sourceIp: '127.0.9.1' });

    // What the server saw: exactly one RCPT per source, from the bound addresses, and never DATA.
    expect(locked.rcpts.filter((r) => r.rcpt === 'postmaster@locked.example').map((r) => [r.remoteAddress, r.mailFrom, r.accepted]).sort()).toEqual([
      ['127.0.1.1', '', true],
      ['127.0.2.1', '', false],
    ]);
    expect(locked.dataCommands).toBe(0);
    expect(locked.transactions).toHaveLength(0);
  });

  it('when the server accepts everyone, then both pools pass and the lock-down is "open"', async () => {
    const { domainIds } = await api.provision('Open Ltd', [{ name: 'open.example', routes: [{ host: '127.0.0.1', port: open.port, priority: 10 }] }]);
    const check = await runCheck(domainIds[0]!);
    expect(check.result).toBe('pass');
    expect(check.pools.map((p: { pool: string; result: string }) => [p.pool, p.result])).toEqual([
      ['a', 'pass'],
      ['b', 'pass'],
    ]);
    expect(check.lockdown).toMatchObject({ result: 'open', sourceIp: '127.0.9.1' });
    expect(check.lockdown.detail).toContain('Recommended: accept port 25 only from the published ranges');
    expect(check.lockdown.routes[0]).toMatchObject({ result: 'pass', lockdown: 'open', reply: { code: 250 } });
    expect(open.rcpts.filter((r) => r.rcpt === 'postmaster@open.example').map((r) => r.remoteAddress).sort()).toEqual(['127.0.1.1', '127.0.2.1', '127.0.9.1']);
    expect(open.dataCommands).toBe(0);
  });

  it('when one of two routes is open, then the lock-down is "open" and each route has its own verdict', async () => {
    const { domainIds } = await api.provision('Mixed Ltd', [
      {
        name: 'mixed.example',
        routes: [
          { host: '127.0.0.1', port: locked.port, priority: 10 },
          { host: '127.0.0.1', port: open.port, priority: 20 },
        ],
      },
    ]);
    const check = await runCheck(domainIds[0]!);
    expect(pool(check, 'a').routes.map((r: { port: number; result: string }) => [r.port, r.result])).toEqual([
      [locked.port, 'pass'],
      [open.port, 'pass'],
    ]);
    expect(pool(check, 'b')).toMatchObject({ result: 'fail' });
    expect(pool(check, 'b').routes.map((r: { result: string; failedStep: string | null }) => [r.result, r.failedStep])).toEqual([
      ['fail', 'rcpt'],
      ['pass', null],
    ]);
    expect(check.lockdown.result).toBe('open');
    expect(check.lockdown.routes.map((r: { port: number; lockdown: string }) => [r.port, r.lockdown])).toEqual([
      [locked.port, 'locked'],
      [open.port, 'open'],
    ]);
  });
});
