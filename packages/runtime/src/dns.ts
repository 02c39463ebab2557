import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';

/**
 * The one DNS resolver every service uses (SPF/DKIM/DMARC, reverse lookups, MX). Configurable so
 * that tests and benchmarks never query the machine's resolver:
 * - `system`: node's resolver, optionally against the given servers;
 * - `static`: answers only from a JSON file of records (format: see StaticZone).
 * The signature matches mailauth's `resolver` option: (name, rrtype) → records.
 * Failures are errors with node's DNS codes, as node's own resolver throws them: `ENOTFOUND`
 * (NXDOMAIN: the name does not exist), `ENODATA` (the name exists, without records of that
 * type), `ESERVFAIL`, `ETIMEOUT`, `EREFUSED`, `ECONNREFUSED` (the answer is unknown for now).
 */
export type DnsResolve = (name: string, rrtype: string) => Promise<unknown[]>;

/**
 * A static zone: name → record type → records, in the shapes node's resolver returns them:
 * `"A": ["127.0.0.1"]`, `"AAAA": ["::1"]`, `"TXT": [["v=spf1 -all"]]`,
 * `"MX": [{ "exchange": "mx1.example.com", "priority": 10 }]` (`"exchange": "."` is a null MX,
 * RFC 7505), `"PTR": ["host.example.com"]`.
 * Instead of records, a type may name the failure its lookup simulates: `"SERVFAIL"`,
 * `"TIMEOUT"`, `"REFUSED"`, `"NXDOMAIN"` or `"NODATA"` (e.g. `"MX": "SERVFAIL"`).
 * A name that is not in the file is NXDOMAIN; a type that a listed name lacks is NODATA.
 */
export type StaticZone = Record<string, Record<string, unknown[] | StaticFailure>>;

/** The failures a static zone can simulate, and the error code node's resolver uses for each. */
export const staticFailures = {
  SERVFAIL: 'ESERVFAIL',
  TIMEOUT: 'ETIMEOUT',
  REFUSED: 'EREFUSED',
  NXDOMAIN: 'ENOTFOUND',
  NODATA: 'ENODATA',
} as const;
export type StaticFailure = keyof typeof staticFailures;

/** A DNS failure shaped like node's (code, hostname), without the cost of a stack trace. */
export function dnsError(code: string, name: string, rrtype = 'A'): Error & { code: string; hostname: string } {
  // Most lookups of a mail check end in NXDOMAIN (no DKIM key, no DMARC record…): capturing a
  // stack trace for each measured as the filter's largest single cost, and nobody reads it.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(`query${rrtype.charAt(0)}${rrtype.slice(1).toLowerCase()} ${code} ${name}`) as Error & { code: string; hostname: string };
  Error.stackTraceLimit = limit;
  err.code = code;
  err.hostname = name;
  return err;
}

export function nxdomain(name: string, rrtype = 'A'): Error {
  return dnsError('ENOTFOUND', name, rrtype);
}

const normalizeName = (name: string) => name.toLowerCase().replace(/\.$/, '');

/** Reads a static zone, refusing a file whose shape would silently answer wrong. */
export function parseStaticZone(json: unknown, source = 'static DNS zone'): StaticZone {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${source}: must be a JSON object of names`);
  for (const [name, types] of Object.entries(json as Record<string, unknown>)) {
    if (types === null || typeof types !== 'object' || Array.isArray(types)) throw new Error(`${source}: "${name}" must map record types to records`);
    for (const [type, value] of Object.entries(types as Record<string, unknown>)) {
      if (Array.isArray(value)) continue;
      if (typeof value === 'string' && value in staticFailures) continue;
      throw new Error(`${source}: "${name}" ${type} must be a list of records or one of ${Object.keys(staticFailures).join(', ')}`);
    }
  }
  return json as StaticZone;
}

export function staticResolver(zone: StaticZone): DnsResolve {
  const lower: StaticZone = {};
  for (const [name, rrs] of Object.entries(zone)) {
    const types: Record<string, unknown[] | StaticFailure> = {};
    for (const [type, value] of Object.entries(rrs)) types[type.toUpperCase()] = value;
    lower[normalizeName(name)] = types;
  }
  return async (name, rrtype) => {
    const type = rrtype.toUpperCase();
    const types = lower[normalizeName(name)];
    // RFC 8020: a name that does not exist has no records of any type (NXDOMAIN); a name that
    // exists answers NODATA for a type it lacks. MX routing tells the two apart (RFC 5321 §5.1:
    // no MX → the implicit MX; no such domain → the recipient fails).
    if (!types) throw nxdomain(name, type);
    const value = types[type];
    if (typeof value === 'string') throw dnsError(staticFailures[value as StaticFailure], name, type);
    if (!value || value.length === 0) throw dnsError('ENODATA', name, type);
    return value;
  };
}

export function createResolver(opts: { mode: 'system' | 'static'; servers: string[]; staticFile: string | undefined; timeoutMs: number }): DnsResolve {
  if (opts.mode === 'static') {
    const zone = opts.staticFile ? parseStaticZone(JSON.parse(readFileSync(opts.staticFile, 'utf8')) as unknown, opts.staticFile) : {};
    return staticResolver(zone);
  }
  const resolver = new dnsPromises.Resolver({ timeout: opts.timeoutMs, tries: 2 });
  if (opts.servers.length > 0) resolver.setServers(opts.servers);
  return async (name, rrtype) => {
    if (rrtype === 'PTR') return resolver.reverse(name);
    return (await resolver.resolve(name, rrtype as 'A')) as unknown[];
  };
}
