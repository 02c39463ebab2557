import { describe, expect, it } from 'vitest';
import { orderRoutes } from './route-order.js';

describe('orderRoutes', () => {
  const routes = [
    { host: 'c', port: 25, priority: 20 },
    { host: 'a', port: 25, priority: 10 },
    { host: 'b', port: 25, priority: 10 },
    { host: 'd', port: 25, priority: 30 },
  ];

  it('when priorities differ, then lower values come first', () => {
    const hosts = orderRoutes(routes, () => 0).map((r) => r.host);
    expect(hosts.slice(2)).toEqual(['c', 'd']);
    expect(hosts.slice(0, 2).sort()).toEqual(['a', 'b']);
  });

  it('when priorities are equal, then both orders occur', () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 50; i++) firsts.add(orderRoutes(routes).map((r) => r.host)[0]!);
    expect([...firsts].sort()).toEqual(['a', 'b']);
  });
});
