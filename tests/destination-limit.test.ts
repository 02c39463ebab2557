import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import * as sender from '@moat/sender';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, silentLog, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: the connection limit per destination holds for all senders together. Two senders
// of one pool (two source addresses) deliver to one slow customer server; without the shared
// limit each would open up to the limit, so the server would see twice as many connections.

const LIMIT = 3;
const MESSAGES = 60;
let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let second: sender.RunningSender | null = null;
const customer = new CustomerServer({ dataDelayMs: 80 });
const uniq = () => randomBytes(4).toString('hex');

beforeAll(async () => {
  t = await createTestEnv({
    MOAT_RETRY_BASE_MS: '300',
    MOAT_RETRY_MAX_MS: '1000',
    MOAT_SCHEDULER_INTERVAL_MS: '100',
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_MAX_CONNECTIONS_PER_DESTINATION: String(LIMIT),
  });
  stack = await startStack(t.env, { sender: { MOAT_SOURCE_IP: '127.0.3.1', MOAT_EHLO_NAME: 'one.moat.test' } });
  second = await sender.start(loadConfig(sender.configSchema, { ...t.env, MOAT_SOURCE_IP: '127.0.3.2', MOAT_EHLO_NAME: 'two.moat.test' }), silentLog);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  await customer.start();
}, 120_000);

afterAll(async () => {
  await second?.stop().catch(() => {});
  await stack?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('connection limit per destination, shared by all senders', () => {
  it(`when two senders deliver ${MESSAGES} messages to one slow server, then it never sees more than ${LIMIT} connections at once and gets every message once`, async () => {
    const domain = `limit${uniq()}.example`;
    await api.provision('Limit', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]);
    const rcpts = Array.from({ length: MESSAGES }, (_, i) => `user${i}-${uniq()}@${domain}`);
    // Sent 10 at a time, so both senders hold many requests for the destination at once.
    for (let i = 0; i < rcpts.length; i += 10) {
      await Promise.all(
        rcpts.slice(i, i + 10).map(async (rcpt) => {
          const from = `s${uniq()}@outside.example`;
          const res = await sendSmtp({ port: stack.smtpPort, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt], subject: `limit ${rcpt}` }) });
          expect(res.code).toBe(250);
        }),
      );
    }
    await eventually(() => rcpts.every((r) => customer.transactions.some((tx) => tx.rcptTo.includes(r))), 60_000, 200);
    // Let retries that might still be on their way arrive before counting copies.
    await new Promise((r) => setTimeout(r, 1_500));
    for (const r of rcpts) expect(customer.transactions.filter((tx) => tx.rcptTo.includes(r))).toHaveLength(1);
    expect(customer.peakConnections).toBeLessThanOrEqual(LIMIT);
    // Both senders delivered: the limit was shared, not met by one sender doing all the work.
    const sources = new Set(customer.transactions.map((tx) => tx.remoteAddress.replace(/^::ffff:/, '')));
    expect(sources).toEqual(new Set(['127.0.3.1', '127.0.3.2']));
  });
});
