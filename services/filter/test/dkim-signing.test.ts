import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify, type DNSResolver } from 'mailauth';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingKeys, type Direction, type EventOf, type MessageAcceptedPayload, type QueuePolicy } from '@moat/contracts';
import { Broker, loadConfig } from '@moat/runtime';
import { dkimDnsRecord, DkimKeyRepository, generateDkimKeyPair, keyringFromConfig, MessageStore, TenantRepository, type DkimKey, type DkimKeyPair, type SealingKey } from '@moat/store';
import { createTestEnv, eventually, makeMessage, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, start, type FilterService } from '../src/index.js';

// Outbound DKIM signing end to end inside the filter: real RabbitMQ and Postgres, keys created the
// way the gateway creates them (sealed to the key the filter publishes), and every signature
// checked by mailauth's verifier over what the sender will transmit: prependHeaders + the body.

const ingressReceived = 'Received: from client.acme.test (client.acme.test [127.0.0.1])\r\n by mx.moat.test with ESMTPSA id abc123;\r\n Mon, 1 Jan 2024 10:00:00 +0000\r\n';
const probe: QueuePolicy = { name: 'probe-filtered', bindings: [routingKeys.messageFiltered], prefetch: 50, deliveryLimit: 5, handlerTimeoutMs: 10_000 };

let t: TestEnv;
let dir: string;
let service: FilterService;
let broker: Broker;
let pool: pg.Pool;
let store: MessageStore;
let tenants: TenantRepository;
/** The gateway's side: it holds no master key and seals to the published key. */
let keys: DkimKeyRepository;
let sealingKey: SealingKey;
const filtered: Array<EventOf<'message.filtered'>> = [];
/** Every key created here, for the verifier's DNS. */
const published: Array<{ key: DkimKey; pair: DkimKeyPair }> = [];

/** A receiver's DNS: answers the TXT record of each key created in this file, nothing else. */
const resolver = (async (name: string, type: string) => {
  for (const { key, pair } of published) {
    const record = dkimDnsRecord(key.domain, key.selector, pair.algorithm, pair.publicKey);
    if (type === 'TXT' && name === record.name) return [record.strings];
  }
  throw Object.assign(new Error(`${name} ${type} not found`), { code: 'ENOTFOUND' });
}) as DNSResolver;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'moat-dkim-'));
  const zoneFile = join(dir, 'zone.json');
  await writeFile(zoneFile, '{}');
  // Cache off: a rotation must show in the very next message.
  t = await createTestEnv({ MOAT_DNS_STATIC_FILE: zoneFile, MOAT_FILTER_AUTHSERV_ID: 'mx.moat.test', MOAT_FILTER_DKIM_KEY_CACHE_MS: '0' });
  const config = loadConfig(configSchema, t.env);
  service = await start(config, silentLog);
  pool = testPool(t);
  store = new MessageStore(pool, keyringFromConfig(config));
  tenants = new TenantRepository(pool);
  keys = new DkimKeyRepository(pool);
  broker = new Broker({ url: t.env.MOAT_AMQP_URL!, namespace: t.env.MOAT_NAMESPACE!, producer: 'dkim-test', log: silentLog });
  await broker.connect();
  await broker.consume(probe, async ({ event }) => {
    if (event.type === 'message.filtered') filtered.push(event);
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

let n = 0;
async function tenantWithDomain(): Promise<{ tenantId: string; domainId: string; domain: string }> {
  n++;
  const tenant = await tenants.createTenant({ name: `dkim ${n}` });
  const domain = await tenants.createDomain(tenant.id, { name: `acme${n}.example`, routes: [{ host: '127.0.0.1', port: 25, priority: 10 }] });
  return { tenantId: tenant.id, domainId: domain.id, domain: domain.name };
}

async function createKey(domainId: string, selector: string, algorithm: DkimKeyPair['algorithm'] = 'rsa-sha256', activate = true): Promise<DkimKey> {
  const pair = await generateDkimKeyPair(algorithm);
  const { key } = await keys.create({ domainId, selector, pair, activate, sealingKey });
  published.push({ key, pair });
  return key;
}

/** Stores the message as ingress (or submission) would and publishes its message.accepted. */
async function submit(raw: Buffer, opts: { tenantId: string; mailFrom: string; direction: Direction }): Promise<EventOf<'message.filtered'>> {
  const messageId = randomUUID();
  const receivedAt = new Date();
  const sha256 = createHash('sha256').update(raw).digest('hex');
  const ref = await store.put({ id: messageId, tenantId: opts.tenantId, receivedAt, sha256, raw });
  const payload: MessageAcceptedPayload = {
    messageId,
    tenantId: opts.tenantId,
    direction: opts.direction,
    store: ref,
    mailFrom: opts.mailFrom,
    rcptTo: ['bob@outside.example'],
    client: { ip: '127.0.0.1', helo: 'client.acme.test', ptr: null, tls: null },
    size: raw.length,
    sha256,
    prependHeaders: ingressReceived,
    receivedAt: receivedAt.toISOString(),
  };
  await broker.publish(routingKeys.messageAccepted, broker.envelope('message.accepted', payload));
  return eventually(() => filtered.find((e) => e.payload.messageId === messageId));
}

/** The a= tag mailauth's verifier reports as `algo` (its bundled types call it `algorithm`, which it never sets). */
function algo(result: object): string | undefined {
  return (result as { algo?: string }).algo;
}

/** What the receiver gets: Moat's prepended headers, then the stored message unchanged. */
function delivered(event: EventOf<'message.filtered'>, raw: Buffer): Buffer {
  return Buffer.concat([Buffer.from(event.payload.prependHeaders, 'utf8'), raw]);
}

describe('outbound DKIM signing', () => {
  it('when the filter starts, then it publishes the sealing key the gateway seals new keys to', async () => {
    const published = await keys.sealingKey();
    expect(published?.keyId).toBe('k1');
    sealingKey = published!;
  });

  it('when an outbound message comes from a tenant domain with an active key, then the receiver verifies its DKIM signature over prependHeaders + body', async () => {
    const { tenantId, domainId, domain } = await tenantWithDomain();
    const key = await createKey(domainId, 'sel1');
    const raw = makeMessage({ from: `alice@${domain}`, to: ['bob@outside.example'], subject: 'signed outbound', body: 'Body stays   exactly as sent.\r\n\r\n' });
    const event = await submit(raw, { tenantId, mailFrom: `alice@${domain}`, direction: 'outbound' });

    const p = event.payload;
    // The signature sits on top; ingress's Received and the filter's fields follow unchanged.
    expect(p.prependHeaders).toMatch(/^DKIM-Signature: /);
    expect(p.prependHeaders).toContain(ingressReceived);
    expect(p.prependHeaders).toMatch(/\r\nX-Moat-Verdict: deliver\r\nX-Moat-Spam-Score: [^\r\n]+\r\nX-Moat-Spam-Status: [^\r\n]+(?:\r\n [^\r\n]+)*\r\n$/);
    expect(p.reasons).toEqual([`DKIM-signed d=${domain} s=sel1 (aligned with the From domain)`]);
    // Sender authentication is for inbound mail: nothing is evaluated, no Authentication-Results goes out.
    expect(p.prependHeaders).not.toContain('Authentication-Results:');
    expect(p.checks.filter((c) => !['virus', 'mime', 'spam'].includes(c.check))).toEqual([{ check: 'auth', result: 'skip', reason: expect.stringContaining('outbound') }]);

    const result = await dkimVerify(delivered(event, raw), { resolver });
    expect(result.results).toHaveLength(1);
    const [sig] = result.results;
    expect(sig!.status.result).toBe('pass');
    expect(sig!.signingDomain).toBe(domain);
    expect(sig!.selector).toBe('sel1');
    expect(algo(sig!)).toBe('rsa-sha256');
    expect(sig!.status.aligned).toBe(domain);
    expect(key.state).toBe('active');
    // A changed body no longer verifies: the signature covers what the sender transmits.
    const tampered = Buffer.concat([Buffer.from(p.prependHeaders), Buffer.from(raw.toString('utf8').replace('exactly', 'roughly'))]);
    // (mailauth reports a body hash mismatch as neutral, RFC 6376 §6.3 leaves the name to the verifier.)
    const broken = (await dkimVerify(tampered, { resolver })).results[0]!.status;
    expect(broken.result).not.toBe('pass');
    expect(broken.comment).toMatch(/body hash/);
  });

  it('when the key is rotated, then the next message is signed with the new key (Ed25519 here) and still verifies', async () => {
    const { tenantId, domainId, domain } = await tenantWithDomain();
    await createKey(domainId, 'old');
    const next = await createKey(domainId, 'new', 'ed25519-sha256', false);
    await keys.activate(next.id);
    const raw = makeMessage({ from: `carol@${domain}`, to: ['bob@outside.example'], subject: 'after rotation' });
    const event = await submit(raw, { tenantId, mailFrom: `carol@${domain}`, direction: 'outbound' });
    const result = await dkimVerify(delivered(event, raw), { resolver });
    expect(result.results.map((r) => [r.selector, algo(r), r.status.result])).toEqual([['new', 'ed25519-sha256', 'pass']]);
  });

  it('when only the envelope sender’s domain has a key of the tenant, then that key signs', async () => {
    const { tenantId, domainId, domain } = await tenantWithDomain();
    await createKey(domainId, 'env');
    const raw = makeMessage({ from: 'newsletter@unprotected.example', to: ['bob@outside.example'] });
    const event = await submit(raw, { tenantId, mailFrom: `bounces@${domain}`, direction: 'outbound' });
    expect(event.payload.reasons[0]).toContain('not aligned');
    const result = await dkimVerify(delivered(event, raw), { resolver });
    expect(result.results.map((r) => [r.signingDomain, r.status.result])).toEqual([[domain, 'pass']]);
  });

  it('when the tenant’s domain has no active key, then the message is not signed and the reason says why', async () => {
    const { tenantId, domainId, domain } = await tenantWithDomain();
    await createKey(domainId, 'pending-only', 'rsa-sha256', false);
    const raw = makeMessage({ from: `dave@${domain}`, to: ['bob@outside.example'] });
    const event = await submit(raw, { tenantId, mailFrom: `dave@${domain}`, direction: 'outbound' });
    expect(event.payload.prependHeaders).not.toContain('DKIM-Signature');
    expect(event.payload.reasons).toEqual([`not DKIM-signed: no active DKIM key of this tenant for ${domain}`]);
  });

  it('when another tenant sends as a domain with an active key, then that key is not used', async () => {
    const owner = await tenantWithDomain();
    await createKey(owner.domainId, 'owned');
    const intruder = await tenantWithDomain();
    const raw = makeMessage({ from: `mallory@${owner.domain}`, to: ['bob@outside.example'] });
    const event = await submit(raw, { tenantId: intruder.tenantId, mailFrom: `mallory@${owner.domain}`, direction: 'outbound' });
    expect(event.payload.prependHeaders).not.toContain('DKIM-Signature');
    expect(event.payload.reasons[0]).toMatch(/^not DKIM-signed/);
  });

  it('when an inbound message comes from a domain with an active key, then it is never signed', async () => {
    const { tenantId, domainId, domain } = await tenantWithDomain();
    await createKey(domainId, 'in');
    const raw = makeMessage({ from: `erin@${domain}`, to: [`frank@${domain}`] });
    const event = await submit(raw, { tenantId, mailFrom: `erin@${domain}`, direction: 'inbound' });
    expect(event.payload.prependHeaders).not.toContain('DKIM-Signature');
    expect(event.payload.prependHeaders.startsWith(ingressReceived)).toBe(true);
    // Nothing about signing; the only reason is anti-spoofing's (unauthenticated mail claiming
    // the tenant's own domain from outside is quarantined: see tenant-policy.ts).
    expect(event.payload.reasons.filter((r) => /DKIM-signed/.test(r))).toEqual([]);
    expect(event.payload.reasons).toEqual([expect.stringMatching(new RegExp(`^spoofing: ${domain.replace(/\./g, '\\.')} is the tenant's own domain`))]);
  });
});
