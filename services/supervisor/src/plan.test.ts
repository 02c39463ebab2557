import { describe, expect, it } from 'vitest';
import { missingEntryPoints, planProcesses, type PlanInput } from './plan.js';
import { parseSenders } from './senders.js';
import { serviceKinds } from './config.js';

const input = (over: Partial<PlanInput> = {}): PlanInput => ({
  services: serviceKinds,
  senders: parseSenders('default=127.0.1.1,bulk=127.0.2.1,bulk=127.0.2.2'),
  adminPortBase: 9101,
  servicesDir: '/repo/services',
  nodePath: '/usr/bin/node',
  env: { PATH: '/bin', MOAT_LOG_LEVEL: 'debug', MOAT_ADMIN_PORT: '1234', MOAT_POOL: 'stale', UNSET: undefined },
  shared: { MOAT_MASTER_KEY: 'k', MOAT_BOOTSTRAP_TOKEN: 't' },
  ...over,
});

describe('planProcesses', () => {
  it('when all services run, then each has its own process and a distinct admin port, senders last', () => {
    const plan = planProcesses(input());
    expect(plan.map((p) => [p.name, p.adminPort])).toEqual([
      ['ingress', 9101],
      ['filter', 9102],
      ['archive', 9103],
      ['router', 9104],
      ['tracker', 9105],
      ['gateway', 9106],
      ['sender:default', 9107],
      ['sender:bulk@127.0.2.1', 9108],
      ['sender:bulk@127.0.2.2', 9109],
    ]);
    expect(new Set(plan.map((p) => p.adminPort)).size).toBe(plan.length);
  });

  it('when a process is planned, then it runs dist/main.js of its service with node', () => {
    const [ingress] = planProcesses(input());
    expect(ingress).toMatchObject({ command: '/usr/bin/node', script: '/repo/services/ingress/dist/main.js', args: ['--enable-source-maps', '/repo/services/ingress/dist/main.js'] });
    const sender = planProcesses(input()).find((p) => p.kind === 'sender');
    expect(sender?.script).toBe('/repo/services/sender/dist/main.js');
  });

  it('when planning, then each process inherits the environment plus the secrets and its own admin port', () => {
    const plan = planProcesses(input());
    const filter = plan.find((p) => p.name === 'filter');
    expect(filter?.env).toEqual({ PATH: '/bin', MOAT_LOG_LEVEL: 'debug', MOAT_MASTER_KEY: 'k', MOAT_BOOTSTRAP_TOKEN: 't', MOAT_ADMIN_PORT: '9102' });
  });

  it('when planning senders, then each gets its pool and source address', () => {
    const senders = planProcesses(input()).filter((p) => p.kind === 'sender');
    expect(senders.map((s) => [s.env.MOAT_POOL, s.env.MOAT_SOURCE_IP])).toEqual([
      ['default', '127.0.1.1'],
      ['bulk', '127.0.2.1'],
      ['bulk', '127.0.2.2'],
    ]);
  });

  it('when only some services run, then ports still belong to the same services', () => {
    const plan = planProcesses(input({ services: ['gateway', 'filter'] }));
    expect(plan.map((p) => [p.name, p.adminPort])).toEqual([
      ['filter', 9102],
      ['gateway', 9106],
    ]);
  });

  it('when the ports would go past 65535, then planning fails naming the variable', () => {
    expect(() => planProcesses(input({ adminPortBase: 65_530 }))).toThrow(/MOAT_ADMIN_PORT_BASE/);
  });
});

describe('missingEntryPoints', () => {
  it('when some entry points are not built, then each missing script is listed once', () => {
    const plan = planProcesses(input());
    const missing = missingEntryPoints(plan, (path) => !path.includes('/sender/') && !path.includes('/gateway/'));
    expect(missing.map((p) => p.script)).toEqual(['/repo/services/gateway/dist/main.js', '/repo/services/sender/dist/main.js']);
  });
});
