import { describe, expect, it } from 'vitest';
import type { AuthEvidence } from './auth-checks.js';
import { dmarcAction, dmarcSampleBucket, spoofingCheck } from './sender-auth.js';

const own = ['tenant.example'];
const ev = (over: Partial<AuthEvidence> = {}): AuthEvidence => ({
  spf: { result: 'none', domain: 'outside.example' },
  dkimPass: [],
  dmarc: { result: 'none', policy: null, pct: null },
  ...over,
});

describe('spoofingCheck', () => {
  it('when the From domain is not one of the tenant’s, then there is nothing to protect (no record)', () => {
    expect(spoofingCheck(['ceo@outside.example'], own, ev())).toBeNull();
    expect(spoofingCheck([], own, ev())).toBeNull();
    // A look-alike is not a subdomain.
    expect(spoofingCheck(['ceo@eviltenant.example'], own, ev())).toBeNull();
  });

  it('when From claims the tenant’s domain (or a subdomain, any case) with no DMARC record and nothing aligned passing, then it fails', () => {
    const c = spoofingCheck(['CEO@HR.Tenant.Example'], own, ev({ spf: { result: 'pass', domain: 'spoofer.example' } }));
    expect(c).toMatchObject({ check: 'spoofing', result: 'fail' });
    expect(c!.reason).toContain('hr.tenant.example is the tenant\'s own domain');
  });

  it('when DMARC fails for the own domain, then it fails; when DMARC passes, then it passes', () => {
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dmarc: { result: 'fail', policy: 'none', pct: null } }))).toMatchObject({ result: 'fail' });
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dmarc: { result: 'pass', policy: 'reject', pct: null } }))).toMatchObject({ result: 'pass' });
  });

  it('when there is no DMARC record but SPF passed for a domain in the tenant’s tree, or a DKIM signature of it verified, then it passes', () => {
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ spf: { result: 'pass', domain: 'bounces.tenant.example' } }))).toMatchObject({ result: 'pass' });
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dkimPass: ['tenant.example'] }))).toMatchObject({ result: 'pass' });
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dkimPass: ['esp.example'] }))).toMatchObject({ result: 'fail' });
  });

  it('when DNS failed and nothing aligned passed, then the result is temperror (never a pass); an aligned pass still settles it', () => {
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dmarc: { result: 'temperror', policy: null, pct: null } }))).toMatchObject({ result: 'temperror' });
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ spf: null }))).toMatchObject({ result: 'temperror' });
    expect(spoofingCheck(['ceo@tenant.example'], own, ev({ dkimPass: null, spf: { result: 'pass', domain: 'tenant.example' } }))).toMatchObject({ result: 'pass' });
  });

  it('when several From addresses claim own domains and one fails, then the check fails', () => {
    expect(spoofingCheck(['a@outside.example', 'ceo@tenant.example'], own, ev())).toMatchObject({ result: 'fail' });
  });
});

describe('dmarcAction', () => {
  const failing = (policy: 'none' | 'quarantine' | 'reject', pct: number | null = null) => ev({ dmarc: { result: 'fail', policy, pct } });

  it('when the tenant only tags, then a failing p=reject does nothing', () => {
    expect(dmarcAction('tag', failing('reject'), 'm1')).toEqual({ action: 'none', reason: null });
  });

  it('when the tenant honours DMARC, then p=quarantine quarantines and p=reject rejects; p=none and a pass do nothing', () => {
    expect(dmarcAction('honour', failing('quarantine'), 'm1').action).toBe('quarantine');
    expect(dmarcAction('honour', failing('reject'), 'm1')).toEqual({ action: 'reject', reason: 'dmarc: the message fails DMARC and the sender domain\'s policy is reject' });
    expect(dmarcAction('honour', failing('none'), 'm1').action).toBe('none');
    expect(dmarcAction('honour', ev({ dmarc: { result: 'pass', policy: 'reject', pct: null } }), 'm1').action).toBe('none');
  });

  it('when pct is below 100, then that share of failing messages gets the policy and the rest the next milder one, the same for the same message every time', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `0193a1b2-${String(i).padStart(4, '0')}-7000-8000-000000000000`);
    const rejects = ids.filter((id) => dmarcAction('honour', failing('reject', 30), id).action === 'reject');
    const quarantines = ids.filter((id) => dmarcAction('honour', failing('reject', 30), id).action === 'quarantine');
    expect(rejects.length + quarantines.length).toBe(2000);
    expect(rejects.length).toBeGreaterThan(500);
    expect(rejects.length).toBeLessThan(700);
    // Deterministic: a message filtered again lands on the same side.
    for (const id of ids.slice(0, 50)) expect(dmarcAction('honour', failing('reject', 30), id)).toEqual(dmarcAction('honour', failing('reject', 30), id));
    const sampledIn = rejects[0]!;
    const sampledOut = quarantines[0]!;
    expect(dmarcSampleBucket(sampledIn)).toBeLessThan(30);
    expect(dmarcSampleBucket(sampledOut)).toBeGreaterThanOrEqual(30);
    expect(dmarcAction('honour', failing('reject', 30), sampledIn).reason).toMatch(/policy is reject \(pct=30, sampled\)$/);
    expect(dmarcAction('honour', failing('reject', 30), sampledOut).reason).toMatch(/policy is quarantine \(pct=30, not sampled: the milder policy\)$/);
    // quarantine with pct: the rest is delivered (none).
    expect(dmarcAction('honour', failing('quarantine', 30), sampledOut).action).toBe('none');
    expect(dmarcAction('honour', failing('quarantine', 30), sampledIn).action).toBe('quarantine');
    // pct=0 samples nothing, pct=100 everything.
    expect(ids.some((id) => dmarcAction('honour', failing('reject', 0), id).action === 'reject')).toBe(false);
    expect(ids.every((id) => dmarcAction('honour', failing('reject', 100), id).action === 'reject')).toBe(true);
  });
});
