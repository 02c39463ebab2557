import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Route, SubnetCheckRequestedPayload } from '@moat/contracts';
import { staticResolver } from '@moat/runtime';
import { SubnetCheckRepository, TenantRepository, type SubnetCheck } from '@moat/store';
import { CustomerServer, createTestEnv, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { SubnetCheckHandler, type SubnetCheckHandlerOptions } from '../src/subnet-check-handler.js';

// The sender's subnet-check consumer against the real Postgres (the subnet_check tables) and a
// real SMTP server, from loopback source addresses; the broker hop is in tests/subnet-check.test.ts.

let t: TestEnv;
let db: ReturnType<typeof testPool>;
let checks: SubnetCheckRepository;
let tenants: TenantRepository;
const server = new CustomerServer({ allowClient: (ip) => ip.startsWith('127.0.1.') });
const resolve = staticResolver({ 'mx.customer.test': { A: ['127.0.0.2', '127.0.0.1'] } });
let n = 0;

beforeAll(async () => {
  await server.start();
  t = await createTestEnv();
  db = testPool(t);
  checks = new SubnetCheckRepository(db);
  tenants = new TenantRepository(db);
});

afterAll(async () => {
  await server.stop();
  await db?.end();
  await t?.cleanup();
});

/** A domain with these routes and a check of it from pool `a` (127.0.1.0/24) and the outsider. */
async function newCheck(routes: Route[], deadlineMs = 20_000): Promise<{ check: SubnetCheck; request: (source: 'pool' | 'outsider') => SubnetCheckRequestedPayload }> {
  n++;
  const tenant = await tenants.createTenant({ name: `probe ${n}` });
  const domain = await tenants.createDomain(tenant.id, { name: `probe${n}.example`, routes });
  const deadline = new Date(Date.now() + deadlineMs);
  const check = await checks.create({
    tenantId: tenant.id,
    domainId: domain.id,
    domain: domain.name,
    routes: domain.routes,
    deadline,
    requestedBy: 'test',
    sources: [
      { source: 'pool', pool: 'a', poolState: 'active', cidrs: ['127.0.1.0/24'] },
      { source: 'outsider', pool: null, poolState: null, cidrs: [] },
    ],
  });
  return {
    check,
    request: (source) => ({
      checkId: check.id,
      tenantId: tenant.id,
      domain: domain.name,
      routes: domain.routes,
      source,
      pool: source === 'pool' ? 'a' : null,
      cidrs: source === 'pool' ? ['127.0.1.0/24'] : ['127.0.1.0/24', '127.0.2.0/24'],
      deadline: deadline.toISOString(),
    }),
  };
}

function handler(opts: Partial<SubnetCheckHandlerOptions> = {}): SubnetCheckHandler {
  return new SubnetCheckHandler({ checks, source: 'pool', pool: 'a', sourceAddress: '127.0.1.1', ehloName: 'out.moat.test', stepTimeoutMs: 3_000, resolve, log: silentLog, ...opts });
}

const probesOf = async (id: string, source: 'pool' | 'outsider') => (await checks.get(id))!.probes.filter((p) => p.source === source);

describe('SubnetCheckHandler', () => {
  it('when a pool request arrives, then every route is probed from the pool address and the results are written; a redelivery probes nothing again', async () => {
    const { check, request } = await newCheck([
      { host: '127.0.0.1', port: server.port, priority: 10 },
      { host: 'mx.customer.test', port: server.port, priority: 20 },
    ]);
    const before = server.rcpts.length;
    await handler().handle(request('pool'));
    const probes = await probesOf(check.id, 'pool');
    expect(probes.map((p) => [p.route.host, p.status, p.sourceIp, p.remoteAddress])).toEqual([
      ['127.0.0.1', 'pass', '127.0.1.1', `127.0.0.1:${server.port}`],
      // 127.0.0.2 refuses the connection (nothing listens there): the next address is tried.
      ['mx.customer.test', 'pass', '127.0.1.1', `127.0.0.1:${server.port}`],
    ]);
    const viaName = probes[1]!;
    expect(viaName.transcript.filter((l) => l.from === 'note' && /ECONNREFUSED|connected from/.test(l.text)).map((l) => l.text)).toEqual([
      expect.stringContaining('ECONNREFUSED 127.0.0.2'),
      `connected from 127.0.1.1 to 127.0.0.1:${server.port}`,
    ]);
    expect(server.rcpts.length - before).toBe(2);
    // The outsider has not answered yet: the check runs on.
    expect((await checks.get(check.id))!.status).toBe('running');

    await handler().handle(request('pool'));
    expect(server.rcpts.length - before).toBe(2);
  });

  it('when the outsider probes and its result is the last one, then the check is done', async () => {
    const { check, request } = await newCheck([{ host: '127.0.0.1', port: server.port, priority: 10 }]);
    await handler().handle(request('pool'));
    await handler({ source: 'outsider', pool: null, sourceAddress: '127.0.9.1' }).handle(request('outsider'));
    const done = (await checks.get(check.id))!;
    expect(done.status).toBe('done');
    expect(done.finishedAt).not.toBeNull();
    expect(done.probes.map((p) => [p.source, p.status, p.failedStep, p.reply?.code ?? null])).toEqual([
      ['pool', 'pass', null, 250],
      ['outsider', 'fail', 'banner', 554],
    ]);
  });

  it('when the sender’s address is not in its pool’s ranges, then its probes are errors naming the misconfiguration, and nothing is sent', async () => {
    const { check, request } = await newCheck([{ host: '127.0.0.1', port: server.port, priority: 10 }]);
    const before = server.rcpts.length;
    await handler({ sourceAddress: '127.0.5.1' }).handle(request('pool'));
    const [probe] = await probesOf(check.id, 'pool');
    expect(probe).toMatchObject({ status: 'error', sourceIp: '127.0.5.1' });
    expect(probe!.error).toContain("127.0.5.1 is not in pool a's ranges (127.0.1.0/24)");
    expect(server.rcpts.length).toBe(before);
  });

  it('when the outsider address lies in a published range, then the outsider probe is an error: it is no outsider', async () => {
    const { check, request } = await newCheck([{ host: '127.0.0.1', port: server.port, priority: 10 }]);
    await handler({ source: 'outsider', pool: null, sourceAddress: '127.0.2.9' }).handle(request('outsider'));
    const [probe] = await probesOf(check.id, 'outsider');
    expect(probe).toMatchObject({ status: 'error' });
    expect(probe!.error).toContain('lies in the published range 127.0.2.0/24');
  });

  it('when a route host does not resolve, then its probe fails at resolve', async () => {
    const { check, request } = await newCheck([{ host: 'nowhere.customer.test', port: 25, priority: 10 }]);
    await handler().handle(request('pool'));
    const [probe] = await probesOf(check.id, 'pool');
    expect(probe).toMatchObject({ status: 'fail', failedStep: 'resolve', reply: null });
    expect(probe!.error).toContain('cannot resolve nowhere.customer.test (A)');
  });

  it('when a request arrives after its deadline, then nothing is probed and the check ends in timeout', async () => {
    const { check, request } = await newCheck([{ host: '127.0.0.1', port: server.port, priority: 10 }], 1_200);
    await new Promise((r) => setTimeout(r, 1_300));
    const before = server.rcpts.length;
    await handler().handle(request('pool'));
    expect(server.rcpts.length).toBe(before);
    const done = (await checks.get(check.id))!;
    expect(done.status).toBe('done');
    expect(done.probes.map((p) => p.status)).toEqual(['timeout', 'timeout']);
  });

  it('when a request reaches the wrong consumer, then it is refused as permanent (parked)', async () => {
    const { request } = await newCheck([{ host: '127.0.0.1', port: server.port, priority: 10 }]);
    await expect(handler({ pool: 'b' }).handle(request('pool'))).rejects.toMatchObject({ permanent: true });
    await expect(handler().handle(request('outsider'))).rejects.toMatchObject({ permanent: true });
  });
});
