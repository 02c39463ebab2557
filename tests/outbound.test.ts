import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { dkimVerify, type DNSResolver } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, createTestEnv, eventually, makeMessage, sendSmtp, StaticDnsZone, type TestEnv, type Transaction } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// End to end: the outbound relay. A customer's server (played by the SMTP client here) sends
// through Moat's submission port (STARTTLS + AUTH) or, from a registered address, through the MX
// port; Moat finds the recipient domain's MX in its static DNS zone (→ 127.0.0.1, MOAT_MX_PORT →
// the "internet" server below) and delivers there. Another real server plays the tenant's own
// server for its protected domain.

let t: TestEnv;
let stack: Stack;
let api: ApiClient;
/** The remote internet server every MX lookup of the zone leads to. */
const internet = new CustomerServer();
/** The tenant's own server (inbound routes of its protected domain). */
const acmeServer = new CustomerServer();
const dns = new StaticDnsZone({
  'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
  'mx.remote.example': { A: ['127.0.0.1'] },
});
const uniq = () => randomBytes(4).toString('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const messageIdOf = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)![1]!;

/** A registered server's address and a stranger's (all of 127.0.0.0/8 is local on Linux). */
const registeredIp = '127.0.0.61';
const strangerIp = '127.0.0.62';

let acme: { tenantId: string; domain: string; username: string; password: string };

/** Splits what the remote server received into the header lines Moat prepended and the rest. */
function splitPrepended(data: Buffer): { prepended: string[]; rest: Buffer } {
  const prepended: string[] = [];
  let offset = 0;
  const moatHeader = /^(Received|Authentication-Results|DKIM-Signature|X-Moat-[A-Za-z-]+):/i;
  for (;;) {
    const end = data.indexOf('\r\n', offset);
    if (end < 0) break;
    const line = data.subarray(offset, end).toString('latin1');
    const isContinuation = /^[ \t]/.test(line) && prepended.length > 0;
    if (!moatHeader.test(line) && !isContinuation) break;
    if (isContinuation) prepended[prepended.length - 1] += `\r\n${line}`;
    else prepended.push(line);
    offset = end + 2;
  }
  return { prepended, rest: data.subarray(offset) };
}

/** The tenant's DKIM key's TXT record, as the receiving side's DNS publishes it. */
let dkimRecord: { name: string; strings: string[] };
const receiverDns = (async (name: string, type: string) => {
  if (type === 'TXT' && dkimRecord && name === dkimRecord.name) return [dkimRecord.strings];
  throw Object.assign(new Error(`${name} ${type} not found`), { code: 'ENOTFOUND' });
}) as DNSResolver;

/**
 * What an outbound message must look like on arrival, besides its body: DKIM-signed by the
 * tenant's active key for its domain, and the signature verifies at the receiving side (mailauth)
 * over exactly what arrived.
 */
async function expectOutboundSigning(prepended: string[], data: Buffer): Promise<void> {
  expect(prepended.filter((h) => /^DKIM-Signature:/i.test(h))).toHaveLength(1);
  const verified = await dkimVerify(data, { resolver: receiverDns });
  expect(verified.results).toHaveLength(1);
  expect(verified.results[0]!.status.result).toBe('pass');
  expect(verified.results[0]!.signingDomain).toBe(acme.domain);
}

async function waitFor(rcpt: string): Promise<Transaction> {
  return eventually(() => internet.transactions.find((tx) => tx.rcptTo.includes(rcpt)), 20_000);
}

/** Tracking shows every recipient of the message delivered. */
async function trackedDelivered(messageId: string): Promise<{ direction: string; recipients: Array<{ rcpt: string; status: string }> }> {
  return eventually(async () => {
    const m = (await api.request('GET', `/api/v1/messages/${messageId}`)).body;
    return m?.recipients?.length > 0 && m.recipients.every((r: { status: string }) => r.status === 'delivered') ? m : null;
  }, 20_000);
}

/** A line-level dialog for exact replies where a client library would hide them. */
async function dialog(port: number, localAddress?: string): Promise<{ say(line: string): Promise<string>; close(): void; greeting: string }> {
  const socket = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  let buffer = '';
  let waiting: (() => void) | null = null;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    waiting?.();
  });
  const reply = async (): Promise<string> => {
    for (;;) {
      const m = /(?:^|\r\n)\d{3} [^\r\n]*\r\n/.exec(buffer);
      if (m) {
        const text = buffer.slice(0, m.index + m[0].length).trim();
        buffer = buffer.slice(m.index + m[0].length);
        return text;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply; buffer: ${JSON.stringify(buffer)}`)), 10_000);
        waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const greeting = await reply();
  return {
    greeting,
    async say(line: string) {
      socket.write(`${line}\r\n`);
      return reply();
    },
    close: () => socket.destroy(),
  };
}

beforeAll(async () => {
  await internet.start();
  await acmeServer.start();
  t = await createTestEnv({
    MOAT_DNS_STATIC_FILE: dns.path,
    MOAT_MX_PORT: String(internet.port),
    MOAT_DOMAIN_CACHE_MS: '0',
    MOAT_ROUTE_CACHE_MS: '0',
    MOAT_OUTBOUND_RATE_WINDOW_MS: '3000',
    MOAT_SMTP_AUTH_MAX_FAILURES: '3',
    MOAT_SMTP_AUTH_FAILURE_WINDOW_MS: '60000',
  });
  stack = await startStack(t.env);
  api = new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!);
  const domain = `acme${uniq()}.example`;
  const { tenantId, domainIds } = await api.provision('Acme', [{ name: domain, routes: [{ host: '127.0.0.1', port: acmeServer.port, priority: 10 }] }]);
  // The tenant's DKIM key, active at once; its TXT record goes to the receiver's DNS.
  const key = await api.request('POST', `/api/v1/domains/${domainIds[0]}/dkim-keys`, { selector: 'moat1', activate: true });
  expect(key.status).toBe(201);
  dkimRecord = key.body.dnsRecord;
  const cred = await api.request('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`, { username: `relay@${domain}` });
  expect(cred.status).toBe(201);
  acme = { tenantId, domain, username: cred.body.username, password: cred.body.password };
  expect((await api.request('POST', `/api/v1/tenants/${tenantId}/outbound-ips`, { cidr: registeredIp, description: 'the Exchange server' })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await internet.stop().catch(() => {});
  await acmeServer.stop().catch(() => {});
  await t?.cleanup();
  dns.remove();
}, 60_000);

describe('outbound relay: submission port', () => {
  it('when a client authenticates after STARTTLS and sends as its tenant, then the message reaches the MX of the recipient domain with the body intact, and tracking shows it delivered as outbound', async () => {
    const from = `alice@${acme.domain}`;
    const rcpt = `bob${uniq()}@remote.example`;
    const raw = makeMessage({ from, to: [rcpt], subject: `outbound ${uniq()}`, body: `Quarterly figures ${uniq()}` });
    const res = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', auth: { user: acme.username, pass: acme.password }, from, to: [rcpt], raw });
    expect(res.code).toBe(250);
    const tx = await waitFor(rcpt);
    expect(tx.mailFrom).toBe(from);
    expect(tx.rcptTo).toEqual([rcpt]);
    const { prepended, rest } = splitPrepended(tx.data);
    expect(sha256(rest)).toBe(sha256(raw));
    // RFC 3848: authenticated under TLS.
    expect(prepended.find((h) => h.startsWith('Received: from client.test'))).toMatch(/with ESMTPSA id/);
    // Sender authentication results are for inbound mail; none leave with the tenant's own mail.
    expect(prepended.filter((h) => h.startsWith('Authentication-Results:'))).toEqual([]);
    await expectOutboundSigning(prepended, tx.data);
    const tracked = await trackedDelivered(messageIdOf(res.response));
    expect(tracked.direction).toBe('outbound');
    expect(tracked.recipients).toEqual([expect.objectContaining({ rcpt, status: 'delivered' })]);
  });

  it('when a client uses AUTH LOGIN on the implicit-TLS port, then it relays too', async () => {
    const from = `carol@${acme.domain}`;
    const rcpt = `dave${uniq()}@remote.example`;
    const res = await sendSmtp({ port: stack.submissionsPort, tls: 'implicit', auth: { user: acme.username, pass: acme.password, method: 'LOGIN' }, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt] }) });
    expect(res.code).toBe(250);
    expect((await waitFor(rcpt)).mailFrom).toBe(from);
  });

  it('when an outbound message also goes to the tenant’s own domain, then that recipient goes to the tenant’s server and the other to the MX', async () => {
    const from = `erin@${acme.domain}`;
    const inside = `frank${uniq()}@${acme.domain}`;
    const outside = `grace${uniq()}@remote.example`;
    const res = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', auth: { user: acme.username, pass: acme.password }, from, to: [inside, outside], raw: makeMessage({ from, to: [inside, outside] }) });
    expect(res.code).toBe(250);
    expect((await waitFor(outside)).rcptTo).toEqual([outside]);
    const own = await eventually(() => acmeServer.transactions.find((tx) => tx.rcptTo.includes(inside)), 20_000);
    expect(own.rcptTo).toEqual([inside]);
  });

  it('when a client tries AUTH before STARTTLS, then EHLO does not offer it and it is refused with 530 5.7.0; after STARTTLS it is offered', async () => {
    const d = await dialog(stack.submissionPort);
    try {
      expect(d.greeting).toMatch(/^220 /);
      const ehlo = await d.say('EHLO client.test');
      expect(ehlo).toContain('STARTTLS');
      expect(ehlo).not.toMatch(/AUTH/);
      const plain = Buffer.from(`\0${acme.username}\0${acme.password}`).toString('base64');
      expect(await d.say(`AUTH PLAIN ${plain}`)).toBe('530 5.7.0 Must issue a STARTTLS command first');
      expect(await d.say(`MAIL FROM:<alice@${acme.domain}>`)).toBe('530 5.7.0 Must issue a STARTTLS command first');
    } finally {
      d.close();
    }
    // The library client, which would send AUTH anyway, gets the same answer.
    const res = await sendSmtp({ port: stack.submissionPort, auth: { user: acme.username, pass: acme.password }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: makeMessage({ from: `alice@${acme.domain}`, to: ['x@remote.example'] }) });
    expect(res.code).toBe(530);
  });

  it('when the password is wrong, then 535 5.7.8; and after the per-address failure limit, AUTH is cut off with 421 4.7.0 even with the right password', async () => {
    const wrong = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.71', auth: { user: acme.username, pass: `${acme.password}x` }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: 'x' });
    expect(wrong.code).toBe(535);
    expect(wrong.response).toMatch(/^535 5\.7\.8 /);
    const unknownUser = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.71', auth: { user: 'nobody-at-all', pass: acme.password }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: 'x' });
    expect(unknownUser.response).toMatch(/^535 5\.7\.8 /);
    await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.71', auth: { user: acme.username, pass: 'guess' }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: 'x' });
    // Three failures (MOAT_SMTP_AUTH_MAX_FAILURES=3): this address is cut off, the right password included.
    const blocked = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.71', auth: { user: acme.username, pass: acme.password }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: 'x' });
    expect(blocked.response).toMatch(/^421 4\.7\.0 Too many authentication failures/);
    // Another address is not affected.
    const other = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.72', auth: { user: acme.username, pass: acme.password }, from: `alice@${acme.domain}`, to: [`ok${uniq()}@remote.example`], raw: makeMessage({ from: `alice@${acme.domain}`, to: ['x@remote.example'] }) });
    expect(other.code).toBe(250);
  });

  it('when an authenticated client sends with a foreign envelope sender, then MAIL FROM gets 550 5.7.1 saying so', async () => {
    const res = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', auth: { user: acme.username, pass: acme.password }, from: 'ceo@bank.example', to: ['x@remote.example'], raw: makeMessage({ from: 'ceo@bank.example', to: ['x@remote.example'] }) });
    expect(res.code).toBe(550);
    expect(res.response).toBe('550 5.7.1 Sender address <ceo@bank.example> is not in a domain of your organisation');
    expect(res.stage).toBe('MAIL FROM');
  });

  it('when a revoked credential is used, then 535 5.7.8', async () => {
    const cred = await api.request('POST', `/api/v1/tenants/${acme.tenantId}/smtp-credentials`);
    expect((await api.request('DELETE', `/api/v1/tenants/${acme.tenantId}/smtp-credentials/${cred.body.id}`)).status).toBe(200);
    const res = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: '127.0.0.73', auth: { user: cred.body.username, pass: cred.body.password }, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: 'x' });
    expect(res.response).toMatch(/^535 5\.7\.8 /);
  });
});

describe('outbound relay: registered addresses', () => {
  it('when a registered server sends as its tenant on the MX port without AUTH, then the message is relayed to the internet', async () => {
    const from = `noreply@${acme.domain}`;
    const rcpt = `henry${uniq()}@remote.example`;
    const raw = makeMessage({ from, to: [rcpt], subject: `from the registered server ${uniq()}` });
    const res = await sendSmtp({ port: stack.smtpPort, localAddress: registeredIp, from, to: [rcpt], raw });
    expect(res.code).toBe(250);
    const tx = await waitFor(rcpt);
    expect(sha256(splitPrepended(tx.data).rest)).toBe(sha256(raw));
    expect((await trackedDelivered(messageIdOf(res.response))).direction).toBe('outbound');
  });

  it('when an unregistered client tries to relay on the MX port, then 550 5.7.1 as before, also with the tenant’s sender; mail to the protected domain is still accepted', async () => {
    const from = `alice@${acme.domain}`;
    const relay = await sendSmtp({ port: stack.smtpPort, localAddress: strangerIp, from, to: [`ivan${uniq()}@remote.example`], raw: makeMessage({ from, to: ['x@remote.example'] }) });
    expect(relay.code).toBe(550);
    expect(relay.response).toBe('550 5.7.1 Relaying denied');
    const inbound = await sendSmtp({ port: stack.smtpPort, localAddress: strangerIp, from: 'someone@outside.example', to: [`judy@${acme.domain}`], raw: makeMessage({ from: 'someone@outside.example', to: [`judy@${acme.domain}`] }) });
    expect(inbound.code).toBe(250);
  });

  it('when a registered server relays for a foreign sender, then 550 5.7.1 says the sender is the reason', async () => {
    const res = await sendSmtp({ port: stack.smtpPort, localAddress: registeredIp, from: 'someone@elsewhere.example', to: ['x@remote.example'], raw: makeMessage({ from: 'someone@elsewhere.example', to: ['x@remote.example'] }) });
    expect(res.code).toBe(550);
    expect(res.response).toMatch(/^550 5\.7\.1 Relaying denied: the sender is not in a domain of the organisation/);
  });

  it('when an unregistered, unauthenticated client uses the submission port, then MAIL FROM gets 530 5.7.0 Authentication required', async () => {
    const res = await sendSmtp({ port: stack.submissionPort, tls: 'starttls', localAddress: strangerIp, from: `alice@${acme.domain}`, to: ['x@remote.example'], raw: makeMessage({ from: `alice@${acme.domain}`, to: ['x@remote.example'] }) });
    expect(res.response).toBe('530 5.7.0 Authentication required');
  });
});

describe('outbound relay: rate limit', () => {
  it('when a tenant exceeds its messages per window, then MAIL FROM gets 451 4.7.1, and after the window the same message is accepted and delivered', async () => {
    const domain = `limited${uniq()}.example`;
    const { tenantId } = await api.provision('Limited', [{ name: domain, routes: [{ host: '127.0.0.1', port: acmeServer.port, priority: 10 }] }]);
    expect((await api.request('PATCH', `/api/v1/tenants/${tenantId}/outbound-policy`, { messagesPerMinute: 2 })).status).toBe(200);
    const cred = (await api.request('POST', `/api/v1/tenants/${tenantId}/smtp-credentials`)).body;
    const from = `news@${domain}`;
    const send = (rcpt: string) => sendSmtp({ port: stack.submissionPort, tls: 'starttls', auth: { user: cred.username, pass: cred.password }, from, to: [rcpt], raw: makeMessage({ from, to: [rcpt] }) });
    // Aligned with the start of a fixed window so the two accepted messages and the refused one share it.
    const rcpts = [1, 2, 3].map((i) => `r${i}-${uniq()}@remote.example`);
    let results = await Promise.all(rcpts.slice(0, 2).map(send));
    let third = await send(rcpts[2]!);
    if (results.some((r) => r.code !== 250) || third.code === 250) {
      // The first two straddled a window boundary: wait one window and try again in a fresh one.
      await new Promise((r) => setTimeout(r, 3_100));
      results = await Promise.all(rcpts.slice(0, 2).map(send));
      third = await send(rcpts[2]!);
    }
    expect(results.map((r) => r.code)).toEqual([250, 250]);
    expect(third.code).toBe(451);
    expect(third.response).toMatch(/^451 4\.7\.1 Outbound rate limit of 2 messages per minute reached, try again in \d+ seconds$/);
    expect(third.stage).toBe('MAIL FROM');
    // The client keeps the message and retries once the window has passed.
    const retried = await eventually(async () => {
      const r = await send(rcpts[2]!);
      return r.code === 250 ? r : null;
    }, 10_000, 500);
    expect(retried.code).toBe(250);
    await waitFor(rcpts[2]!);
  });
});
