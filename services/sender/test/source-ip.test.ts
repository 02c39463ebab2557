import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, eventually } from '@moat/testkit';
import { startHarness, uniq, type Harness } from '../../router/test/harness.js';

// A sender bound to a pool address: every connection leaves from MOAT_SOURCE_IP (on Linux all of
// 127.0.0.0/8 is local, which is how tests emulate a sending subnet).

let h: Harness;
const servers: CustomerServer[] = [];

async function customer(opts: ConstructorParameters<typeof CustomerServer>[0] = {}): Promise<CustomerServer> {
  const s = new CustomerServer(opts);
  await s.start();
  servers.push(s);
  return s;
}

beforeAll(async () => {
  h = await startHarness({ sender: { MOAT_SOURCE_IP: '127.0.1.1' } });
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await Promise.all(servers.map((s) => s.stop().catch(() => {})));
}, 60_000);

describe('source address', () => {
  it('when MOAT_SOURCE_IP is 127.0.1.1, then the customer server sees the connection come from 127.0.1.1 and the result says so', async () => {
    const s = await customer();
    const d = `src${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: s.port, priority: 10 }]);
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
    const result = await eventually(() => h.resultsFor(fed.messageId)[0]);
    expect(s.transactions.map((tx) => tx.remoteAddress)).toEqual(['127.0.1.1']);
    expect(result.sourceIp).toBe('127.0.1.1');
    expect(result.recipients[0]!.outcome).toBe('delivered');
  });

  it('when the first route greets with 554 (it does not accept our address), then the next route is used', async () => {
    const locked = await customer({ allowClient: (ip) => ip !== '127.0.1.1' });
    const open = await customer();
    const d = `lock${uniq()}.example`;
    const tenantId = await h.protect(d, [
      { host: '127.0.0.1', port: locked.port, priority: 10 },
      { host: '127.0.0.1', port: open.port, priority: 20 },
    ]);
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
    const result = await eventually(() => h.resultsFor(fed.messageId)[0]);
    expect(result.remoteHost).toBe(`127.0.0.1:${open.port}`);
    expect(result.recipients[0]!.outcome).toBe('delivered');
    expect(locked.transactions).toHaveLength(0);
    expect(open.transactions).toHaveLength(1);
  });

  it('when every route refuses our address with a 554 greeting, then the recipients are deferred with the reason', async () => {
    const locked = await customer({ allowClient: (ip) => ip !== '127.0.1.1' });
    const d = `alllock${uniq()}.example`;
    const tenantId = await h.protect(d, [{ host: '127.0.0.1', port: locked.port, priority: 10 }]);
    const fed = await h.feed({ tenantId, rcpts: [`u@${d}`] });
    const result = await eventually(() => h.resultsFor(fed.messageId)[0]);
    expect(result.recipients[0]!.outcome).toBe('deferred');
    expect(result.error).toContain('554');
    expect(result.sourceIp).toBe('127.0.1.1');
  });
});
