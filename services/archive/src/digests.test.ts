import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyDigestLink, type DigestItem } from '@moat/store';
import { digestCutoff, digestEntryFor, digestIdFor } from './digests.js';

const hour = 3_600_000;

describe('digest periods', () => {
  it('when replicas look at different moments of one period, then they agree on its cut-off', () => {
    const a = digestCutoff(new Date('2026-11-28T10:00:31Z'), hour);
    const b = digestCutoff(new Date('2026-11-28T10:59:59Z'), hour);
    expect(a.toISOString()).toBe('2026-11-28T10:00:00.000Z');
    expect(b).toEqual(a);
  });

  it('when a period ended less than the settle time ago, then its digest waits (rows stamped just before the cut-off may not be committed yet)', () => {
    expect(digestCutoff(new Date('2026-11-28T10:00:10Z'), hour).toISOString()).toBe('2026-11-28T09:00:00.000Z');
  });

  it('when the same mailbox and period are digested twice, then the digest id is the same; another period or mailbox gets another', () => {
    const m = { tenantId: '99999999-2222-4333-8444-555555555555', mailbox: 'bob@acme.example' };
    const cutoff = new Date('2026-11-28T10:00:00Z');
    expect(digestIdFor(m, cutoff)).toBe(digestIdFor({ ...m }, new Date(cutoff)));
    expect(digestIdFor(m, new Date('2026-11-28T11:00:00Z'))).not.toBe(digestIdFor(m, cutoff));
    expect(digestIdFor({ ...m, mailbox: 'carol@acme.example' }, cutoff)).not.toBe(digestIdFor(m, cutoff));
  });
});

describe('digest entries', () => {
  const key = randomBytes(32);
  const now = new Date('2026-11-28T10:00:30Z');
  const item = (over: Partial<DigestItem> = {}): DigestItem => ({
    messageId: '0f1e2d3c-4b5a-4987-8765-43210fedcba9',
    quarantinedAt: new Date('2026-11-28T09:10:00Z'),
    expiresAt: new Date('2026-12-28T09:10:00Z'),
    mailFrom: 'bounce@sender.example',
    fromHeader: null,
    subject: 'hi',
    category: 'spam',
    ...over,
  });
  const opts = { mailbox: 'bob@acme.example', now, linkTtlMs: 7 * 24 * hour, linkKey: key, publicUrl: 'https://moat.example', nonce: () => 'n'.repeat(22) };

  it('when a spam message is listed, then its link is signed for that message and mailbox and expires after the link lifetime', () => {
    const e = digestEntryFor(item(), opts);
    expect(e.from).toBe('bounce@sender.example');
    const token = e.releaseUrl!.replace('https://moat.example/digest/release/', '');
    expect(verifyDigestLink(key, token, now)).toEqual({ ok: true, link: { messageId: item().messageId, mailbox: 'bob@acme.example', expiresAt: new Date('2026-12-05T10:00:30Z'), nonce: 'n'.repeat(22) } });
  });

  it('when the message leaves the quarantine before the link lifetime ends, then the link expires with it', () => {
    const e = digestEntryFor(item({ category: 'policy', expiresAt: new Date('2026-11-30T00:00:00Z') }), opts);
    expect(e.linkExpiresAt).toEqual(new Date('2026-11-30T00:00:00Z'));
  });

  it('when the message is a virus or spoofing, then it gets no link at all', () => {
    expect(digestEntryFor(item({ category: 'virus' }), opts)).toMatchObject({ releaseUrl: null, linkExpiresAt: null });
    expect(digestEntryFor(item({ category: 'spoofing' }), opts)).toMatchObject({ releaseUrl: null, linkExpiresAt: null });
  });
});

describe('digest configuration', () => {
  it('when digests are turned on without their key, sender, public URL and master key, then the config error names each of them', async () => {
    const { ConfigError, loadConfig } = await import('@moat/runtime');
    const { configSchema } = await import('./config.js');
    let error: unknown;
    try {
      loadConfig(configSchema, { MOAT_DIGEST_INTERVAL_MS: '3600000' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as InstanceType<typeof ConfigError>).problems.join('\n');
    for (const name of ['MOAT_DIGEST_LINK_KEY', 'MOAT_DIGEST_FROM', 'MOAT_PUBLIC_URL', 'MOAT_MASTER_KEY']) expect(problems).toContain(`${name}: required when MOAT_DIGEST_INTERVAL_MS is set`);
  });

  it('when digests are off, then the archive needs none of it; when on and complete, then the public URL loses its trailing slash', async () => {
    const { loadConfig } = await import('@moat/runtime');
    const { configSchema } = await import('./config.js');
    expect(loadConfig(configSchema, {}).MOAT_DIGEST_INTERVAL_MS).toBeUndefined();
    const key = randomBytes(32).toString('base64');
    const c = loadConfig(configSchema, { MOAT_DIGEST_INTERVAL_MS: '3600000', MOAT_DIGEST_LINK_KEY: key, MOAT_DIGEST_FROM: 'quarantine@moat.example', MOAT_PUBLIC_URL: 'https://moat.example/', MOAT_MASTER_KEY: key });
    expect(c.MOAT_PUBLIC_URL).toBe('https://moat.example');
    expect(c.MOAT_DIGEST_LINK_TTL_HOURS).toBe(168);
    expect(() => loadConfig(configSchema, { MOAT_DIGEST_LINK_KEY: 'short' })).toThrow(/MOAT_DIGEST_LINK_KEY: must be at least 32 bytes/);
  });
});
