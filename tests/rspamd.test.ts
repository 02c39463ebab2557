import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, createTestEnv, eventually, gtube, gtubeAddHeader, startRspamd, tapEvents, TcpProxy, type EventTap, type TestEnv, type TestRspamd } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';
import { checkNamed, cleanBody, filteredFor, headerOf, sendTo, uniq } from './support/spam-engines.js';

// End to end with a real rspamd (Debian's package, a private offline instance per run): its verdict
// is one more check in message.filtered and its weighted score is part of X-Moat-Spam-Score; GTUBE
// (rspamd: reject) is quarantined; when rspamd is down the scanner-unavailable policy applies:
// `retry` holds the mail until rspamd is back (nothing lost, nothing unscanned), `deliver`
// delivers it tagged rspamd=unavailable.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let rspamd: TestRspamd;
let rspamdProxy: TcpProxy;
let tap: EventTap;
const customer = new CustomerServer();
const filterOverrides: Record<string, string> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;
const weight = 0.35;

const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
const rspamdCheck = (payload: Parameters<typeof checkNamed>[0]) => checkNamed(payload, 'rspamd');

beforeAll(async () => {
  await customer.start();
  rspamd = await startRspamd();
  rspamdProxy = new TcpProxy('127.0.0.1', rspamd.port);
  await rspamdProxy.start();
  t = await createTestEnv({ MOAT_RSPAMD_URL: `http://127.0.0.1:${rspamdProxy.port}`, MOAT_RSPAMD_WEIGHT: String(weight), MOAT_RSPAMD_RETRY_MS: '1000', MOAT_RSPAMD_TIMEOUT_MS: '5000', MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  tap = await tapEvents(t.env, ['message.filtered']);
  stack = await startStack(t.env, { filter: filterOverrides });
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  domain = `r${uniq()}.example`;
  await api.provision('Rspamd', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await tap?.close();
  await rspamdProxy?.stop();
  await rspamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('rspamd', () => {
  it('when a message carries GTUBE, then rspamd rejects it, the rspamd check fails with its action and symbol, and the message is quarantined, never delivered', async () => {
    const rcpt = `gtube${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, `Buy now.\r\n${gtube}`);
    const filtered = await filteredFor(tap, id);
    expect(filtered.verdict).toBe('quarantine');
    expect(rspamdCheck(filtered)).toEqual({ check: 'rspamd', result: 'fail', reason: expect.stringMatching(/^reject: score 15 \(rspamd rejects at 15\); .*GTUBE/) });
    expect(filtered.reasons[0]).toMatch(/^spam: score .* rspamd=15\.00x0\.35\(reject\)\)$/);
    const tracked = await eventually(async () => {
      const res = await api.request('GET', `/api/v1/messages/${id}`);
      expect(JSON.stringify(res.body)).toContain('quarantined');
      return res.body;
    }, 20_000);
    expect(JSON.stringify(tracked)).toContain('rspamd');
    await sleep(1_000);
    expect(receivedBy(rcpt)).toHaveLength(0);
  }, 60_000);

  it('when a clean message passes rspamd, then it is delivered with the combined score in X-Moat-Spam-Score', async () => {
    const rcpt = `clean${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, cleanBody);
    const filtered = await filteredFor(tap, id);
    expect(filtered.verdict).toBe('deliver');
    const check = rspamdCheck(filtered)!;
    expect(check.result).toBe('pass');
    expect(check.reason).toMatch(/^no action: score -?\d/);
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 20_000);
    const data = receivedBy(rcpt)[0]!.data;
    const status = headerOf(data, 'X-Moat-Spam-Status')!;
    // builtin=<ours> … rspamd=<its score>x<weight>(no_action): the header's score is their sum.
    const ours = Number(/ builtin=(-?[\d.]+) /.exec(status)![1]);
    const theirs = Number(/ rspamd=(-?[\d.]+)x0\.35\(no_action\)/.exec(status)![1]);
    // Each part is shown to two decimals and the sum is rounded once: allow that half hundredth.
    expect(Math.abs(Number(headerOf(data, 'X-Moat-Spam-Score')) - (ours + theirs * weight))).toBeLessThan(0.006);
    expect(Number(headerOf(data, 'X-Moat-Spam-Score'))).toBe(filtered.score);
  }, 60_000);

  it('when rspamd has doubts (its add-header test pattern, unknown to the built-in rules), then its score is added to ours', async () => {
    const rcpt = `doubt${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, `${cleanBody}\r\n${gtubeAddHeader}`);
    const filtered = await filteredFor(tap, id);
    expect(rspamdCheck(filtered)).toMatchObject({ result: 'neutral', reason: expect.stringMatching(/^add header: score 6 /) });
    // Delivered or quarantined depending on what the built-in classifier makes of it: its part is in the header or the reason.
    const basis = filtered.verdict === 'deliver' ? headerOf((await eventually(() => receivedBy(rcpt)[0], 20_000)).data, 'X-Moat-Spam-Status')! : (filtered.reasons[0] as string);
    const ours = Number(/builtin=(-?[\d.]+) /.exec(basis)![1]);
    expect(Math.abs(filtered.score - (ours + 6 * weight))).toBeLessThan(0.006);
  }, 60_000);

  it('when rspamd is down and the policy is retry, then the message waits and is delivered, scored by rspamd, once it is back', async () => {
    rspamdProxy.cut();
    const rcpt = `wait${uniq()}@${domain}`;
    const id = await sendTo(stack, rcpt, cleanBody);
    await sleep(5_000);
    expect(receivedBy(rcpt)).toHaveLength(0);
    expect(tap.events.some((e) => e.event.payload.messageId === id)).toBe(false);
    rspamdProxy.restore();
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 45_000);
    const filtered = await filteredFor(tap, id);
    expect(rspamdCheck(filtered)!.result).toBe('pass');
    expect(headerOf(receivedBy(rcpt)[0]!.data, 'X-Moat-Spam-Status')).toMatch(/ rspamd=-?[\d.]+x0\.35\(no_action\)$/);
    await sleep(1_000);
    expect(receivedBy(rcpt)).toHaveLength(1);
  }, 90_000);

  it('when rspamd is down and the policy is deliver, then the message is delivered tagged rspamd=unavailable, with the error check', async () => {
    await stack.stopService('filter');
    filterOverrides.MOAT_FILTER_SCANNER_UNAVAILABLE = 'deliver';
    await stack.startService('filter');
    rspamdProxy.cut();
    try {
      const rcpt = `tagged${uniq()}@${domain}`;
      const id = await sendTo(stack, rcpt, cleanBody);
      await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 30_000);
      expect(headerOf(receivedBy(rcpt)[0]!.data, 'X-Moat-Spam-Status')).toMatch(/ rspamd=unavailable$/);
      const filtered = await filteredFor(tap, id);
      expect(rspamdCheck(filtered)).toMatchObject({ result: 'error', reason: expect.stringContaining('rspamd at 127.0.0.1') });
      expect(filtered.reasons).toContain('rspamd unavailable: scored without it (policy: deliver)');
    } finally {
      rspamdProxy.restore();
    }
  }, 90_000);
});
