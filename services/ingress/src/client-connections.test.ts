import { describe, expect, it } from 'vitest';
import { clientKey, ConnectionsPerClient } from './client-connections.js';

describe('clientKey', () => {
  it('when the address is IPv4 (also IPv4-mapped), then it is the key', () => {
    expect(clientKey('192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
  });

  it('when the address is IPv6, then its /64 is the key, however it is spelled', () => {
    expect(clientKey('2001:db8:1:2:a:b:c:d')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
    expect(clientKey('2001:db8:1:2:3:4:192.0.2.1')).toBe('2001:db8:1:2::/64');
  });

  it('when two IPv6 addresses share a /64, then they share the key; other /64s do not', () => {
    expect(clientKey('2001:db8:1:2::aaaa')).toBe(clientKey('2001:db8:1:2:ffff::1'));
    expect(clientKey('2001:db8:1:3::aaaa')).not.toBe(clientKey('2001:db8:1:2::aaaa'));
  });
});

describe('ConnectionsPerClient', () => {
  it('when a client has the maximum open, then its next connection is refused and others still get in', () => {
    const c = new ConnectionsPerClient(2);
    expect([c.tryOpen('a'), c.tryOpen('a'), c.tryOpen('a')]).toEqual([true, true, false]);
    expect(c.count('a')).toBe(2);
    expect(c.tryOpen('b')).toBe(true);
  });

  it('when a connection closes, then the client may open one again, and a client at zero is forgotten', () => {
    const c = new ConnectionsPerClient(1);
    expect(c.tryOpen('a')).toBe(true);
    expect(c.tryOpen('a')).toBe(false);
    c.close('a');
    expect(c.clients).toBe(0);
    expect(c.tryOpen('a')).toBe(true);
    expect(c.clients).toBe(1);
  });
});
