import { randomBytes, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AnyEvent, MessageFilteredPayload } from '@moat/contracts';
import { openPreview, previewKeyringFromConfig, type Keyring } from '@moat/store';
import { MoatError, PermanentFailure, staticResolver } from '@moat/runtime';
import type { ClamdVerdict } from './clamd.js';
import { ClamdUnavailable } from './clamd.js';
import { filteredEventId, MessageFilter, ScannerUnavailable } from './filter.js';
import { defaultSpamThresholds } from './spam/classify.js';
import { loadModel } from './spam/model.js';
import { SpamCheck } from './spam/spam-check.js';
import { RspamdUnavailable, type RspamdEnvelope, type RspamdResult } from './rspamd.js';
import { rspamdScanner } from './rspamd-check.js';
import { SpamScanners } from './spam-scanners.js';

const log = pino({ level: 'silent' });
const spam = new SpamCheck(loadModel(), defaultSpamThresholds);
const raw = Buffer.from('From: <a@example.test>\r\nSubject: hi\r\n\r\nbody\r\n');

function acceptedEvent(): AnyEvent {
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
      tenantId: randomUUID(),
      direction: 'inbound',
      store: { messageId, receivedAt },
      mailFrom: 'a@example.test',
      rcptTo: ['b@customer.test'],
      client: { ip: '127.0.0.1', helo: 'client.test', ptr: null, tls: null },
      size: raw.length,
      sha256: 'c'.repeat(64),
      prependHeaders: 'Received: by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\n',
      receivedAt,
    },
  };
}

function filterWith(get: () => Promise<Buffer>, publish: (key: string, event: AnyEvent) => Promise<void> = async () => {}, virus: { scan?: (raw: Buffer) => Promise<ClamdVerdict>; policy?: 'retry' | 'deliver'; previewKeyring?: Keyring; spamScanners?: SpamScanners } = {}) {
  const broker = {
    envelope: (type: string, payload: unknown, id = randomUUID()) => ({ v: 1, id, type, occurredAt: new Date().toISOString(), producer: 'filter', payload }) as AnyEvent,
    publish,
  };
  // Inbound mail is never signed: a signer that throws proves it is not asked.
  const signer = { sign: async () => Promise.reject(new Error('inbound mail must not be signed')) };
  return new MessageFilter({ store: { get }, broker, resolver: staticResolver({}), authservId: 'mx.moat.test', checkTimeoutMs: 1_000, signer, scanViruses: virus.scan ?? null, scannerUnavailable: virus.policy ?? 'retry', previewKeyring: virus.previewKeyring ?? null, spam, spamScanners: virus.spamScanners ?? null, log });
}

describe('MessageFilter', () => {
  it('when the message is not in the store, then the failure is permanent (parked)', async () => {
    const filter = filterWith(async () => Promise.reject(new MoatError('NOT_FOUND', 'gone', { permanent: true })));
    await expect(filter.handle(acceptedEvent())).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('when the store cannot be read, then the error is transient (retried)', async () => {
    const filter = filterWith(async () => Promise.reject(new MoatError('STORE_READ_FAILED', 'connection refused')));
    const err = await filter.handle(acceptedEvent()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MoatError);
    expect((err as MoatError).permanent).toBe(false);
  });

  it('when the broker refuses the publish, then the error propagates (retried)', async () => {
    const filter = filterWith(async () => raw, async () => Promise.reject(new MoatError('DEPENDENCY_UNAVAILABLE', 'broker not connected')));
    await expect(filter.handle(acceptedEvent())).rejects.toThrow('broker not connected');
  });

  it('when an event is filtered twice, then both publishes carry the id derived from the accepted event', async () => {
    const ids: string[] = [];
    const filter = filterWith(async () => raw, async (key, event) => {
      expect(key).toBe('message.filtered');
      ids.push(event.id);
    });
    const event = acceptedEvent();
    await filter.handle(event);
    await filter.handle(event);
    expect(ids).toEqual([filteredEventId(event.id), filteredEventId(event.id)]);
  });

  it('when the event is not message.accepted, then it fails permanently', async () => {
    const filter = filterWith(async () => raw);
    await expect(filter.handle({ ...acceptedEvent(), type: 'message.event' } as AnyEvent)).rejects.toBeInstanceOf(PermanentFailure);
  });

  it('when the scanner finds a virus, then the message is quarantined with the signature as its reason', async () => {
    const published: AnyEvent[] = [];
    const filter = filterWith(async () => raw, async (_k, e) => void published.push(e), { scan: async () => ({ infected: true, signature: 'Eicar-Test' }) });
    await filter.handle(acceptedEvent());
    const p = published[0]!.payload as { verdict: string; reasons: string[]; checks: { check: string; result: string }[]; prependHeaders: string };
    expect(p.verdict).toBe('quarantine');
    expect(p.reasons).toContain('virus: Eicar-Test');
    expect(p.checks).toContainEqual({ check: 'virus', result: 'fail', reason: 'virus found: Eicar-Test' });
  });

  it('when a message nests its parts deeper than the limit, then it is quarantined with the reason, not crashed on and not delivered', async () => {
    const open: string[] = [];
    for (let i = 0; i < 100; i++) open.push(`Content-Type: multipart/mixed; boundary="b${i}"`, '', `--b${i}`);
    const deep = Buffer.from(['From: <a@example.test>', 'Subject: nest', ...open, 'Content-Type: text/plain', '', 'hello', ''].join('\r\n'));
    const published: AnyEvent[] = [];
    await filterWith(async () => deep, async (_k, e) => void published.push(e)).handle(acceptedEvent());
    const p = published[0]!.payload as MessageFilteredPayload;
    expect(p.verdict).toBe('quarantine');
    expect(p.reasons[0]).toBe('mime: parts nested more than 40 levels deep');
    expect(p.checks).toContainEqual({ check: 'mime', result: 'fail', reason: 'mime: parts nested more than 40 levels deep' });
    // An ordinary message passes the check.
    const plain: AnyEvent[] = [];
    await filterWith(async () => raw, async (_k, e) => void plain.push(e)).handle(acceptedEvent());
    expect((plain[0]!.payload as MessageFilteredPayload).checks).toContainEqual({ check: 'mime', result: 'pass', reason: '0 parts, nested 0 levels deep' });
  });

  it('when a message is quarantined and a preview key is set, then the event carries its text preview, sealed; a delivered one carries none', async () => {
    const previewKeyring = previewKeyringFromConfig({ MOAT_QUARANTINE_PREVIEW_KEY: randomBytes(32).toString('base64'), MOAT_QUARANTINE_PREVIEW_KEY_ID: 'p1', MOAT_PREVIOUS_QUARANTINE_PREVIEW_KEYS: '' })!;
    const published: AnyEvent[] = [];
    const body = Buffer.from('From: <a@example.test>\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n<p>Pay <b>now</b> <img src="http://track.example/x.gif"></p><script>alert(1)</script>\r\n');
    const infected = filterWith(async () => body, async (_k, e) => void published.push(e), { scan: async () => ({ infected: true, signature: 'Eicar-Test' }), previewKeyring });
    const event = acceptedEvent();
    await infected.handle(event);
    const p = published[0]!.payload as MessageFilteredPayload;
    expect(p.preview).toBeDefined();
    expect(JSON.stringify(p)).not.toContain('Pay');
    const preview = openPreview(previewKeyring, p.messageId, p.preview!);
    expect(preview).toMatchObject({ text: 'Pay now', source: 'html', truncated: false });
    const clean = filterWith(async () => body, async (_k, e) => void published.push(e), { scan: async () => ({ infected: false }), previewKeyring });
    await clean.handle(acceptedEvent());
    expect((published[1]!.payload as MessageFilteredPayload).preview).toBeUndefined();
  });

  it('when the scanner is unavailable and the policy is retry, then nothing is published and the error is transient', async () => {
    const published: AnyEvent[] = [];
    const down = async (): Promise<ClamdVerdict> => Promise.reject(new ClamdUnavailable('clamd: connect ECONNREFUSED'));
    const filter = filterWith(async () => raw, async (_k, e) => void published.push(e), { scan: down, policy: 'retry' });
    await expect(filter.handle(acceptedEvent())).rejects.toBeInstanceOf(ScannerUnavailable);
    expect(published).toHaveLength(0);
  });

  it('when the scanner is unavailable and the policy is deliver, then the message is delivered marked unscanned', async () => {
    const published: AnyEvent[] = [];
    const down = async (): Promise<ClamdVerdict> => Promise.reject(new ClamdUnavailable('clamd: timeout'));
    const filter = filterWith(async () => raw, async (_k, e) => void published.push(e), { scan: down, policy: 'deliver' });
    await filter.handle(acceptedEvent());
    const p = published[0]!.payload as { verdict: string; reasons: string[]; checks: { check: string; result: string }[]; prependHeaders: string };
    expect(p.verdict).toBe('deliver');
    expect(p.prependHeaders).toContain('X-Moat-Virus-Status: unscanned\r\n');
    expect(p.checks).toContainEqual({ check: 'virus', result: 'error', reason: 'clamd: timeout' });
  });

  describe('with rspamd', () => {
    const withRspamd = (ask: (raw: Buffer, envelope: RspamdEnvelope) => Promise<RspamdResult>) => new SpamScanners([rspamdScanner(ask, { weight: 0.35, retry: { forMs: 0, everyMs: 10 } })]);

    it('when rspamd says reject, then the message is quarantined and the event carries the rspamd check, told the real client and envelope', async () => {
      const published: AnyEvent[] = [];
      const asked: RspamdEnvelope[] = [];
      const spamScanners = withRspamd(async (_raw, envelope) => {
        asked.push(envelope);
        return { score: 15, requiredScore: 15, action: 'reject', symbols: [{ name: 'GTUBE', score: 0 }] };
      });
      const event = acceptedEvent();
      await filterWith(async () => raw, async (_k, e) => void published.push(e), { spamScanners }).handle(event);
      const p = published[0]!.payload as MessageFilteredPayload;
      expect(asked).toEqual([{ ip: '127.0.0.1', helo: 'client.test', mailFrom: 'a@example.test', rcptTo: ['b@customer.test'], queueId: p.messageId, hostname: null, received: 'Received: by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\n' }]);
      expect(p.verdict).toBe('quarantine');
      expect(p.checks).toContainEqual({ check: 'rspamd', result: 'fail', reason: 'reject: score 15 (rspamd rejects at 15); GTUBE(0)' });
      expect(p.reasons[0]).toMatch(/^spam: score \d+(\.\d+)? \(builtin=.* rspamd=15\.00x0\.35\(reject\)\)$/);
      expect(p.score).toBeGreaterThanOrEqual(defaultSpamThresholds.quarantine);
    });

    it('when rspamd passes the message, then it is delivered and X-Moat-Spam-Score is the combined score', async () => {
      const published: AnyEvent[] = [];
      const spamScanners = withRspamd(async () => ({ score: 2, requiredScore: 15, action: 'no action', symbols: [] }));
      await filterWith(async () => raw, async (_k, e) => void published.push(e), { spamScanners }).handle(acceptedEvent());
      const p = published[0]!.payload as MessageFilteredPayload;
      const alone: AnyEvent[] = [];
      await filterWith(async () => raw, async (_k, e) => void alone.push(e)).handle(acceptedEvent());
      const own = (alone[0]!.payload as MessageFilteredPayload).score;
      expect(p.verdict).toBe('deliver');
      expect(p.score).toBeCloseTo(own + 0.7, 2);
      expect(p.prependHeaders).toContain(`X-Moat-Spam-Score: ${p.score.toFixed(2)}\r\n`);
      expect(p.checks).toContainEqual({ check: 'rspamd', result: 'pass', reason: 'no action: score 2 (rspamd rejects at 15)' });
    });

    it('when rspamd is unavailable and the policy is retry, then nothing is published and the error is transient', async () => {
      const published: AnyEvent[] = [];
      const spamScanners = withRspamd(async () => Promise.reject(new RspamdUnavailable('rspamd at 127.0.0.1:1: connect ECONNREFUSED')));
      const err = await filterWith(async () => raw, async (_k, e) => void published.push(e), { spamScanners, policy: 'retry' }).handle(acceptedEvent()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScannerUnavailable);
      expect((err as Error).message).toContain('rspamd (rspamd at 127.0.0.1:1: connect ECONNREFUSED)');
      expect(published).toHaveLength(0);
    });

    it('when rspamd is unavailable and the policy is deliver, then the message is delivered tagged rspamd=unavailable with the error check', async () => {
      const published: AnyEvent[] = [];
      const spamScanners = withRspamd(async () => Promise.reject(new RspamdUnavailable('rspamd at 127.0.0.1:1: no verdict within 100 ms')));
      await filterWith(async () => raw, async (_k, e) => void published.push(e), { spamScanners, policy: 'deliver' }).handle(acceptedEvent());
      const p = published[0]!.payload as MessageFilteredPayload;
      expect(p.verdict).toBe('deliver');
      expect(p.prependHeaders).toMatch(/X-Moat-Spam-Status: [^]* rspamd=unavailable\r\n/);
      expect(p.reasons).toContain('rspamd unavailable: scored without it (policy: deliver)');
      expect(p.checks).toContainEqual({ check: 'rspamd', result: 'error', reason: 'rspamd at 127.0.0.1:1: no verdict within 100 ms' });
    });
  });
});
