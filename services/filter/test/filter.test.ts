import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimSign, type DKIMSignOptions } from 'mailauth';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingKeys, type EventOf, type MessageAcceptedPayload, type QueuePolicy } from '@moat/contracts';
import { Broker, loadConfig, type StaticZone } from '@moat/runtime';
import { keyringFromConfig, MessageStore } from '@moat/store';
import { createTestEnv, eventually, makeMessage, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { gtube } from '../src/spam/rules.js';
import { configSchema, filteredEventId, start, type FilterService } from '../src/index.js';

const authservId = 'mx.moat.test';
const tenantId = randomUUID();
const ingressReceived = 'Received: from client.test (client.test [127.0.0.1])\r\n by mx.moat.test with ESMTP id abc123;\r\n Mon, 1 Jan 2024 10:00:00 +0000\r\n';
/** Observes the filter's output the way router and archive do: a queue bound to message.filtered. */
const probe: QueuePolicy = { name: 'probe-filtered', bindings: [routingKeys.messageFiltered], prefetch: 50, deliveryLimit: 5, handlerTimeoutMs: 10_000 };

let t: TestEnv;
let dir: string;
let service: FilterService;
let broker: Broker;
let pool: pg.Pool;
let store: MessageStore;
let dkimPrivateKey: string;
const filtered: Array<EventOf<'message.filtered'>> = [];
const parked: Array<{ id?: string; type?: string }> = [];

beforeAll(async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  dkimPrivateKey = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const zone: StaticZone = {
    // DKIM key (RFC 6376 §3.6.2.1), SPF authorising the loopback client (RFC 7208), DMARC policy (RFC 7489).
    'sel1._domainkey.signed.test': { TXT: [[`v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`]] },
    'signed.test': { TXT: [['v=spf1 ip4:127.0.0.1 -all']] },
    '_dmarc.signed.test': { TXT: [['v=DMARC1; p=reject']] },
  };
  dir = await mkdtemp(join(tmpdir(), 'moat-filter-'));
  const zoneFile = join(dir, 'zone.json');
  await writeFile(zoneFile, JSON.stringify(zone));

  t = await createTestEnv({ MOAT_DNS_STATIC_FILE: zoneFile, MOAT_FILTER_AUTHSERV_ID: authservId });
  const config = loadConfig(configSchema, t.env);
  service = await start(config, silentLog);

  pool = testPool(t);
  store = new MessageStore(pool, keyringFromConfig(config));
  broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.env.MOAT_NAMESPACE!, producer: 'filter-test', log: silentLog });
  await broker.connect();
  await broker.consume(probe, async ({ event }) => {
    if (event.type === 'message.filtered') filtered.push(event);
  });
  await broker.consumeRaw('parking', 10, async (msg) => {
    parked.push(JSON.parse(msg.content.toString('utf8')) as { id?: string; type?: string });
  });
});

afterAll(async () => {
  await service?.stop();
  await broker?.destroyNamespace(['filter', 'archive', 'router', 'tracker', probe.name]);
  await broker?.close();
  await pool?.end();
  await t?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Stores a message as ingress would and returns the message.accepted event for it. */
async function acceptedEvent(raw: Buffer, mailFrom: string, opts: { stored?: boolean } = {}): Promise<EventOf<'message.accepted'>> {
  const messageId = randomUUID();
  const receivedAt = new Date();
  const sha256 = createHash('sha256').update(raw).digest('hex');
  const ref = opts.stored === false ? { messageId, receivedAt: receivedAt.toISOString() } : await store.put({ id: messageId, tenantId, receivedAt, sha256, raw });
  const payload: MessageAcceptedPayload = {
    messageId,
    tenantId,
    direction: 'inbound',
    store: ref,
    mailFrom,
    rcptTo: ['bob@customer.test'],
    client: { ip: '127.0.0.1', helo: 'client.test', ptr: null, tls: null },
    size: raw.length,
    sha256,
    prependHeaders: ingressReceived,
    receivedAt: receivedAt.toISOString(),
  };
  return broker.envelope('message.accepted', payload) as EventOf<'message.accepted'>;
}

function filteredFor(messageId: string): Array<EventOf<'message.filtered'>> {
  return filtered.filter((e) => e.payload.messageId === messageId);
}

describe('filter', () => {
  it('when a message is accepted, then message.filtered follows with verdict deliver, its auth results and headers', async () => {
    const raw = makeMessage({ from: 'carol@unsigned.test', to: ['bob@customer.test'], subject: '=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from Carol', messageId: 'c1@unsigned.test' });
    const accepted = await acceptedEvent(raw, 'carol@unsigned.test');
    await broker.publish(routingKeys.messageAccepted, accepted);

    const [event] = await eventually(() => filteredFor(accepted.payload.messageId).length > 0 && filteredFor(accepted.payload.messageId));
    expect(event!.id).toBe(filteredEventId(accepted.id));
    const p = event!.payload;
    expect(p.verdict).toBe('deliver');
    expect(p.score).toBeLessThan(4);
    expect(p.reasons).toEqual([]);
    expect(p.rcptTo).toEqual(['bob@customer.test']);
    expect(p.authResults.startsWith(`${authservId}; `)).toBe(true);
    expect(p.authResults).toContain('dkim=none');
    expect(p.authResults).toMatch(/spf=none .*smtp\.mailfrom=carol@unsigned\.test/);
    expect(p.checks.map((c) => c.check)).toEqual(['dkim', 'spf', 'arc', 'dmarc', 'virus', 'mime', 'spam']);
    expect(p.checks[6]).toMatchObject({ check: 'spam', result: 'pass' });
    expect(p.headers).toEqual({ from: '<carol@unsigned.test>', to: '<bob@customer.test>', subject: 'Grüße from Carol', date: expect.any(String), messageIdHeader: '<c1@unsigned.test>' });
    // Ingress's Received stays first and byte for byte; our fields follow, folded, CRLF-terminated.
    expect(p.prependHeaders.startsWith(ingressReceived)).toBe(true);
    expect(p.prependHeaders.slice(ingressReceived.length)).toMatch(
      /^Authentication-Results: mx\.moat\.test;[^]*\r\nX-Moat-Verdict: deliver\r\nX-Moat-Spam-Score: \d+\.\d\d\r\nX-Moat-Spam-Status: ham score=\d+\.\d\d quarantine=5\.3 unsure=4 bayes=0\.\d{3}(?:\r\n)? logit=-?\d+\.\d\d(?:\r\n)? clues=\d+\r\n$/,
    );
    for (const line of p.prependHeaders.slice(0, -2).split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
  });

  it('when the message is DKIM-signed and its sender authorises the client, then dkim, spf and dmarc pass', async () => {
    const message = makeMessage({ from: 'alice@signed.test', to: ['bob@customer.test'], subject: 'signed mail' });
    // mailauth 4.13's bundled types declare top-level signing fields; its signer reads only `signatureData`.
    const signature = await dkimSign(message, { signatureData: [{ signingDomain: 'signed.test', selector: 'sel1', privateKey: dkimPrivateKey }] } as unknown as DKIMSignOptions);
    expect(signature.errors).toEqual([]);
    const raw = Buffer.concat([Buffer.from(signature.signatures), message]);
    const accepted = await acceptedEvent(raw, 'alice@signed.test');
    await broker.publish(routingKeys.messageAccepted, accepted);

    const [event] = await eventually(() => filteredFor(accepted.payload.messageId).length > 0 && filteredFor(accepted.payload.messageId));
    const p = event!.payload;
    expect(p.authResults).toContain('dkim=pass header.i=@signed.test header.s=sel1');
    expect(p.authResults).toMatch(/spf=pass \(mx\.moat\.test: domain of alice@signed\.test designates 127\.0\.0\.1 as permitted sender\)/);
    expect(p.authResults).toContain('dmarc=pass');
    expect(Object.fromEntries(p.checks.map((c) => [c.check, c.result]))).toEqual({ dkim: 'pass', spf: 'pass', arc: 'none', dmarc: 'pass', virus: 'skip', mime: 'pass', spam: 'pass' });
  });

  it('when a message carries GTUBE, then the verdict is quarantine with the spam check failed, the score and the reason', async () => {
    const raw = makeMessage({ from: 'spammer@unsigned.test', to: ['bob@customer.test'], subject: 'GTUBE test', body: `This is the GTUBE, the\r\n${gtube}\r\n` });
    expect(raw.includes(gtube)).toBe(true);
    const accepted = await acceptedEvent(raw, 'spammer@unsigned.test');
    await broker.publish(routingKeys.messageAccepted, accepted);

    const [event] = await eventually(() => filteredFor(accepted.payload.messageId).length > 0 && filteredFor(accepted.payload.messageId));
    const p = event!.payload;
    expect(p.verdict).toBe('quarantine');
    expect(p.score).toBeGreaterThanOrEqual(1000);
    expect(p.checks.find((c) => c.check === 'spam')).toMatchObject({ result: 'fail', reason: expect.stringMatching(/^spam: score \d+(\.\d+)? .*GTUBE\(\+1000\)/) });
    expect(p.reasons).toEqual([expect.stringMatching(/^spam: score \d+.*GTUBE\(\+1000\)/)]);
    expect(p.prependHeaders).toMatch(/\r\nX-Moat-Verdict: quarantine\r\nX-Moat-Spam-Score: 10\d\d\.\d\d\r\nX-Moat-Spam-Status: spam score=/);
    // The body is never changed: the event still points at the stored message, byte for byte.
    expect(p.sha256).toBe(accepted.payload.sha256);
    expect(Buffer.compare(await store.get(p.store), raw)).toBe(0);
  });

  it('when the same accepted event is delivered twice, then both filtered events carry the same id', async () => {
    const raw = makeMessage({ from: 'dave@unsigned.test', to: ['bob@customer.test'], subject: 'twice' });
    const accepted = await acceptedEvent(raw, 'dave@unsigned.test');
    await broker.publish(routingKeys.messageAccepted, accepted);
    await broker.publish(routingKeys.messageAccepted, accepted);

    const events = await eventually(() => filteredFor(accepted.payload.messageId).length >= 2 && filteredFor(accepted.payload.messageId));
    expect(events).toHaveLength(2);
    expect(events[0]!.id).toBe(filteredEventId(accepted.id));
    expect(events[1]!.id).toBe(events[0]!.id);
  });

  it('when the store reference points nowhere, then the event is parked and the next message is still filtered', async () => {
    const missing = await acceptedEvent(makeMessage({ from: 'erin@unsigned.test', to: ['bob@customer.test'] }), 'erin@unsigned.test', { stored: false });
    await broker.publish(routingKeys.messageAccepted, missing);
    await eventually(() => parked.some((e) => e.id === missing.id));
    expect(parked.find((e) => e.id === missing.id)!.type).toBe('message.accepted');

    const next = await acceptedEvent(makeMessage({ from: 'frank@unsigned.test', to: ['bob@customer.test'] }), 'frank@unsigned.test');
    await broker.publish(routingKeys.messageAccepted, next);
    await eventually(() => filteredFor(next.payload.messageId).length > 0);
    expect(filteredFor(missing.payload.messageId)).toEqual([]);
  });

  it('when several messages arrive together and one is missing from the store, then only that one is parked and the others are filtered', async () => {
    const raws = [0, 1, 2, 3, 4].map((i) => makeMessage({ from: `g${i}@unsigned.test`, to: ['bob@customer.test'], subject: `batch ${i}` }));
    const present = await Promise.all(raws.map((raw, i) => acceptedEvent(raw, `g${i}@unsigned.test`)));
    const missing = await acceptedEvent(makeMessage({ from: 'h@unsigned.test', to: ['bob@customer.test'] }), 'h@unsigned.test', { stored: false });
    // Published back to back: the consumer holds them together, so their reads share statements.
    await Promise.all([...present.slice(0, 2), missing, ...present.slice(2)].map((e) => broker.publish(routingKeys.messageAccepted, e)));

    await eventually(() => present.every((e) => filteredFor(e.payload.messageId).length > 0) && parked.some((e) => e.id === missing.id));
    for (const [i, e] of present.entries()) expect(filteredFor(e.payload.messageId)[0]!.payload.headers.subject).toBe(`batch ${i}`);
    expect(filteredFor(missing.payload.messageId)).toEqual([]);
    expect(parked.filter((e) => present.some((p) => p.id === e.id))).toEqual([]);
  });
});
