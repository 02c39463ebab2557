import { describe, expect, it } from 'vitest';
import type { AuthEvidence } from './auth-checks.js';
import { dmarcAction, spoofingCheck } from './sender-auth.js';

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
    expect(dmarcAction('tag', failing('reject'))).toEqual({ action: 'none', reason: null });
  });

  it('when the tenant honours DMARC, then p=quarantine quarantines and p=reject rejects; p=none and a pass do nothing', () => {
    expect(dmarcAction('honour', failing('quarantine')).action).toBe('quarantine');
    expect(dmarcAction('honour', failing('reject'))).toEqual({ action: 'reject', reason: 'dmarc: the message fails DMARC and the sender domain\'s policy is reject' });
    expect(dmarcAction('honour', failing('none')).action).toBe('none');
    expect(dmarcAction('honour', ev({ dmarc: { result: 'pass', policy: 'reject', pct: null } })).action).toBe('none');
  });

  it('when pct is below 100, then the next milder policy applies to all (no sampling)', () => {
    expect(dmarcAction('honour', failing('reject', 50)).action).toBe('quarantine');
    expect(dmarcAction('honour', failing('quarantine', 10)).action).toBe('none');
    expect(dmarcAction('honour', failing('reject', 100)).action).toBe('reject');
  });
});
