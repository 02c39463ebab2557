import { isIPv4, isIPv6 } from 'node:net';
import type { DnsResolve, Logger } from '@moat/runtime';
import { TtlCache } from '@moat/store';
import { withinDeadline } from './check-deadline.js';
import { ipv6Groups, unmappedIp } from './client-connections.js';

/** One DNS blocklist zone, and the answers that mean "listed" (empty: any 127.0.0.0/8 but 127.255.255.0/24). */
export interface DnsblZone {
  zone: string;
  codes: string[];
}

/**
 * Parses MOAT_INGRESS_DNSBL_ZONES: zones separated by commas, each optionally followed by
 * `=code[,code…]` — the A answers that count as a listing: `zen.example=127.0.0.2,127.0.0.3,bl.example`
 * is two zones. A token that is an IPv4 address continues the code list of the zone before it
 * (no blocklist zone is a dotted quad), so the one separator stays unambiguous.
 */
export function parseDnsblZones(value: string): DnsblZone[] {
  const zones: DnsblZone[] = [];
  for (const token of value.split(',').map((t) => t.trim()).filter((t) => t !== '')) {
    if (isIPv4(token)) {
      const last = zones[zones.length - 1];
      if (!last || last.codes.length === 0) throw new Error(`${token}: a result code must follow "zone=" (e.g. zen.example=127.0.0.2,127.0.0.3)`);
      last.codes.push(token);
      continue;
    }
    const eq = token.indexOf('=');
    const zone = (eq < 0 ? token : token.slice(0, eq)).toLowerCase().replace(/\.$/, '');
    if (!/^(?=.{1,200}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/.test(zone)) throw new Error(`${zone || '(empty)'}: not a DNS zone name`);
    const codes: string[] = [];
    if (eq >= 0) {
      const code = token.slice(eq + 1).trim();
      if (!isIPv4(code)) throw new Error(`${token}: the result code after "=" must be an IPv4 address such as 127.0.0.2`);
      codes.push(code);
    }
    if (zones.some((z) => z.zone === zone)) throw new Error(`${zone}: listed twice`);
    zones.push({ zone, codes });
  }
  return zones;
}

/**
 * The name to query for a client address (RFC 5782 §2.1 IPv4: octets reversed; §2.4 IPv6: the
 * 32 nibbles reversed), or null for what is not an IP address. IPv4-mapped IPv6 addresses are
 * queried as the IPv4 address they are.
 */
export function dnsblQueryName(ip: string, zone: string): string | null {
  const address = unmappedIp(ip);
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.${zone}`;
  if (!isIPv6(address)) return null;
  return `${ipv6Nibbles(address).reverse().join('.')}.${zone}`;
}

function ipv6Nibbles(ip: string): string[] {
  return ipv6Groups(ip).flatMap((g) => g.padStart(4, '0').split(''));
}

/**
 * Whether an A answer is a listing. With codes configured only those; otherwise anything in
 * 127.0.0.0/8 (RFC 5782 §2.1) except 127.255.255.0/24, which Spamhaus and others answer when they
 * refuse the query (an open resolver, over the free limit): that is an error, never a listing.
 */
export function isListingAnswer(answer: string, codes: readonly string[]): boolean {
  if (codes.length > 0) return codes.includes(answer);
  return answer.startsWith('127.') && !answer.startsWith('127.255.255.');
}

export type DnsblResult =
  | { result: 'listed'; zone: string; answer: string }
  | { result: 'clean' }
  /** Nothing to ask: no zones, or not an IP address. */
  | { result: 'skip' }
  /** Every zone that answered said clean, but at least one did not answer: treated as not listed. */
  | { result: 'error'; zones: string[] };

const notFound = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * DNSBL lookups of the client address in every configured zone, in parallel, each bounded by
 * `timeoutMs`. The first zone (in configured order) that lists the client decides. A zone that
 * fails or times out fails soft: the client counts as not listed there (a blocklist outage must not
 * stop mail). Results are cached per address (errors are not, so the next client asks again).
 */
export class Dnsbl {
  private readonly cache: TtlCache<DnsblResult>;

  constructor(
    private readonly zones: readonly DnsblZone[],
    private readonly resolve: DnsResolve,
    private readonly opts: { timeoutMs: number; cacheMs: number },
    private readonly log: Logger,
  ) {
    this.cache = new TtlCache<DnsblResult>(opts.cacheMs, 50_000);
  }

  get enabled(): boolean {
    return this.zones.length > 0;
  }

  async check(ip: string): Promise<DnsblResult> {
    if (!this.enabled || dnsblQueryName(ip, 'x') === null) return { result: 'skip' };
    const key = unmappedIp(ip);
    const result = await this.cache.get(key, () => this.lookupAll(key));
    if (result.result === 'error') this.cache.delete(key);
    return result;
  }

  private async lookupAll(ip: string): Promise<DnsblResult> {
    const answers = await Promise.all(this.zones.map((z) => this.lookup(ip, z)));
    const failed: string[] = [];
    for (const [i, a] of answers.entries()) {
      const zone = this.zones[i]!.zone;
      if (a === 'error') failed.push(zone);
      else if (a !== null) return { result: 'listed', zone, answer: a };
    }
    return failed.length > 0 ? { result: 'error', zones: failed } : { result: 'clean' };
  }

  /** The listing answer, null when not listed, 'error' when the zone could not say. */
  private async lookup(ip: string, z: DnsblZone): Promise<string | null | 'error'> {
    const name = dnsblQueryName(ip, z.zone)!;
    try {
      const records = await withinDeadline(this.resolve(name, 'A'), this.opts.timeoutMs, `DNSBL lookup of ${name}`);
      return records.map(String).find((a) => isListingAnswer(a, z.codes)) ?? null;
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.code && notFound.has(e.code)) return null;
      this.log.warn({ zone: z.zone, client: ip, err: e.message, code: e.code }, 'DNSBL lookup failed; client treated as not listed there');
      return 'error';
    }
  }
}
