import { isIP } from 'node:net';
import { containsCidr, parseCidr, type Cidr, type FilterListEntry } from '@moat/store';

/**
 * Allow and block lists (tenant policy, issue 5): which entries match a message, and what the
 * lists decide for it. Pure.
 *
 * An entry matches a message when it matches any of the sender's identities:
 * - `address`: the envelope sender (MAIL FROM) or a From header address, compared whole and
 *   case-insensitively;
 * - `domain`: the domain of either of those addresses, or any subdomain of it (`example.com`
 *   matches `mail.example.com`, never `badexample.com`);
 * - `ip`: the client IP (the SMTP peer ingress saw), inside the entry's CIDR range; an
 *   IPv4-mapped IPv6 client (`::ffff:192.0.2.1`) is its IPv4 address.
 *
 * Per recipient: an entry applies when it is tenant-wide (mailbox null) or for that recipient.
 * A block entry that applies wins over any allow entry; otherwise an allow entry allows.
 *
 * Per message (one message, one verdict): the lists decide only when they decide the same for
 * every recipient: all blocked → block, all allowed → allow; anything else → the lists decide
 * nothing and the message is filtered as if no entry had matched. So one mailbox's list never
 * decides another mailbox's mail: a mailbox entry alone moves a message only when that mailbox is
 * its only recipient (or every other recipient's own lists say the same). Tenant-wide entries
 * apply to every recipient alike and so always decide.
 */

export interface SenderIdentities {
  /** MAIL FROM; the empty string is the null reverse-path (a bounce), which no address or domain entry matches. */
  mailFrom: string;
  /** The From header addresses, lower case. */
  headerFrom: readonly string[];
  /** The SMTP client's address. */
  clientIp: string;
}

export interface ListMatch {
  entry: FilterListEntry;
  /** Which identity it matched, for the reason. */
  identity: 'envelope sender' | 'From header' | 'client IP';
}

export type ListDecision =
  | { kind: 'block'; matches: ListMatch[]; reason: string }
  /** `byIp`: every recipient is allowed by an ip entry (the only identity a sender cannot forge over SMTP). */
  | { kind: 'allow'; byIp: boolean; matches: ListMatch[]; reason: string }
  /** `reason` says why lists that matched decided nothing (recipients disagree); null when nothing matched. */
  | { kind: 'none'; reason: string | null };

function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  return at > 0 && at < address.length - 1 ? address.slice(at + 1).toLowerCase().replace(/\.$/, '') : null;
}

/** `mail.example.com` is within `example.com`; `badexample.com` is not. */
export function isWithinDomain(domain: string, parent: string): boolean {
  return domain === parent || domain.endsWith(`.${parent}`);
}

/** The client address as a single-address range, or null for something that is not an address. */
function clientRange(ip: string): Cidr | null {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  const address = mapped ? mapped[1]! : ip;
  const version = isIP(address);
  if (version === 0) return null;
  try {
    return parseCidr(`${address}/${version === 4 ? 32 : 128}`);
  } catch {
    return null; // a zone index names no global address
  }
}

/** The identity an entry matches, or null. Entries are stored normalised (filter-policy.ts). */
export function matchEntry(entry: Pick<FilterListEntry, 'kind' | 'value'>, who: SenderIdentities): ListMatch['identity'] | null {
  const envelope = who.mailFrom.toLowerCase();
  const headers = who.headerFrom.map((a) => a.toLowerCase());
  switch (entry.kind) {
    case 'address':
      if (envelope !== '' && envelope === entry.value) return 'envelope sender';
      return headers.includes(entry.value) ? 'From header' : null;
    case 'domain': {
      const envelopeDomain = domainOf(envelope);
      if (envelopeDomain !== null && isWithinDomain(envelopeDomain, entry.value)) return 'envelope sender';
      return headers.some((a) => {
        const d = domainOf(a);
        return d !== null && isWithinDomain(d, entry.value);
      })
        ? 'From header'
        : null;
    }
    case 'ip': {
      const client = clientRange(who.clientIp);
      if (client === null) return null;
      let range: Cidr;
      try {
        range = parseCidr(entry.value);
      } catch {
        return null; // stored values are validated; a bad one matches nothing rather than everything
      }
      return containsCidr(range, client) ? 'client IP' : null;
    }
  }
}

function describeMatch(m: ListMatch): string {
  const owner = m.entry.mailbox === null ? `the tenant's ${m.entry.list} list` : `the ${m.entry.list} list of ${m.entry.mailbox}`;
  return `${owner} (${m.entry.kind} ${m.entry.value} matches the ${m.identity})`;
}

type RecipientFate = { rcpt: string; fate: 'block' | 'allow' | 'none'; matches: ListMatch[] };

/** What the lists decide for each recipient (see the module comment). */
export function recipientFates(entries: readonly FilterListEntry[], rcptTo: readonly string[], who: SenderIdentities): RecipientFate[] {
  const matched = entries.flatMap((entry) => {
    const identity = matchEntry(entry, who);
    return identity ? [{ entry, identity }] : [];
  });
  return rcptTo.map((rcpt) => {
    const own = rcpt.toLowerCase();
    const applies = matched.filter((m) => m.entry.mailbox === null || m.entry.mailbox === own);
    const blocks = applies.filter((m) => m.entry.list === 'block');
    if (blocks.length > 0) return { rcpt, fate: 'block', matches: blocks };
    const allows = applies.filter((m) => m.entry.list === 'allow');
    return allows.length > 0 ? { rcpt, fate: 'allow', matches: allows } : { rcpt, fate: 'none', matches: [] };
  });
}

/** The lists' decision for the whole message (see the module comment). */
export function listDecision(entries: readonly FilterListEntry[], rcptTo: readonly string[], who: SenderIdentities): ListDecision {
  if (entries.length === 0 || rcptTo.length === 0) return { kind: 'none', reason: null };
  const fates = recipientFates(entries, rcptTo, who);
  const first = fates[0]!;
  const unanimous = fates.every((f) => f.fate === first.fate);
  if (unanimous && first.fate === 'block') {
    return { kind: 'block', matches: first.matches, reason: `policy: blocked by ${describeMatch(first.matches[0]!)}` };
  }
  if (unanimous && first.fate === 'allow') {
    const byIp = fates.every((f) => f.matches.some((m) => m.entry.kind === 'ip'));
    return { kind: 'allow', byIp, matches: first.matches, reason: `policy: allowed by ${describeMatch(first.matches[0]!)}` };
  }
  if (fates.every((f) => f.fate === 'none')) return { kind: 'none', reason: null };
  const listed = fates.map((f) => `${f.rcpt} ${f.fate === 'none' ? 'unlisted' : `${f.fate}ed`}`);
  return { kind: 'none', reason: `policy: lists not applied, the recipients' lists disagree (${listed.join(', ')})` };
}
