import { isIPv4, isIPv6 } from 'node:net';

/**
 * Whom a connection is counted against: the IPv4 address, or the /64 an IPv6 address is in. One
 * IPv6 host usually holds a whole /64 (RFC 4291 §2.5.1 interface ids, SLAAC privacy addresses), so
 * counting single addresses would let it open as many connections as it likes.
 */
export function clientKey(ip: string): string {
  const unmapped = unmappedIp(ip);
  if (isIPv4(unmapped)) return unmapped;
  if (!isIPv6(ip)) return ip;
  return `${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
}

/** An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack listener's view) as the IPv4 address it is. */
export function unmappedIp(ip: string): string {
  return ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros ("::" and dotted tails expanded). */
export function ipv6Groups(ip: string): string[] {
  const toGroups = (part: string): string[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [g];
          const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
          return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
        });
  const gap = ip.indexOf('::');
  const head = toGroups(gap === -1 ? ip : ip.slice(0, gap));
  const tail = gap === -1 ? [] : toGroups(ip.slice(gap + 2));
  const zeros = gap === -1 ? [] : new Array<string>(8 - head.length - tail.length).fill('0');
  return [...head, ...zeros, ...tail].map((g) => parseInt(g, 16).toString(16));
}

/**
 * Open connections per client (see clientKey), bounded per client. A client that fills the
 * limit gets 421 for the next connection while others are still served; the overall bound
 * (MOAT_SMTP_MAX_CLIENTS) is smtp-server's.
 */
export class ConnectionsPerClient {
  private readonly open = new Map<string, number>();

  constructor(private readonly maxPerClient: number) {}

  /** Counts a new connection of this client; false (and not counted) when it already has the maximum. */
  tryOpen(key: string): boolean {
    const n = this.open.get(key) ?? 0;
    if (n >= this.maxPerClient) return false;
    this.open.set(key, n + 1);
    return true;
  }

  /** A counted connection closed. */
  close(key: string): void {
    const n = this.open.get(key) ?? 0;
    if (n <= 1) this.open.delete(key);
    else this.open.set(key, n - 1);
  }

  /** Open connections of this client. */
  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  /** Clients with at least one open connection (the map never keeps a client at zero). */
  get clients(): number {
    return this.open.size;
  }
}
