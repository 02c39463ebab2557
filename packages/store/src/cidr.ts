import { isIP } from 'node:net';

/**
 * IP ranges in CIDR notation (RFC 4632 §3.1 for IPv4, RFC 4291 §2.3 for IPv6): parsed, checked
 * and normalised to one spelling, and rendered in the forms customers paste into firewalls and
 * mail servers. Pure functions; addresses are bigints so IPv4 and IPv6 share one arithmetic.
 */
export interface Cidr {
  family: 4 | 6;
  /** The first address of the range (host bits all zero). */
  network: bigint;
  prefix: number;
}

/** One range in the three forms a firewall or an Exchange receive connector accepts. */
export interface RangeForms {
  /** `64.182.140.0/24`, `2001:db8:1::/48` */
  cidr: string;
  /** `64.182.140.0-64.182.140.255` */
  firstLast: string;
  /** `64.182.140.0 / 255.255.255.0`, `2001:db8:1:: / ffff:ffff:ffff::` */
  netmask: string;
}

export class CidrError extends Error {
  override readonly name = 'CidrError';
}

const bits = (family: 4 | 6): number => (family === 4 ? 32 : 128);

function maskOf(family: 4 | 6, prefix: number): bigint {
  const width = BigInt(bits(family));
  const all = (1n << width) - 1n;
  return all ^ ((1n << (width - BigInt(prefix))) - 1n);
}

function parseIpv4(text: string): bigint {
  // isIP has already checked four decimal octets 0–255 without leading zeros.
  return text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function parseIpv6(text: string): bigint {
  // An embedded IPv4 address (RFC 4291 §2.2, form 3) spells the last two groups.
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  const hexOnly = last.includes('.') ? `${text.slice(0, lastColon + 1)}${(parseIpv4(last) >> 16n).toString(16)}:${(parseIpv4(last) & 0xffffn).toString(16)}` : text;
  const groups = (part: string): bigint[] => (part ? part.split(':').map((g) => BigInt(`0x${g}`)) : []);
  const [left = '', right] = hexOnly.split('::');
  const before = groups(left);
  const after = right === undefined ? [] : groups(right);
  // isIP has checked that `::` appears at most once and that the groups add up to eight.
  const all = [...before, ...Array<bigint>(8 - before.length - after.length).fill(0n), ...after];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Dotted quad. */
function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`, the first on a tie. */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => (value >> BigInt(16 * (7 - i))) & 0xffffn);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0n) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

export function formatAddress(family: 4 | 6, value: bigint): string {
  return family === 4 ? formatIpv4(value) : formatIpv6(value);
}

/**
 * Parses `address/prefix`. Rejects what a firewall would read differently from what the writer
 * meant: a missing prefix, a zone index, a prefix with leading zeros or out of range, and host
 * bits set below the prefix (`64.182.140.1/24` is a typo for a network, or for a /32).
 */
export function parseCidr(value: string): Cidr {
  const text = value.trim();
  const slash = text.indexOf('/');
  if (slash < 0) throw new CidrError(`${text} is not in CIDR notation: write address/prefix, e.g. ${text}/${isIP(text) === 6 ? 128 : 32} for one address`);
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (address.includes('%')) throw new CidrError(`${text}: a zone index (%…) has no meaning outside one host`);
  const version = isIP(address);
  if (version === 0) throw new CidrError(`${text}: ${address || '(empty)'} is not an IPv4 or IPv6 address`);
  const family = version as 4 | 6;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > bits(family)) {
    throw new CidrError(`${text}: the prefix length must be a whole number from 0 to ${bits(family)}`);
  }
  const prefix = Number(prefixText);
  const addr = family === 4 ? parseIpv4(address) : parseIpv6(address.toLowerCase());
  const network = addr & maskOf(family, prefix);
  if (network !== addr) {
    throw new CidrError(`${text} has host bits set; did you mean ${formatAddress(family, network)}/${prefix}?`);
  }
  return { family, network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.network)}/${c.prefix}`;
}

/** The one spelling Moat stores: `2001:DB8:0001::/48` → `2001:db8:1::/48`. Throws CidrError. */
export function normalizeCidr(value: string): string {
  return formatCidr(parseCidr(value));
}

export function lastAddress(c: Cidr): bigint {
  return c.network | (maskOf(c.family, c.prefix) ^ ((1n << BigInt(bits(c.family))) - 1n));
}

/** Whether `inner` lies wholly inside `outer` (equal ranges included). */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && (inner.network & maskOf(outer.family, outer.prefix)) === outer.network;
}

/**
 * The first range of the list that contains the address (`127.0.1.7` in `127.0.1.0/24`), or null.
 * Ranges that do not parse are skipped: this answers a question, it does not validate.
 */
export function rangeContaining(address: string, cidrs: readonly string[]): string | null {
  const version = isIP(address);
  if (version === 0) return null;
  let single: Cidr;
  try {
    single = parseCidr(`${address}/${version === 4 ? 32 : 128}`);
  } catch {
    return null; // a zone index (fe80::1%eth0) names no global address
  }
  for (const text of cidrs) {
    let range: Cidr;
    try {
      range = parseCidr(text);
    } catch {
      continue;
    }
    if (containsCidr(range, single)) return text;
  }
  return null;
}

export function rangeForms(c: Cidr): RangeForms {
  const first = formatAddress(c.family, c.network);
  return {
    cidr: `${first}/${c.prefix}`,
    firstLast: `${first}-${formatAddress(c.family, lastAddress(c))}`,
    netmask: `${first} / ${formatAddress(c.family, maskOf(c.family, c.prefix))}`,
  };
}

/** IPv4 before IPv6, then by address, then the wider range first: a stable order for published lists. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.network !== b.network) return a.network < b.network ? -1 : 1;
  return a.prefix - b.prefix;
}

/**
 * The first pair of ranges in the list where one contains the other (duplicates included), as
 * a message naming both; null when the ranges are disjoint. A published list with overlaps
 * makes every firewall rule set longer and hides typos.
 */
export function findOverlap(cidrs: readonly Cidr[]): string | null {
  for (let i = 0; i < cidrs.length; i++) {
    for (let j = i + 1; j < cidrs.length; j++) {
      const a = cidrs[i]!;
      const b = cidrs[j]!;
      if (containsCidr(a, b) || containsCidr(b, a)) {
        return a.prefix === b.prefix ? `${formatCidr(a)} is listed twice` : `${formatCidr(a.prefix > b.prefix ? a : b)} lies inside ${formatCidr(a.prefix > b.prefix ? b : a)}`;
      }
    }
  }
  return null;
}
