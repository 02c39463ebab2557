import { isIPv6 } from 'node:net';
import type { DnsResolve } from '@moat/runtime';

/** PTR names tried for forward confirmation; a client with more gains nothing from them. */
const maxNamesTried = 3;

/**
 * The client's name for the Received header: its PTR name, but only when that name resolves
 * back to the client's address (forward-confirmed reverse DNS, the "iprev" of RFC 8601 §3):
 * whoever controls a reverse zone can put any name in it. Fails soft: no name, a resolver
 * error or the timeout all give null ("unknown"), never a stalled or refused session.
 */
export async function lookupClientName(resolve: DnsResolve, ip: string, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((done) => {
    timer = setTimeout(() => done(null), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([confirmedName(resolve, ip), timeout]);
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

async function confirmedName(resolve: DnsResolve, ip: string): Promise<string | null> {
  const names = (await resolve(ip, 'PTR')).filter((n): n is string => typeof n === 'string').map((n) => n.toLowerCase().replace(/\.$/, ''));
  const family = isIPv6(ip) ? 'AAAA' : 'A';
  const wanted = canonicalIp(ip);
  for (const name of names.filter(isHostName).slice(0, maxNamesTried)) {
    const addresses = await resolve(name, family).catch(() => []);
    if (addresses.some((a) => typeof a === 'string' && canonicalIp(a) === wanted)) return name;
  }
  return null;
}

/** A PTR record is arbitrary bytes: only a plain host name may reach a header. */
export function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => label.length > 0 && label.length <= 63 && /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/i.test(label));
}

function canonicalIp(ip: string): string {
  if (!isIPv6(ip)) return ip;
  // Compare IPv6 addresses in one spelling (zero compression, case).
  return new URL(`http://[${ip}]/`).hostname;
}
