import { describe, expect, it } from 'vitest';
import type { SubnetCheck, SubnetProbe } from '@moat/store';
import { checkReport, combine, routeLockdown } from './subnet-check-report.js';

const route = { host: 'mx.acme.example', port: 25, priority: 10 };

function probe(over: Partial<SubnetProbe>): SubnetProbe {
  return {
    id: Math.random().toString(36),
    source: 'pool',
    pool: 'a',
    poolState: 'active',
    cidrs: ['192.0.2.0/24'],
    route,
    status: 'pass',
    sourceIp: '192.0.2.10',
    remoteAddress: '198.51.100.25:25',
    tls: true,
    failedStep: null,
    reply: { code: 250, enhanced: '2.1.5', text: 'Ok' },
    latencyMs: 40,
    error: null,
    transcript: [],
    finishedAt: '2026-01-01T00:00:01.000Z',
    ...over,
  };
}

const outsider = (over: Partial<SubnetProbe>) => probe({ source: 'outsider', pool: null, poolState: null, cidrs: [], sourceIp: '203.0.113.9', ...over });
const refused = (step: SubnetProbe['failedStep'], code: number | null) => ({ status: 'fail' as const, failedStep: step, reply: code === null ? null : { code, enhanced: null, text: 'no' } });

describe('combine', () => {
  it('when probes disagree, then pending wins, then a refusal, then what could not be told; pass only when all passed', () => {
    expect(combine(['pass', 'pass'])).toBe('pass');
    expect(combine(['pass', 'fail', 'timeout'])).toBe('fail');
    expect(combine(['fail', 'pending'])).toBe('pending');
    expect(combine(['pass', 'timeout'])).toBe('timeout');
    expect(combine(['error', 'timeout'])).toBe('error');
    expect(combine([])).toBe('error');
  });
});

describe('routeLockdown', () => {
  it('when the outsider is refused at connect, at banner or with a 5xx while a pool got through, then the route is locked', () => {
    for (const r of [refused('connect', null), refused('banner', 554), refused('rcpt', 550)]) expect(routeLockdown(outsider(r), [probe({})]).result).toBe('locked');
  });

  it('when the outsider got its RCPT accepted, then the route is open', () => {
    expect(routeLockdown(outsider({}), [probe({})])).toMatchObject({ result: 'open', why: expect.stringContaining('203.0.113.9') });
  });

  it('when the outsider was refused only with a 4xx (greylisting), then it cannot be told', () => {
    expect(routeLockdown(outsider(refused('rcpt', 450)), [probe({})])).toMatchObject({ result: 'unknown', why: expect.stringContaining('temporarily') });
  });

  it('when no pool got through either, then a refusal of the outsider proves nothing', () => {
    expect(routeLockdown(outsider(refused('connect', null)), [probe(refused('connect', null))])).toMatchObject({ result: 'unknown', why: expect.stringContaining('unreachable for everyone') });
  });

  it('when the outsider probe did not run, then unknown; while something runs, pending', () => {
    expect(routeLockdown(outsider({ status: 'error', error: 'no sender runs outsider probes' }), [probe({})])).toMatchObject({ result: 'unknown', why: expect.stringContaining('no sender runs outsider probes') });
    expect(routeLockdown(outsider({ status: 'pending' }), [probe({})]).result).toBe('pending');
    expect(routeLockdown(outsider(refused('banner', 554)), [probe({ status: 'pending' })]).result).toBe('pending');
  });
});

describe('checkReport', () => {
  const base: Omit<SubnetCheck, 'probes'> = {
    id: '00000000-0000-4000-8000-000000000001',
    tenantId: '00000000-0000-4000-8000-000000000002',
    domainId: '00000000-0000-4000-8000-000000000003',
    domain: 'acme.example',
    routes: [route, { host: 'mx2.acme.example', port: 25, priority: 20 }],
    status: 'done',
    requestedBy: 'key/1',
    createdAt: '2026-01-01T00:00:00.000Z',
    deadline: '2026-01-01T00:02:00.000Z',
    finishedAt: '2026-01-01T00:00:02.000Z',
  };
  const mx2 = { host: 'mx2.acme.example', port: 25, priority: 20 };

  it('when one route is open and the other locked, then the lock-down is open, naming the open route, and each pool is judged over all routes', () => {
    const report = checkReport({
      ...base,
      probes: [
        probe({}),
        probe({ route: mx2 }),
        probe({ pool: 'b', cidrs: ['198.18.0.0/24'], sourceIp: '198.18.0.7', ...refused('rcpt', 550) }),
        probe({ pool: 'b', cidrs: ['198.18.0.0/24'], sourceIp: '198.18.0.7', route: mx2 }),
        outsider(refused('banner', 554)),
        outsider({ route: mx2 }),
      ],
    });
    expect(report.result).toBe('fail');
    expect(report.pools.map((p) => [p.pool, p.result, p.sourceIp, p.range])).toEqual([
      ['a', 'pass', '192.0.2.10', '192.0.2.0/24'],
      ['b', 'fail', '198.18.0.7', '198.18.0.0/24'],
    ]);
    expect(report.lockdown.result).toBe('open');
    expect(report.lockdown.detail).toMatch(/^mx2\.acme\.example:25 accepted mail from the outsider address 203\.0\.113\.9/);
    expect(report.lockdown.routes.map((r) => [r.host, r.lockdown])).toEqual([
      ['mx.acme.example', 'locked'],
      ['mx2.acme.example', 'open'],
    ]);
  });

  it('when every route refused the outsider, then the lock-down is locked (recommended)', () => {
    const report = checkReport({ ...base, routes: [route], probes: [probe({}), outsider(refused('connect', null))] });
    expect(report.result).toBe('pass');
    expect(report.lockdown).toMatchObject({ result: 'locked', sourceIp: '203.0.113.9' });
    expect(report.lockdown.detail).toContain('(recommended)');
  });

  it('when a pool’s source address lies outside its ranges, then range is null', () => {
    const report = checkReport({ ...base, routes: [route], probes: [probe({ sourceIp: '10.9.9.9' }), outsider({})] });
    expect(report.pools[0]).toMatchObject({ sourceIp: '10.9.9.9', range: null });
  });
});
