import { describe, expect, it } from 'vitest';
import { staticResolver } from '@moat/runtime';
import { lookupClientName } from './client-name.js';

describe('lookupClientName', () => {
  it('when the PTR name resolves back to the client, then that name is used', async () => {
    const resolve = staticResolver({ '192.0.2.25': { PTR: ['Out1.Sender.Example.'] }, 'out1.sender.example': { A: ['192.0.2.25'] } });
    expect(await lookupClientName(resolve, '192.0.2.25', 1_000)).toBe('out1.sender.example');
  });

  it('when the PTR name does not resolve back to the client, then there is no name', async () => {
    const resolve = staticResolver({ '192.0.2.25': { PTR: ['mail.bank.example'] }, 'mail.bank.example': { A: ['198.51.100.1'] } });
    expect(await lookupClientName(resolve, '192.0.2.25', 1_000)).toBeNull();
  });

  it('when the PTR record is not a host name, then it never reaches a header', async () => {
    const resolve = staticResolver({ '192.0.2.25': { PTR: ['bad\r\nX-Injected: yes'] } });
    expect(await lookupClientName(resolve, '192.0.2.25', 1_000)).toBeNull();
  });

  it('when the client is on IPv6, then the AAAA records confirm it in any spelling', async () => {
    const resolve = staticResolver({ '2001:db8::25': { PTR: ['v6.sender.example'] }, 'v6.sender.example': { AAAA: ['2001:DB8:0:0::25'] } });
    expect(await lookupClientName(resolve, '2001:db8::25', 1_000)).toBe('v6.sender.example');
  });

  it('when there is no PTR record, then there is no name', async () => {
    expect(await lookupClientName(staticResolver({}), '192.0.2.25', 1_000)).toBeNull();
  });

  it('when the resolver does not answer, then the lookup gives up after its timeout', async () => {
    const started = Date.now();
    expect(await lookupClientName(() => new Promise(() => {}), '192.0.2.25', 100)).toBeNull();
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
