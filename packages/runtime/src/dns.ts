import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';

/**
 * The one DNS resolver every service uses (SPF/DKIM/DMARC, reverse lookups, MX). Configurable so
 * that tests and benchmarks never query the machine's resolver:
 * - `system`: node's resolver, optionally against the given servers;
 * - `static`: answers only from a JSON file of records; everything else is NXDOMAIN.
 * The signature matches mailauth's `resolver` option: (name, rrtype) → records.
 */
export type DnsResolve = (name: string, rrtype: string) => Promise<unknown[]>;

export type StaticZone = Record<string, Record<string, unknown[]>>;

export function nxdomain(name: string): Error {
  // Most lookups of a mail check end in NXDOMAIN (no DKIM key, no DMARC record…): capturing a
  // stack trace for each measured as the filter's largest single cost, and nobody reads it.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(`queryA ENOTFOUND ${name}`) as Error & { code: string; hostname: string };
  Error.stackTraceLimit = limit;
  err.code = 'ENOTFOUND';
  err.hostname = name;
  return err;
}

export function staticResolver(zone: StaticZone): DnsResolve {
  const lower: StaticZone = {};
  for (const [name, rrs] of Object.entries(zone)) lower[name.toLowerCase().replace(/\.$/, '')] = rrs;
  return async (name, rrtype) => {
    const records = lower[name.toLowerCase().replace(/\.$/, '')]?.[rrtype.toUpperCase()];
    if (!records || records.length === 0) {
      const err = nxdomain(name);
      throw err;
    }
    return records;
  };
}

export function createResolver(opts: { mode: 'system' | 'static'; servers: string[]; staticFile: string | undefined; timeoutMs: number }): DnsResolve {
  if (opts.mode === 'static') {
    const zone: StaticZone = opts.staticFile ? (JSON.parse(readFileSync(opts.staticFile, 'utf8')) as StaticZone) : {};
    return staticResolver(zone);
  }
  const resolver = new dnsPromises.Resolver({ timeout: opts.timeoutMs, tries: 2 });
  if (opts.servers.length > 0) resolver.setServers(opts.servers);
  return async (name, rrtype) => {
    if (rrtype === 'PTR') return resolver.reverse(name);
    return (await resolver.resolve(name, rrtype as 'A')) as unknown[];
  };
}
