import { describe, expect, it } from 'vitest';
import { CidrError, compareCidrs, containsCidr, findOverlap, normalizeCidr, parseCidr, rangeContaining, rangeForms } from './cidr.js';

const forms = (value: string) => rangeForms(parseCidr(value));

describe('IPv4 ranges', () => {
  it('when a /24 is given, then it renders as CIDR, first–last and address / netmask', () => {
    expect(forms('64.182.140.0/24')).toEqual({ cidr: '64.182.140.0/24', firstLast: '64.182.140.0-64.182.140.255', netmask: '64.182.140.0 / 255.255.255.0' });
  });

  it('when a /32 is given, then the range is that one address', () => {
    expect(forms('198.51.100.7/32')).toEqual({ cidr: '198.51.100.7/32', firstLast: '198.51.100.7-198.51.100.7', netmask: '198.51.100.7 / 255.255.255.255' });
  });

  it('when a /31 is given, then it holds two addresses (RFC 3021)', () => {
    expect(forms('198.51.100.6/31')).toEqual({ cidr: '198.51.100.6/31', firstLast: '198.51.100.6-198.51.100.7', netmask: '198.51.100.6 / 255.255.255.254' });
  });

  it('when /0 is given, then it spans the whole address space', () => {
    expect(forms('0.0.0.0/0')).toEqual({ cidr: '0.0.0.0/0', firstLast: '0.0.0.0-255.255.255.255', netmask: '0.0.0.0 / 0.0.0.0' });
  });

  it('when a non-octet prefix is given, then the netmask and last address follow the bit boundary', () => {
    expect(forms('10.1.64.0/19')).toEqual({ cidr: '10.1.64.0/19', firstLast: '10.1.64.0-10.1.95.255', netmask: '10.1.64.0 / 255.255.224.0' });
  });

  it('when host bits are set, then the error names the value and suggests the network', () => {
    expect(() => parseCidr('64.182.140.1/24')).toThrow(new CidrError('64.182.140.1/24 has host bits set; did you mean 64.182.140.0/24?'));
    expect(() => parseCidr('0.0.0.1/0')).toThrow('did you mean 0.0.0.0/0?');
  });

  it('when surrounding spaces are given, then they are ignored', () => {
    expect(normalizeCidr(' 192.0.2.0/24 ')).toBe('192.0.2.0/24');
  });
});

describe('IPv6 ranges', () => {
  it('when a /48 is given, then it renders in the three forms with an IPv6 netmask', () => {
    expect(forms('2001:db8:1::/48')).toEqual({
      cidr: '2001:db8:1::/48',
      firstLast: '2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff',
      netmask: '2001:db8:1:: / ffff:ffff:ffff::',
    });
  });

  it('when a /64 is given, then its netmask is ffff:ffff:ffff:ffff::', () => {
    expect(forms('2001:db8:0:a::/64').netmask).toBe('2001:db8:0:a:: / ffff:ffff:ffff:ffff::');
  });

  it('when a /128 is given, then the range is that one address and the mask has no `::`', () => {
    expect(forms('2001:db8::25/128')).toEqual({
      cidr: '2001:db8::25/128',
      firstLast: '2001:db8::25-2001:db8::25',
      netmask: '2001:db8::25 / ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    });
  });

  it('when ::/0 is given, then it spans the whole address space', () => {
    expect(forms('::/0')).toEqual({ cidr: '::/0', firstLast: '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', netmask: ':: / ::' });
  });

  it('when written with upper case, leading zeros or no compression, then it normalises to the RFC 5952 spelling', () => {
    expect(normalizeCidr('2001:0DB8:0001:0000:0000:0000:0000:0000/48')).toBe('2001:db8:1::/48');
    // The longest run of zero groups is the one compressed (RFC 5952 §4.2.3).
    expect(normalizeCidr('2001:db8:0:0:1:0:0:0/80')).toBe('2001:db8:0:0:1::/80');
    // A single zero group is not compressed (RFC 5952 §4.2.2); the first of equal runs is.
    expect(normalizeCidr('2001:db8:0:1:1:1:1:1/128')).toBe('2001:db8:0:1:1:1:1:1/128');
    expect(normalizeCidr('2001:0:0:1:0:0:1:0/128')).toBe('2001::1:0:0:1:0/128');
    expect(normalizeCidr('::1/128')).toBe('::1/128');
    expect(normalizeCidr('fe80::/10')).toBe('fe80::/10');
  });

  it('when an embedded IPv4 address is given, then it is read as the last two groups', () => {
    expect(normalizeCidr('::ffff:192.0.2.0/120')).toBe('::ffff:c000:200/120');
  });

  it('when host bits are set, then the error suggests the network in compressed form', () => {
    expect(() => parseCidr('2001:db8:1::1/48')).toThrow('2001:db8:1::1/48 has host bits set; did you mean 2001:db8:1::/48?');
  });
});

describe('invalid input', () => {
  it.each([
    ['64.182.140.0', 'is not in CIDR notation'],
    ['64.182.140.0/', 'prefix length must be a whole number from 0 to 32'],
    ['64.182.140.0/33', 'from 0 to 32'],
    ['64.182.140.0/024', 'from 0 to 32'],
    ['64.182.140.0/-1', 'from 0 to 32'],
    ['64.182.140.0/24/1', 'from 0 to 32'],
    ['2001:db8::/129', 'from 0 to 128'],
    ['256.1.1.0/24', 'is not an IPv4 or IPv6 address'],
    ['064.182.140.0/24', 'is not an IPv4 or IPv6 address'],
    ['mail.example.com/24', 'is not an IPv4 or IPv6 address'],
    ['2001:db8:::/48', 'is not an IPv4 or IPv6 address'],
    ['/24', '(empty) is not an IPv4 or IPv6 address'],
    ['fe80::%eth0/64', 'zone index'],
    ['', 'is not in CIDR notation'],
  ])('when %j is given, then it is rejected: %s', (value, message) => {
    expect(() => parseCidr(value)).toThrow(CidrError);
    expect(() => parseCidr(value)).toThrow(message);
  });
});

describe('comparing ranges', () => {
  it('when one range lies inside another, then containsCidr says so, across families never', () => {
    expect(containsCidr(parseCidr('10.0.0.0/8'), parseCidr('10.1.0.0/16'))).toBe(true);
    expect(containsCidr(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8'))).toBe(false);
    expect(containsCidr(parseCidr('0.0.0.0/0'), parseCidr('::/128'))).toBe(false);
  });

  it('when a list holds a duplicate or a nested range, then findOverlap names both', () => {
    expect(findOverlap(['192.0.2.0/24', '2001:db8::/32'].map(parseCidr))).toBeNull();
    expect(findOverlap(['192.0.2.0/24', '192.0.2.0/24'].map(parseCidr))).toBe('192.0.2.0/24 is listed twice');
    expect(findOverlap(['192.0.2.128/25', '192.0.2.0/24'].map(parseCidr))).toBe('192.0.2.128/25 lies inside 192.0.2.0/24');
  });

  it('when sorted, then IPv4 comes first, then by address, the wider range first', () => {
    const sorted = ['2001:db8::/32', '192.0.2.128/25', '10.0.0.0/8', '192.0.2.0/24'].map(parseCidr).sort(compareCidrs).map((c) => rangeForms(c).cidr);
    expect(sorted).toEqual(['10.0.0.0/8', '192.0.2.0/24', '192.0.2.128/25', '2001:db8::/32']);
  });

  it('when an address lies in one of the ranges, then rangeContaining names that range, else null', () => {
    expect(rangeContaining('127.0.1.7', ['127.0.2.0/24', '127.0.1.0/24'])).toBe('127.0.1.0/24');
    expect(rangeContaining('127.0.3.1', ['127.0.2.0/24', '127.0.1.0/24'])).toBeNull();
    expect(rangeContaining('2001:DB8:1::25', ['2001:db8:1::/48'])).toBe('2001:db8:1::/48');
    expect(rangeContaining('127.0.1.7', ['::/0'])).toBeNull();
    expect(rangeContaining('not-an-ip', ['0.0.0.0/0'])).toBeNull();
    expect(rangeContaining('127.0.1.7', ['garbage', '127.0.0.0/8'])).toBe('127.0.0.0/8');
  });
});
