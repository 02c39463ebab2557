import { describe, expect, it } from 'vitest';
import { staticResolver, type DnsResolve } from '@moat/runtime';
import { MailRouteCache, mxRoutes, resolveMailRoutes, type MailRoutes } from './mx.js';

const zone = staticResolver({
  'multi.example': {
    MX: [
      { exchange: 'mx-b.multi.example.', priority: 20 },
      { exchange: 'MX-A.multi.example', priority: 10 },
      { exchange: 'mx-c.multi.example', priority: 20 },
    ],
  },
  'implicit.example': { A: ['192.0.2.10'] },
  'implicit6.example': { AAAA: ['2001:db8::10'] },
  'nullmx.example': { MX: [{ exchange: '', priority: 0 }], A: ['192.0.2.11'] },
  'nullmx-dot.example': { MX: [{ exchange: '.', priority: 0 }] },
  'half-null.example': { MX: [{ exchange: '.', priority: 0 }, { exchange: 'mx.half-null.example', priority: 10 }] },
  'nomail.example': { TXT: [['v=spf1 -all']] },
  'servfail.example': { MX: 'SERVFAIL' },
  'timeout.example': { MX: 'TIMEOUT' },
  'a-servfail.example': { TXT: [['x']], A: 'SERVFAIL', AAAA: 'NODATA' },
});

describe('resolveMailRoutes', () => {
  it('when a domain has MX records, then its routes are the exchangers in priority order on the given port', async () => {
    expect(await resolveMailRoutes('multi.example', zone, 2525)).toEqual({
      kind: 'routes',
      source: 'mx',
      routes: [
        { host: 'mx-a.multi.example', port: 2525, priority: 10 },
        { host: 'mx-b.multi.example', port: 2525, priority: 20 },
        { host: 'mx-c.multi.example', port: 2525, priority: 20 },
      ],
    });
  });

  it('when a domain has no MX but an A or AAAA record, then the domain itself is the implicit MX (RFC 5321 §5.1)', async () => {
    expect(await resolveMailRoutes('implicit.example', zone, 25)).toEqual({ kind: 'routes', source: 'implicit', routes: [{ host: 'implicit.example', port: 25, priority: 0 }] });
    expect(await resolveMailRoutes('implicit6.example', zone, 25)).toEqual({ kind: 'routes', source: 'implicit', routes: [{ host: 'implicit6.example', port: 25, priority: 0 }] });
  });

  it('when a domain publishes a null MX (RFC 7505), then it fails permanently with 5.1.10, whatever its A records', async () => {
    for (const domain of ['nullmx.example', 'nullmx-dot.example']) {
      const answer = await resolveMailRoutes(domain, zone, 25);
      expect(answer).toMatchObject({ kind: 'permanent', reply: { code: null, enhanced: '5.1.10' } });
      expect((answer as { reply: { text: string } }).reply.text).toContain('null MX');
    }
  });

  it('when a null MX stands beside real exchangers, then the real ones are used', async () => {
    expect(await resolveMailRoutes('half-null.example', zone, 25)).toMatchObject({ kind: 'routes', routes: [{ host: 'mx.half-null.example', port: 25, priority: 10 }] });
  });

  it('when the domain does not exist (NXDOMAIN), then it fails permanently with 5.1.2', async () => {
    const answer = await resolveMailRoutes('nowhere.example', zone, 25);
    expect(answer).toMatchObject({ kind: 'permanent', reply: { code: null, enhanced: '5.1.2' } });
    expect((answer as { reply: { text: string } }).reply.text).toContain('nowhere.example does not exist');
  });

  it('when the domain exists without MX and without any address, then it fails permanently with 5.4.4', async () => {
    expect(await resolveMailRoutes('nomail.example', zone, 25)).toMatchObject({ kind: 'permanent', reply: { enhanced: '5.4.4' } });
  });

  it('when the MX lookup fails with SERVFAIL or a timeout, then the answer is temporary (4.4.3), never a failure', async () => {
    for (const domain of ['servfail.example', 'timeout.example']) {
      const answer = await resolveMailRoutes(domain, zone, 25);
      expect(answer).toMatchObject({ kind: 'temporary', reply: { code: null, enhanced: '4.4.3' } });
    }
    expect((await resolveMailRoutes('servfail.example', zone, 25)) as { reply: { text: string } }).toMatchObject({ reply: { text: expect.stringContaining('ESERVFAIL') } });
  });

  it('when there is no MX and the address lookup fails temporarily, then the answer is temporary', async () => {
    expect(await resolveMailRoutes('a-servfail.example', zone, 25)).toMatchObject({ kind: 'temporary' });
  });

  it('when the resolver throws something without a DNS code, then the answer is temporary', async () => {
    const broken: DnsResolve = async () => {
      throw new Error('socket hang up');
    };
    expect(await resolveMailRoutes('any.example', broken, 25)).toMatchObject({ kind: 'temporary' });
  });

  it('when the domain is an address literal, then it is its own route and no DNS is asked', async () => {
    const never: DnsResolve = async () => {
      throw new Error('DNS must not be asked');
    };
    expect(await resolveMailRoutes('[192.0.2.7]', never, 25)).toEqual({ kind: 'routes', source: 'literal', routes: [{ host: '[192.0.2.7]', port: 25, priority: 0 }] });
    expect(await resolveMailRoutes('[IPv6:2001:DB8::7]', never, 25)).toEqual({ kind: 'routes', source: 'literal', routes: [{ host: '[2001:db8::7]', port: 25, priority: 0 }] });
    expect(await resolveMailRoutes('[not-an-ip]', never, 25)).toMatchObject({ kind: 'permanent', reply: { enhanced: '5.1.2' } });
  });
});

describe('mxRoutes', () => {
  it('when an exchanger is listed twice, then it appears once, at its best priority', () => {
    expect(
      mxRoutes(
        [
          { exchange: 'mx.example', priority: 30 },
          { exchange: 'mx.example.', priority: 10 },
        ],
        25,
      ),
    ).toEqual([{ host: 'mx.example', port: 25, priority: 10 }]);
  });
});

describe('MailRouteCache', () => {
  it('when an answer has routes, then it is reused until it expires; a failure is asked again every time', async () => {
    let clock = 0;
    const answers: MailRoutes[] = [
      { kind: 'temporary', reply: { code: null, enhanced: '4.4.3', text: 'SERVFAIL' } },
      { kind: 'routes', source: 'mx', routes: [{ host: 'mx.example', port: 25, priority: 10 }] },
      { kind: 'routes', source: 'mx', routes: [{ host: 'mx2.example', port: 25, priority: 10 }] },
    ];
    let calls = 0;
    const cache = new MailRouteCache(async () => answers[calls++]!, 1_000, 10, () => clock);
    expect((await cache.get('example.com')).kind).toBe('temporary');
    expect((await cache.get('example.com')).kind).toBe('routes');
    clock = 999;
    expect(await cache.get('example.com')).toMatchObject({ routes: [{ host: 'mx.example' }] });
    expect(calls).toBe(2);
    clock = 1_001;
    expect(await cache.get('example.com')).toMatchObject({ routes: [{ host: 'mx2.example' }] });
    expect(calls).toBe(3);
  });
});
