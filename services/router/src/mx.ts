import { isIP } from 'node:net';
import type { Route, SmtpReply } from '@moat/contracts';
import type { DnsResolve } from '@moat/runtime';

/**
 * Where mail for a domain that Moat does not protect goes (outbound mail, DSNs): the answer of
 * its MX records, as RFC 5321 §5.1 and RFC 7505 define it.
 * - `routes`: the mail exchangers in priority order (or the implicit MX: the domain itself);
 * - `permanent`: the domain cannot receive mail (NXDOMAIN, a null MX, no MX and no address):
 *   its recipients fail, and their senders get a DSN;
 * - `temporary`: the answer is unknown for now (SERVFAIL, timeout, refused): the recipients are
 *   deferred and the lookup is made again at the next attempt, never turned into a failure.
 * Each failure carries the reply that tracking and the DSN show (no server said it: no code).
 */
export type MailRoutes =
  | { kind: 'routes'; routes: Route[]; source: 'mx' | 'implicit' | 'literal' }
  | { kind: 'permanent'; reply: SmtpReply }
  | { kind: 'temporary'; reply: SmtpReply };

export interface MxRecord {
  exchange: string;
  priority: number;
}

/** DNS error codes that say the answer is definitive (RFC 2308 negative answers). */
const notFound = 'ENOTFOUND';
const noData = 'ENODATA';

const codeOf = (err: unknown): string => (typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'EUNKNOWN');

/** A lookup's outcome: records, or a negative answer (NXDOMAIN / NODATA), or a temporary error. */
type Lookup<T> = { records: T[] } | { negative: 'nxdomain' | 'nodata' } | { error: string };

async function lookup<T>(resolve: DnsResolve, name: string, rrtype: string): Promise<Lookup<T>> {
  try {
    const records = (await resolve(name, rrtype)) as T[];
    return records.length > 0 ? { records } : { negative: 'nodata' };
  } catch (err) {
    const code = codeOf(err);
    if (code === notFound) return { negative: 'nxdomain' };
    if (code === noData) return { negative: 'nodata' };
    // SERVFAIL, timeouts, refused, an unreachable resolver…: nothing says the domain is bad.
    return { error: code };
  }
}

/** The exchange host of an MX record without its trailing dot; '' for the null MX's ".". */
function exchangeHost(r: MxRecord): string {
  return String(r.exchange ?? '').trim().toLowerCase().replace(/\.$/, '');
}

/**
 * The usable mail exchangers of an MX answer, as routes in priority order (ties keep the DNS
 * order; the sender shuffles equal priorities per attempt). The null MX (RFC 7505 §3: one
 * record, preference 0, exchange ".") is the whole answer only when it stands alone; a zone
 * that also lists real exchangers is misconfigured, and those exchangers are used.
 */
export function mxRoutes(records: MxRecord[], port: number): Route[] | 'null-mx' {
  const hosts = records.map((r) => ({ host: exchangeHost(r), priority: Number.isInteger(r.priority) && r.priority >= 0 && r.priority <= 65535 ? r.priority : 65535 }));
  const real = hosts.filter((h) => h.host !== '');
  if (real.length === 0) return 'null-mx';
  const seen = new Set<string>();
  return real
    .map((h, i) => ({ ...h, i }))
    .sort((a, b) => a.priority - b.priority || a.i - b.i)
    .filter((h) => (seen.has(h.host) ? false : (seen.add(h.host), true)))
    .map((h) => ({ host: h.host, port, priority: h.priority }));
}

const temporary = (text: string): MailRoutes => ({ kind: 'temporary', reply: { code: null, enhanced: '4.4.3', text } });

/**
 * Resolves a recipient domain to routes on `port` (25 in production). An address literal
 * (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) is its own route (RFC 5321 §5.1). Status codes follow
 * RFC 3463 / RFC 7505: 5.1.2 the domain does not exist, 5.1.10 null MX, 5.4.4 no route (no MX
 * and no address record), 4.4.3 the directory (DNS) is failing.
 */
export async function resolveMailRoutes(domain: string, resolve: DnsResolve, port: number): Promise<MailRoutes> {
  const literal = /^\[(?:ipv6:)?(.+)\]$/i.exec(domain);
  if (literal) {
    const address = literal[1]!;
    if (isIP(address) === 0) return { kind: 'permanent', reply: { code: null, enhanced: '5.1.2', text: `${domain} is not a valid address literal` } };
    return { kind: 'routes', routes: [{ host: `[${address.toLowerCase()}]`, port, priority: 0 }], source: 'literal' };
  }
  const mx = await lookup<MxRecord>(resolve, domain, 'MX');
  if ('error' in mx) return temporary(`MX lookup for ${domain} failed temporarily (${mx.error}); will retry`);
  if ('negative' in mx && mx.negative === 'nxdomain') {
    return { kind: 'permanent', reply: { code: null, enhanced: '5.1.2', text: `the domain ${domain} does not exist (DNS: NXDOMAIN)` } };
  }
  if ('records' in mx) {
    const routes = mxRoutes(mx.records, port);
    if (routes === 'null-mx') return { kind: 'permanent', reply: { code: null, enhanced: '5.1.10', text: `the domain ${domain} does not accept mail (null MX, RFC 7505)` } };
    return { kind: 'routes', routes, source: 'mx' };
  }
  // No MX records: the domain itself is the implicit MX, preference 0 (RFC 5321 §5.1), if it
  // has an address. Asked here, not left to the sender, so that a domain without any mail
  // host fails now instead of being retried for days.
  const [a, aaaa] = await Promise.all([lookup<string>(resolve, domain, 'A'), lookup<string>(resolve, domain, 'AAAA')]);
  if ('records' in a || 'records' in aaaa) return { kind: 'routes', routes: [{ host: domain, port, priority: 0 }], source: 'implicit' };
  if ('error' in a || 'error' in aaaa) return temporary(`address lookup for ${domain} (no MX) failed temporarily (${'error' in a ? a.error : (aaaa as { error: string }).error}); will retry`);
  return { kind: 'permanent', reply: { code: null, enhanced: '5.4.4', text: `the domain ${domain} has no MX and no address record: no route to a mail server` } };
}

/**
 * MX answers reused for `ttlMs` per domain. Only answers with routes are kept: a failure is asked
 * again next time (a SERVFAIL may be over a second later, and a definitive failure is rare and
 * its recipients are not asked about again).
 */
export class MailRouteCache {
  private readonly entries = new Map<string, { answer: MailRoutes; expires: number }>();

  constructor(
    private readonly lookup: (domain: string) => Promise<MailRoutes>,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(domain: string): Promise<MailRoutes> {
    const hit = this.entries.get(domain);
    if (hit && hit.expires > this.now()) return hit.answer;
    const answer = await this.lookup(domain);
    if (answer.kind === 'routes' && this.ttlMs > 0) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(domain, { answer, expires: this.now() + this.ttlMs });
    } else {
      this.entries.delete(domain);
    }
    return answer;
  }
}
