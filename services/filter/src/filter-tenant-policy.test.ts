import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnyEvent, MessageFilteredPayload } from '@moat/contracts';
import { staticResolver } from '@moat/runtime';
import { defaultFilterPolicy, normalizeListValue, type FilterPolicy, type TenantFilterSettings } from '@moat/store';
import { ClamdUnavailable, type ClamdVerdict } from './clamd.js';
import { MessageFilter, ScannerUnavailable } from './filter.js';
import { defaultSpamThresholds } from './spam/classify.js';
import { loadModel } from './spam/model.js';
import { SpamCheck } from './spam/spam-check.js';
import { readHeaderFields } from './headers.js';
import { TenantPolicySource } from './tenant-policy-source.js';

// The filter with a tenant's policy: that the tenant's settings reach the verdict, the headers and
// the scanner fallback (the rules themselves: tenant-policy.test.ts).

const log = pino({ level: 'silent' });
const spam = new SpamCheck(loadModel(), defaultSpamThresholds);
const gtube = Buffer.from('From: <news@shop.example>\r\nTo: <u@tenant.example>\r\nSubject: offer\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n');
const tenantId = randomUUID();

function accepted(rcptTo: string[] = ['u@tenant.example']): AnyEvent {
  const messageId = randomUUID();
  const receivedAt = new Date().toISOString();
  return {
    v: 1,
    id: randomUUID(),
    type: 'message.accepted',
    occurredAt: receivedAt,
    producer: 'ingress',
    payload: {
      messageId,
      tenantId,
      direction: 'inbound',
      store: { messageId, receivedAt },
      mailFrom: 'bounce@shop.example',
      rcptTo,
      client: { ip: '203.0.113.9', helo: 'mx.shop.example', ptr: null, tls: null },
      size: gtube.length,
      sha256: 'c'.repeat(64),
      prependHeaders: 'Received: by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\n',
      receivedAt,
    },
  };
}

function settings(policy: Partial<FilterPolicy>, entries: Array<{ list: 'allow' | 'block'; kind: 'address' | 'domain' | 'ip'; value: string; mailbox?: string }> = []): TenantFilterSettings {
  return {
    policy: { ...defaultFilterPolicy, ...policy },
    entries: entries.map((e, i) => ({ id: `e${i}`, tenantId, mailbox: null, ...e, value: normalizeListValue(e.kind, e.value), comment: null, createdAt: new Date(i).toISOString() })),
    domains: ['tenant.example'],
  };
}

function filterFor(s: TenantFilterSettings, published: AnyEvent[], opts: { scan?: () => Promise<ClamdVerdict>; serviceFallback?: 'retry' | 'deliver' } = {}) {
  const broker = {
    envelope: (type: string, payload: unknown, id = randomUUID()) => ({ v: 1, id, type, occurredAt: new Date().toISOString(), producer: 'filter', payload }) as AnyEvent,
    publish: async (_key: string, event: AnyEvent) => void published.push(event),
  };
  const signer = { sign: async () => Promise.reject(new Error('inbound mail must not be signed')) };
  const tenantPolicy = new TenantPolicySource({ settingsFor: async (id) => (id === tenantId ? s : settings({})) }, 0);
  return new MessageFilter({ store: { get: async () => gtube }, broker, resolver: staticResolver({}), authservId: 'mx.moat.test', checkTimeoutMs: 1_000, signer, scanViruses: opts.scan ?? null, scannerUnavailable: opts.serviceFallback ?? 'retry', spam, tenantPolicy, log });
}

const payloadOf = (published: AnyEvent[]) => published[0]!.payload as MessageFilteredPayload;

describe('MessageFilter with tenant policy', () => {
  it('when the sender domain is allow-listed, then GTUBE is delivered, tagged spam with the tenant’s subject tag header, and the lists record says why', async () => {
    const published: AnyEvent[] = [];
    await filterFor(settings({ subjectTag: '[SPAM]' }, [{ list: 'allow', kind: 'domain', value: 'shop.example' }]), published).handle(accepted());
    const p = payloadOf(published);
    expect(p.verdict).toBe('deliver');
    expect(p.prependHeaders).toMatch(/X-Moat-Spam-Status: spam score=/);
    expect(p.prependHeaders).toContain('X-Moat-Subject-Tag: [SPAM]\r\n');
    expect(p.checks).toContainEqual(expect.objectContaining({ check: 'lists', result: 'pass' }));
  });

  it('when the tenant rejects at a score GTUBE reaches, then the verdict is reject', async () => {
    const published: AnyEvent[] = [];
    await filterFor(settings({ quarantineScore: 5, rejectScore: 50 }), published).handle(accepted());
    expect(payloadOf(published).verdict).toBe('reject');
    expect(payloadOf(published).reasons[0]).toMatch(/^spam: score \d+(\.\d+)? at or above the reject score 50/);
  });

  it('when the scanner is down, then the tenant’s fallback overrides the service’s, both ways', async () => {
    const down = async (): Promise<ClamdVerdict> => Promise.reject(new ClamdUnavailable('clamd: connect ECONNREFUSED'));
    const delivered: AnyEvent[] = [];
    await filterFor(settings({ scannerUnavailable: 'deliver' }, [{ list: 'allow', kind: 'ip', value: '203.0.113.0/24' }]), delivered, { scan: down, serviceFallback: 'retry' }).handle(accepted());
    expect(payloadOf(delivered).verdict).toBe('deliver');
    expect(payloadOf(delivered).prependHeaders).toContain('X-Moat-Virus-Status: unscanned\r\n');
    const waiting: AnyEvent[] = [];
    await expect(filterFor(settings({ scannerUnavailable: 'retry' }), waiting, { scan: down, serviceFallback: 'deliver' }).handle(accepted())).rejects.toBeInstanceOf(ScannerUnavailable);
    expect(waiting).toHaveLength(0);
  });
});

describe('MessageFilter with per-mailbox lists', () => {
  it("when one mailbox allows the sender of spam, then the message is split: that mailbox's part is delivered, the rest quarantined, each event with its recipients and the same ids on redelivery", async () => {
    const s = settings({}, [{ list: 'allow', kind: 'domain', value: 'shop.example', mailbox: 'v@tenant.example' }]);
    const input = accepted(['u@tenant.example', 'v@tenant.example', 'w@tenant.example']);
    const published: AnyEvent[] = [];
    await filterFor(s, published).handle(input);
    const payloads = published.map((e) => e.payload as MessageFilteredPayload);
    expect(payloads.map((p) => [p.verdict, p.rcptTo, p.split?.part])).toEqual([
      ['deliver', ['v@tenant.example'], 'deliver'],
      ['quarantine', ['u@tenant.example', 'w@tenant.example'], 'quarantine'],
    ]);
    const parts = [
      { verdict: 'deliver', rcptTo: ['v@tenant.example'] },
      { verdict: 'quarantine', rcptTo: ['u@tenant.example', 'w@tenant.example'] },
    ];
    expect(payloads.map((p) => p.split?.parts)).toEqual([parts, parts]);
    expect(payloads[0]!.prependHeaders).toContain('X-Moat-Verdict: deliver');
    expect(payloads[1]!.prependHeaders).toContain('X-Moat-Verdict: quarantine');
    expect(new Set(published.map((e) => e.id)).size).toBe(2);
    // A redelivered input publishes the same events under the same ids (downstream dedupes on them).
    const again: AnyEvent[] = [];
    await filterFor(s, again).handle(input);
    expect(again.map((e) => e.id)).toEqual(published.map((e) => e.id));
  });

  it('when every recipient ends the same way, then one event carries them all and no split', async () => {
    const published: AnyEvent[] = [];
    await filterFor(settings({}, [{ list: 'block', kind: 'domain', value: 'shop.example', mailbox: 'v@tenant.example' }]), published).handle(accepted(['u@tenant.example', 'v@tenant.example']));
    expect(published).toHaveLength(1);
    const p = payloadOf(published);
    expect([p.verdict, p.rcptTo, p.split]).toEqual(['quarantine', ['u@tenant.example', 'v@tenant.example'], undefined]);
  });
});

describe('TenantPolicySource', () => {
  it('when the cache TTL is set, then a tenant’s settings are read once per period; with 0, per message', async () => {
    let reads = 0;
    const repo = { settingsFor: async () => (reads++, settings({})) };
    const cached = new TenantPolicySource(repo, 60_000);
    await cached.settingsFor(tenantId);
    await cached.settingsFor(tenantId);
    expect(reads).toBe(1);
    // The From the lists and anti-spoofing match comes from the filter's one header read.
    expect((await readHeaderFields(gtube)).fromAddresses).toEqual(['news@shop.example']);
    const uncached = new TenantPolicySource(repo, 0);
    await uncached.settingsFor(tenantId);
    await uncached.settingsFor(tenantId);
    expect(reads).toBe(3);
  });

  it('when the database cannot be read, then the error propagates (the message is filtered again later, never without its policy)', async () => {
    const source = new TenantPolicySource({ settingsFor: async () => Promise.reject(new Error('connection refused')) }, 60_000);
    await expect(source.settingsFor(tenantId)).rejects.toThrow('connection refused');
  });
});
