import { describe, expect, it } from 'vitest';
import type { Route } from '@moat/contracts';
import { destinationKey, groupByDestination, recipientDomain, routeSourceFor } from './destinations.js';
import { unresolvedDomain } from './unresolved.js';

const r = (host: string, port: number, priority: number): Route => ({ host, port, priority });

describe('destinationKey', () => {
  it('when routes are given in any order, then the key lists them by priority as host:port/priority', () => {
    expect(destinationKey([r('mx2.example', 2525, 20), r('mx1.example', 25, 10)])).toBe('mx1.example:25/10,mx2.example:2525/20');
    expect(destinationKey([r('mx1.example', 25, 10), r('mx2.example', 2525, 20)])).toBe('mx1.example:25/10,mx2.example:2525/20');
  });

  it('when host names differ only in case or a route repeats, then the key is the same', () => {
    expect(destinationKey([r('MX1.Example', 25, 10), r('mx1.example', 25, 10)])).toBe('mx1.example:25/10');
  });

  it('when routes share a priority, then they are ordered by host and port', () => {
    expect(destinationKey([r('b.example', 25, 10), r('a.example', 26, 10), r('a.example', 25, 10)])).toBe('a.example:25/10,a.example:26/10,b.example:25/10');
  });
});

describe('recipientDomain', () => {
  it('when an address has a domain, then it is lower-cased without a trailing dot', () => {
    expect(recipientDomain('Alice@Example.COM.')).toBe('example.com');
    expect(recipientDomain('"a@b"@example.com')).toBe('example.com');
  });
  it('when an address has no domain, then it is null', () => {
    expect(recipientDomain('postmaster')).toBeNull();
    expect(recipientDomain('user@')).toBeNull();
  });
});

describe('groupByDestination', () => {
  const routes: Record<string, Route[] | null> = {
    'a.example': [r('mx.a.example', 25, 10)],
    'a2.example': [r('mx.a.example', 25, 10)],
    'b.example': [r('mx1.b.example', 25, 10), r('mx2.b.example', 25, 20)],
    'noroute.example': [],
  };
  const lookup = (d: string) => routes[d] ?? null;

  it('when recipients of one domain are given, then they form one group in their order', () => {
    const { groups, unrouted } = groupByDestination(['x@a.example', 'y@A.example', 'z@a.example'], lookup);
    expect(unrouted).toEqual([]);
    expect(groups).toEqual([{ destination: 'mx.a.example:25/10', routes: [r('mx.a.example', 25, 10)], rcpts: ['x@a.example', 'y@A.example', 'z@a.example'] }]);
  });

  it('when two domains share the same servers, then their recipients share one group', () => {
    const { groups } = groupByDestination(['x@a.example', 'y@a2.example'], lookup);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.rcpts).toEqual(['x@a.example', 'y@a2.example']);
  });

  it('when domains have different routes, then each gets its group', () => {
    const { groups } = groupByDestination(['x@a.example', 'y@b.example', 'z@a.example'], lookup);
    expect(groups.map((g) => [g.destination, g.rcpts])).toEqual([
      ['mx.a.example:25/10', ['x@a.example', 'z@a.example']],
      ['mx1.b.example:25/10,mx2.b.example:25/20', ['y@b.example']],
    ]);
  });

  it('when a domain is unknown or has no route, then its recipients are unrouted with a reason', () => {
    const { groups, unrouted } = groupByDestination(['x@gone.example', 'y@noroute.example', 'postmaster', 'z@a.example'], lookup);
    expect(groups.map((g) => g.rcpts)).toEqual([['z@a.example']]);
    expect(unrouted.map((u) => u.rcpt)).toEqual(['x@gone.example', 'y@noroute.example', 'postmaster']);
    expect(unrouted[0]!.reason).toMatch(/not a protected domain/);
    expect(unrouted[1]!.reason).toMatch(/no route/);
  });

  it('when a domain’s MX could not be resolved now, then its recipients share one row without routes, keyed by the domain', () => {
    const later = (d: string) => (d === 'dns-down.example' ? ('resolve-later' as const) : lookup(d));
    const { groups, unrouted } = groupByDestination(['x@dns-down.example', 'z@a.example', 'y@DNS-down.example'], later);
    expect(unrouted).toEqual([]);
    expect(groups.map((g) => [g.destination, g.routes, g.rcpts])).toEqual([
      ['mx:dns-down.example', [], ['x@dns-down.example', 'y@DNS-down.example']],
      ['mx.a.example:25/10', [r('mx.a.example', 25, 10)], ['z@a.example']],
    ]);
    expect(unresolvedDomain(groups[0]!.destination)).toBe('dns-down.example');
    expect(unresolvedDomain(groups[1]!.destination)).toBeNull();
  });

  it('when a recipient is listed twice, then it is delivered once', () => {
    const { groups } = groupByDestination(['x@a.example', 'x@a.example'], lookup);
    expect(groups[0]!.rcpts).toEqual(['x@a.example']);
  });
});

describe('routeSourceFor', () => {
  const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
  const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

  it('when mail is inbound, then a protected domain goes to its routes and any other is unroutable', () => {
    expect(routeSourceFor('inbound', A, A)).toBe('routes');
    expect(routeSourceFor('inbound', A, null)).toBe('unrouted');
  });

  it('when mail is outbound, then the tenant’s own domains go to its routes, and other tenants’ domains and the internet to their MX', () => {
    expect(routeSourceFor('outbound', A, A)).toBe('routes');
    expect(routeSourceFor('outbound', A, B)).toBe('mx');
    expect(routeSourceFor('outbound', A, null)).toBe('mx');
  });
});
