import { domainToASCII, domainToUnicode } from 'node:url';

/**
 * Why a recipient address is refused before any lookup. Each of these is a way to make a mail
 * exchanger relay to somewhere else than the domain it serves, so each is refused with
 * `550 5.7.1` like any other relaying attempt:
 * - `source-route`: `<@relay.example:user@final.example>` (RFC 5321 §4.1.2 / appendix C: routes
 *   are obsolete; honouring one makes us an open relay);
 * - `percent-hack`: `user%other.example@protected.example` (the "%-hack", RFC 1123 §5.2.16);
 * - `bang-path`: `other!user@protected.example` (UUCP routing);
 * - `at-in-local-part`: `"user@other.example"@protected.example` (a quoted local part hiding a
 *   second address, which a downstream server may dequote and route);
 * - `unqualified`: no domain at all (`postmaster`, `user`): no tenant owns it;
 * - `ip-literal`: `user@[192.0.2.1]`: Moat serves named domains, never hosts;
 * - `bad-domain`: a domain that does not convert to a DNS name (IDNA).
 */
export type RefusalReason = 'source-route' | 'percent-hack' | 'bang-path' | 'at-in-local-part' | 'unqualified' | 'ip-literal' | 'bad-domain';

export type RecipientAddress =
  | {
      ok: true;
      /** The local part exactly as given (RFC 5321 §2.4: local parts are case-sensitive). */
      localPart: string;
      /** The domain in its one comparable spelling: A-labels, lower-case, no trailing dot. */
      domain: string;
      /** The same domain with U-labels, for tenants that registered the Unicode spelling. */
      unicodeDomain: string;
      /** `localPart@domain`: what travels in the event and is given to the customer's server. */
      address: string;
    }
  | { ok: false; reason: RefusalReason };

/**
 * Classifies a recipient address from RCPT TO (the path without its angle brackets). Pure: it
 * decides only what the address itself says; whether the domain is protected is a lookup.
 */
export function classifyRecipient(raw: string): RecipientAddress {
  const path = raw.trim();
  // A-d-l ":" Mailbox (RFC 5321 §4.1.2): a path that starts with "@" carries a source route.
  if (path.startsWith('@')) return { ok: false, reason: path.includes(':') ? 'source-route' : 'unqualified' };
  const at = path.lastIndexOf('@');
  if (at <= 0 || at === path.length - 1) return { ok: false, reason: 'unqualified' };
  const localPart = path.slice(0, at);
  const rawDomain = path.slice(at + 1);
  // Checked on the whole local part, quoted or not: a quoted string is still dequoted and
  // re-parsed by some servers behind us, which is the trick.
  if (localPart.includes('@')) return { ok: false, reason: 'at-in-local-part' };
  if (localPart.includes('%')) return { ok: false, reason: 'percent-hack' };
  if (localPart.includes('!')) return { ok: false, reason: 'bang-path' };
  // address-literal (RFC 5321 §4.1.3): "[" ... "]".
  if (rawDomain.startsWith('[') || rawDomain.endsWith(']')) return { ok: false, reason: 'ip-literal' };
  const spelled = rawDomain.toLowerCase().replace(/\.$/, '');
  if (spelled === '' || spelled.includes('..') || spelled.startsWith('.')) return { ok: false, reason: 'bad-domain' };
  const domain = domainToASCII(spelled);
  if (domain === '' || !isDnsName(domain)) return { ok: false, reason: 'bad-domain' };
  return { ok: true, localPart, domain, unicodeDomain: domainToUnicode(domain), address: `${localPart}@${domain}` };
}

function isDnsName(name: string): boolean {
  if (name.length > 253) return false;
  return name.split('.').every((label) => label.length > 0 && label.length <= 63 && /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/.test(label));
}
