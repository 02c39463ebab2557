import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { staticResolver } from '@moat/runtime';
import { Dnsbl, dnsblQueryName, isListingAnswer, parseDnsblZones } from './dnsbl.js';

const log = pino({ level: 'silent' });

describe('parseDnsblZones', () => {
  it('when zones carry result codes, then each code joins the zone before it', () => {
    expect(parseDnsblZones('zen.example=127.0.0.2,127.0.0.3, bl.Other.example. ,x.example=127.0.0.10')).toEqual([
      { zone: 'zen.example', codes: ['127.0.0.2', '127.0.0.3'] },
      { zone: 'bl.other.example', codes: [] },
      { zone: 'x.example', codes: ['127.0.0.10'] },
    ]);
    expect(parseDnsblZones('')).toEqual([]);
  });

  it('when a code has no zone, a zone is no DNS name or a code is no address, then it says which', () => {
    expect(() => parseDnsblZones('bl.example,127.0.0.2')).toThrow(/127\.0\.0\.2: a result code must follow/);
    expect(() => parseDnsblZones('bad_zone')).toThrow(/not a DNS zone name/);
    expect(() => parseDnsblZones('bl.example=listed')).toThrow(/must be an IPv4 address/);
    expect(() => parseDnsblZones('bl.example,BL.example')).toThrow(/listed twice/);
  });
});

describe('dnsblQueryName', () => {
  it('when the client is IPv4 (or IPv4-mapped), then its octets are reversed (RFC 5782 §2.1)', () => {
    expect(dnsblQueryName('192.0.2.99', 'bl.example')).toBe('99.2.0.192.bl.example');
    expect(dnsblQueryName('::ffff:192.0.2.99', 'bl.example')).toBe('99.2.0.192.bl.example');
  });

  it('when the client is IPv6, then its 32 nibbles are reversed (RFC 5782 §2.4)', () => {
    expect(dnsblQueryName('2001:db8:1:2::ab', 'bl.example')).toBe('b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example');
  });

  it('when the client is not an address, then there is nothing to query', () => {
    expect(dnsblQueryName('unknown', 'bl.example')).toBeNull();
  });
});

describe('isListingAnswer', () => {
  it('when no codes are configured, then 127.0.0.0/8 lists but the refusal range 127.255.255.0/24 does not', () => {
    expect(isListingAnswer('127.0.0.2', [])).toBe(true);
    expect(isListingAnswer('127.255.255.254', [])).toBe(false);
    expect(isListingAnswer('10.0.0.1', [])).toBe(false);
  });

  it('when codes are configured, then only those list', () => {
    expect(isListingAnswer('127.0.0.4', ['127.0.0.2', '127.0.0.3'])).toBe(false);
    expect(isListingAnswer('127.0.0.3', ['127.0.0.2', '127.0.0.3'])).toBe(true);
  });
});

describe('Dnsbl', () => {
  const zone = {
    '9.2.0.192.first.example': { A: ['127.0.0.4'] },
    '9.2.0.192.second.example': { A: ['127.0.0.2'] },
    '7.2.0.192.first.example': { A: 'SERVFAIL' as const },
    '8.2.0.192.first.example': { A: 'TIMEOUT' as const },
  };
  const zones = parseDnsblZones('first.example=127.0.0.2,second.example');

  it('when a zone lists the client with an answer it counts, then the client is listed there', async () => {
    const dnsbl = new Dnsbl(zones, staticResolver(zone), { timeoutMs: 500, cacheMs: 60_000 }, log);
    expect(await dnsbl.check('192.0.2.9')).toEqual({ result: 'listed', zone: 'second.example', answer: '127.0.0.2' });
  });

  it('when no zone has the client, then it is clean, and the answer is cached', async () => {
    const asked: string[] = [];
    const resolve = staticResolver(zone);
    const dnsbl = new Dnsbl(zones, async (n, t) => (asked.push(n), resolve(n, t)), { timeoutMs: 500, cacheMs: 60_000 }, log);
    expect(await dnsbl.check('192.0.2.1')).toEqual({ result: 'clean' });
    expect(await dnsbl.check('192.0.2.1')).toEqual({ result: 'clean' });
    expect(asked).toEqual(['1.2.0.192.first.example', '1.2.0.192.second.example']);
  });

  it('when a zone fails or does not answer in time, then the client is not listed there, and the error is not cached', async () => {
    const asked: string[] = [];
    const resolve = staticResolver(zone);
    const slow = async (n: string, t: string) => {
      asked.push(n);
      if (n === '8.2.0.192.first.example') return new Promise<unknown[]>(() => {});
      return resolve(n, t);
    };
    const dnsbl = new Dnsbl(zones, slow, { timeoutMs: 50, cacheMs: 60_000 }, log);
    expect(await dnsbl.check('192.0.2.7')).toEqual({ result: 'error', zones: ['first.example'] });
    expect(await dnsbl.check('192.0.2.8')).toEqual({ result: 'error', zones: ['first.example'] });
    await dnsbl.check('192.0.2.8');
    expect(asked.filter((n) => n.startsWith('8.2.0.192.first'))).toHaveLength(2);
  });

  it('when no zones are configured, then nothing is asked', async () => {
    const dnsbl = new Dnsbl([], async () => {
      throw new Error('asked');
    }, { timeoutMs: 50, cacheMs: 0 }, log);
    expect(dnsbl.enabled).toBe(false);
    expect(await dnsbl.check('192.0.2.9')).toEqual({ result: 'skip' });
  });
});
