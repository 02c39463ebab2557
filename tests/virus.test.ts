import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, createTestEnv, eicar, eicarSignature, eventually, makeMessageWithAttachment, sendSmtp, startClamd, TcpProxy, type TestClamd, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end with a real clamd (Debian's clamav-daemon, with an EICAR signature of its own): a
// message carrying a virus is quarantined — never delivered, never bounced — and when the scanner
// is down, mail waits and is delivered once it is back (the default policy: never unscanned).

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
let clamd: TestClamd;
let clamdProxy: TcpProxy;
const customer = new CustomerServer();
const uniq = () => randomBytes(4).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let domain: string;
let tenantId: string;

function message(from: string, to: string, attachment: { name: string; content: Buffer }): Buffer {
  return makeMessageWithAttachment({ from, to: [to], subject: `documents ${uniq()}`, attachment });
}

const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;
const receivedBy = (rcpt: string) => customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));

beforeAll(async () => {
  await customer.start();
  clamd = await startClamd();
  clamdProxy = new TcpProxy('127.0.0.1', clamd.port);
  await clamdProxy.start();
  t = await createTestEnv({ MOAT_CLAMD_ADDRESS: `127.0.0.1:${clamdProxy.port}`, MOAT_CLAMD_RETRY_MS: '1000', MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0' });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  domain = `v${uniq()}.example`;
  ({ tenantId } = await api.provision('Virus', [{ name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] }]));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await clamdProxy?.stop();
  await clamd?.stop();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('virus scanning (clamd)', () => {
  it('when a message carries EICAR, then it is quarantined as a virus and never reaches the customer; a clean one is delivered', async () => {
    const bad = `bad${uniq()}@${domain}`;
    const good = `good${uniq()}@${domain}`;
    const infected = await sendSmtp({ port: stack.smtpPort, from: 'alice@sender.example', to: [bad], raw: message('alice@sender.example', bad, { name: 'invoice.com', content: eicar }) });
    expect(infected.code).toBe(250);
    const clean = await sendSmtp({ port: stack.smtpPort, from: 'alice@sender.example', to: [good], raw: message('alice@sender.example', good, { name: 'invoice.txt', content: Buffer.from('total: 42 EUR') }) });
    expect(clean.code).toBe(250);

    await eventually(() => expect(receivedBy(good)).toHaveLength(1), 20_000);
    const tracked = await eventually(async () => {
      const res = await api.request('GET', `/api/v1/messages/${messageIdOf(infected.response)}`);
      expect(res.status).toBe(200);
      expect(JSON.stringify(res.body)).toContain('quarantined');
      return res.body;
    }, 20_000);
    expect(JSON.stringify(tracked)).toContain(eicarSignature);
    await sleep(1_000);
    expect(receivedBy(bad)).toHaveLength(0);
    expect(tenantId).toBeTruthy();
  }, 60_000);

  it('when the scanner is down, then mail waits (never delivered unscanned) and is delivered once it is back', async () => {
    clamdProxy.cut();
    const rcpt = `wait${uniq()}@${domain}`;
    const res = await sendSmtp({ port: stack.smtpPort, from: 'alice@sender.example', to: [rcpt], raw: message('alice@sender.example', rcpt, { name: 'notes.txt', content: Buffer.from('minutes of the meeting') }) });
    expect(res.code).toBe(250);
    await sleep(4_000);
    expect(receivedBy(rcpt)).toHaveLength(0);
    clamdProxy.restore();
    await eventually(() => expect(receivedBy(rcpt)).toHaveLength(1), 40_000);
    const delivered = receivedBy(rcpt)[0]!.data.toString('latin1');
    expect(delivered).not.toContain('X-Moat-Virus-Status: unscanned');
    await sleep(1_000);
    expect(receivedBy(rcpt)).toHaveLength(1);
  }, 90_000);
});
