import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, createTestEnv, eventually, gtube, startSpamd, tapEvents, TcpProxy, type EventTap, type TestEnv, type TestSpamd } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';
import { checkNamed, cleanBody, filteredFor, headerOf, sendTo, uniq } from './support/spam-engines.js';

// End to end with a real spamd (Debian's SpamAssassin, local tests only, a private instance per
// run): its verdict is one more check in message.filtered and its weighted score is part of
// X-Moat-Spam-Score; GTUBE is quarantined; while spamd is down mail waits (policy retry).

let t: TestEnv;
let stack: Stack;
let spamd: TestSpamd;
let spamdProxy: TcpProxy;
let tap: EventTap;
const customer = new CustomerServer();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;
const weight = 0.5;

const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
const spamdCheck = (payload: Parameters<typeof checkNamed>[0]) => checkNamed(payload, 'spamd');

beforeAll(async () => {
  await customer.start();
  spamd = await startSpamd();
  spamdProxy = new TcpProxy('127.0.0.1', spamd.port);
  await spamdProxy.start();
  t = await createTestEnv({ MOAT_SPAMD_ADDRESS: `127.0.0.1:${spamdProxy.port}`, MOAT_SPAMD_WEIGHT: String(weight), MOAT_SPAMD_RETRY_MS: '1000', MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  tap = await tapEvents(t.env, ['message.filtered']);
  stack = await startStack(t.env);
  const api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  domain = `s${uniq()}.example`;
  await api.provision('Spamd', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await tap?.close();
  await spamdProxy?.stop();
  await spamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('spamd', () => {
  it('when a message carries GTUBE, then spamd calls it spam, the spamd check fails naming GTUBE, and the message is quarantined', async () => {
    const rcpt = `gtube${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, `Buy now.\r\n${gtube}`);
    const filtered = await filteredFor(tap, id);
    expect(filtered.verdict).toBe('quarantine');
    expect(spamdCheck(filtered)).toEqual({ check: 'spamd', result: 'fail', reason: expect.stringMatching(/^spam: score \d{3,4}(\.\d+)? \(spamd's threshold 5\); .*GTUBE/) });
    expect(filtered.reasons[0]).toMatch(/ spamd=\d{3,4}\.\d\dx0\.5\(spam\)\)$/);
    await sleep(1_000);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);

  it('when a clean message passes spamd, then it is delivered with the combined score in X-Moat-Spam-Score', async () => {
    const rcpt = `clean${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, cleanBody);
    const filtered = await filteredFor(tap, id);
    expect(spamdCheck(filtered)!.result).toBe('pass');
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 20_000);
    const data = receivedBy(rcpt)[0]!.data;
    const status = headerOf(data, 'X-Moat-Spam-Status')!;
    const ours = Number(/ builtin=(-?[\d.]+) /.exec(status)![1]);
    const theirs = Number(/ spamd=(-?[\d.]+)x0\.5\(ham\)$/.exec(status)![1]);
    // Each part is shown to two decimals and the sum is rounded once: allow that half hundredth.
    expect(Math.abs(Number(headerOf(data, 'X-Moat-Spam-Score')) - (ours + theirs * weight))).toBeLessThan(0.006);
  }, 60_000);

  it('when spamd is down and the policy is retry, then the message waits and is delivered, scored by spamd, once it is back', async () => {
    spamdProxy.cut();
    const rcpt = `wait${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, cleanBody);
    await sleep(5_000);
    expect(receivedBy(rcpt)).toHaveLength(0);
    spamdProxy.restore();
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 45_000);
    expect(spamdCheck(await filteredFor(tap, id))!.result).toBe('pass');
    expect(headerOf(receivedBy(rcpt)[0]!.data, 'X-Moat-Spam-Status')).toMatch(/ spamd=-?[\d.]+x0\.5\(ham\)$/);
  }, 90_000);
});
