import { isIP } from 'node:net';
import type { DnsResolve } from '@moat/runtime';

export class RouteResolveError extends Error {
  override readonly name = 'RouteResolveError';
}

/**
 * The addresses of a route host, as a delivery from `sourceAddress` would use them: the host
 * itself when it is an address literal (`[2001:db8::25]` too), else its A records — AAAA when
 * the source address is IPv6, since a socket bound to one family cannot reach the other.
 * Throws RouteResolveError naming the host and record type.
 */
export async function routeAddresses(host: string, sourceAddress: string | undefined, resolve: DnsResolve): Promise<string[]> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) return [bare];
  const family = sourceAddress && isIP(sourceAddress) === 6 ? 'AAAA' : 'A';
  let records: unknown[];
  try {
    records = await resolve(host, family);
  } catch (err) {
    throw new RouteResolveError(`cannot resolve ${host} (${family}): ${(err as Error).message}`);
  }
  const addresses = records.filter((r): r is string => typeof r === 'string' && isIP(r) !== 0);
  if (addresses.length === 0) throw new RouteResolveError(`${host} has no ${family} record`);
  return addresses;
}
