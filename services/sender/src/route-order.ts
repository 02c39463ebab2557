import type { Route } from '@moat/contracts';

/**
 * The order in which a delivery tries its routes: lowest priority value first, like MX
 * preferences (RFC 5321 §5.1), and routes of equal priority in random order so that load
 * spreads over them. `random` returns a number in [0, 1) (injected for tests).
 */
export function orderRoutes(routes: Route[], random: () => number = Math.random): Route[] {
  const byPriority = new Map<number, Route[]>();
  for (const r of routes) byPriority.set(r.priority, [...(byPriority.get(r.priority) ?? []), r]);
  const ordered: Route[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const group = [...byPriority.get(priority)!];
    // Fisher–Yates.
    for (let i = group.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [group[i], group[j]] = [group[j]!, group[i]!];
    }
    ordered.push(...group);
  }
  return ordered;
}

export const routeLabel = (r: Pick<Route, 'host' | 'port'>) => `${r.host}:${r.port}`;
