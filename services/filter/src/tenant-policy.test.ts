import { describe, expect, it } from 'vitest';
import { defaultFilterPolicy, normalizeListValue, type FilterEntryKind, type FilterList, type FilterListEntry, type FilterPolicy } from '@moat/store';
import type { AuthEvidence } from './auth-checks.js';
import type { SpamCheckOutcome } from './spam/spam-check.js';
import { applyTenantPolicy, applyTenantPolicyPerRecipient, judgeSpam, tenantThresholds, type PolicyInput } from './tenant-policy.js';

const service = { quarantine: 5.2, unsure: 4 };

/** A spam outcome as the spam check makes it under the service thresholds. */
function spamAt(score: number): SpamCheckOutcome {
  const status = score >= service.quarantine ? 'spam' : score >= service.unsure ? 'unsure' : 'ham';
  const basis = `bayes=0.500 clues=12`;
  return {
    check: { check: 'spam', result: status === 'spam' ? 'fail' : status === 'unsure' ? 'neutral' : 'pass', reason: `${status}: score ${score}` },
    verdict: status === 'spam' ? 'quarantine' : 'deliver',
    score,
    reasons: status === 'ham' ? [] : [`${status === 'spam' ? 'spam' : 'spam unsure'}: score ${score} (${basis})`],
    headers: { score: score.toFixed(2), status: `${status} score=${score.toFixed(2)} quarantine=5.2 unsure=4 ${basis}` },
    outcome: null,
    basis,
  };
}

let n = 0;
function entry(list: FilterList, kind: FilterEntryKind, value: string, mailbox: string | null = null): FilterListEntry {
  n++;
  return { id: `e${n}`, tenantId: 't', mailbox, list, kind, value: normalizeListValue(kind, value), comment: null, createdAt: new Date(n).toISOString() };
}

const authOk: AuthEvidence = { spf: { result: 'pass', domain: 'sender.example' }, dkimPass: [], dmarc: { result: 'none', policy: null, pct: null } };

function input(over: { policy?: Partial<FilterPolicy>; entries?: FilterListEntry[]; spam?: number; virus?: string | null; auth?: AuthEvidence | null; headerFrom?: string[]; rcptTo?: string[]; direction?: 'inbound' | 'outbound'; mimeFail?: boolean } = {}): PolicyInput {
  return {
    accepted: { messageId: '0193a1b2-0000-7000-8000-000000000001', direction: over.direction ?? 'inbound', mailFrom: 'alice@sender.example', rcptTo: over.rcptTo ?? ['u@tenant.example'], client: { ip: '198.51.100.7', helo: 'mx.sender.example', ptr: null, tls: null } },
    auth: over.auth === undefined ? authOk : over.auth,
    tenant: { settings: { policy: { ...defaultFilterPolicy, ...over.policy }, entries: over.entries ?? [], domains: ['tenant.example'] }, headerFrom: over.headerFrom ?? ['alice@sender.example'] },
    virus: { signature: over.virus ?? null },
    mime: over.mimeFail ? { check: 'mime', result: 'fail', reason: 'mime: nested 50 deep' } : { check: 'mime', result: 'pass', reason: 'ok' },
    spam: spamAt(over.spam ?? 1),
    service,
  };
}

describe('tenantThresholds', () => {
  it('when the tenant set nothing, then the service thresholds apply and nothing is rejected', () => {
    expect(tenantThresholds(defaultFilterPolicy, service)).toEqual({ tag: 4, quarantine: 5.2, reject: null });
  });

  it('when the tenant sets its own, then they apply; a tag score above the quarantine score collapses onto it', () => {
    expect(tenantThresholds({ ...defaultFilterPolicy, spamTagScore: 2, quarantineScore: 8, rejectScore: 15 }, service)).toEqual({ tag: 2, quarantine: 8, reject: 15 });
    expect(tenantThresholds({ ...defaultFilterPolicy, spamTagScore: 6 }, service)).toEqual({ tag: 5.2, quarantine: 5.2, reject: null });
  });
});

describe('judgeSpam', () => {
  it('when the thresholds are the service’s, then the outcome is untouched', () => {
    const spam = spamAt(6);
    expect(judgeSpam(spam, { tag: 4, quarantine: 5.2, reject: null }, service)).toEqual({ spam, status: 'spam' });
  });

  it('when the tenant raises the quarantine score, then a 6-point message is unsure: delivered tagged, its header and reason say so', () => {
    const j = judgeSpam(spamAt(6), { tag: 4, quarantine: 8, reject: null }, service);
    expect(j.status).toBe('unsure');
    expect(j.spam.verdict).toBe('deliver');
    expect(j.spam.check.result).toBe('neutral');
    expect(j.spam.headers.status).toBe('unsure score=6.00 quarantine=8 unsure=4 bayes=0.500 clues=12');
    expect(j.spam.reasons).toEqual(['spam unsure: score 6 (bayes=0.500 clues=12)']);
  });

  it('when the score reaches the tenant’s reject score, then the status is reject and the reason names it', () => {
    const j = judgeSpam(spamAt(20), { tag: 4, quarantine: 5.2, reject: 15 }, service);
    expect(j.status).toBe('reject');
    expect(j.spam.reasons[0]).toBe('spam: score 20 at or above the reject score 15 (bayes=0.500 clues=12)');
  });

  it('when the classifier failed and nothing scored, then the outcome stays as it is (delivered, error)', () => {
    const failed: SpamCheckOutcome = { check: { check: 'spam', result: 'error', reason: 'boom' }, verdict: 'deliver', score: 0, reasons: ['boom'], headers: { score: '0', status: 'error' }, outcome: null };
    expect(judgeSpam(failed, { tag: 1, quarantine: 2, reject: 3 }, service)).toEqual({ spam: failed, status: 'ham' });
  });
});

describe('applyTenantPolicy', () => {
  it('when nothing is configured, then the verdict follows the service thresholds and no records are added', () => {
    expect(applyTenantPolicy(input({ spam: 1 }))).toMatchObject({ verdict: 'deliver', checks: [], headers: '', unsettled: null });
    expect(applyTenantPolicy(input({ spam: 6 })).verdict).toBe('quarantine');
  });

  it('when the same score meets two tenants’ thresholds, then one quarantines and the other delivers', () => {
    expect(applyTenantPolicy(input({ spam: 4.5, policy: { quarantineScore: 4.2, spamTagScore: 3 } })).verdict).toBe('quarantine');
    expect(applyTenantPolicy(input({ spam: 4.5, policy: { quarantineScore: 9 } })).verdict).toBe('deliver');
  });

  it('when the score reaches the reject score, then the verdict is reject', () => {
    expect(applyTenantPolicy(input({ spam: 30, policy: { quarantineScore: 5.2, rejectScore: 20 } })).verdict).toBe('reject');
  });

  it('when a tagged message is delivered and the tenant has a subject tag, then X-Moat-Subject-Tag is prepended; ham and quarantined mail get none', () => {
    expect(applyTenantPolicy(input({ spam: 4.5, policy: { subjectTag: '[SPAM]' } })).headers).toBe('X-Moat-Subject-Tag: [SPAM]\r\n');
    expect(applyTenantPolicy(input({ spam: 1, policy: { subjectTag: '[SPAM]' } })).headers).toBe('');
    expect(applyTenantPolicy(input({ spam: 9, policy: { subjectTag: '[SPAM]' } })).headers).toBe('');
    expect(applyTenantPolicy(input({ spam: 4.5, policy: { subjectTag: '[SPAM]' }, direction: 'outbound', auth: null })).headers).toBe('');
  });

  it('when the sender is allow-listed, then spam is delivered (still scored and tagged) but a virus is quarantined', () => {
    const entries = [entry('allow', 'domain', 'sender.example')];
    const spam = applyTenantPolicy(input({ spam: 1000, entries, policy: { subjectTag: '[SPAM]', rejectScore: 20, quarantineScore: 5.2 } }));
    expect(spam.verdict).toBe('deliver');
    expect(spam.spam.headers.status).toMatch(/^spam score=1000.00/);
    expect(spam.headers).toBe('X-Moat-Subject-Tag: [SPAM]\r\n');
    expect(spam.reasons[0]).toBe("policy: allowed by the tenant's allow list (domain sender.example matches the envelope sender): spam verdict not applied");
    expect(spam.checks).toContainEqual(expect.objectContaining({ check: 'lists', result: 'pass' }));
    const virus = applyTenantPolicy(input({ spam: 1000, entries, virus: 'Eicar-Test-Signature' }));
    expect(virus.verdict).toBe('quarantine');
    expect(virus.reasons[0]).toBe('virus: Eicar-Test-Signature');
    expect(applyTenantPolicy(input({ entries, mimeFail: true })).verdict).toBe('quarantine');
  });

  it('when the sender is block-listed, then a clean message is quarantined with a policy reason', () => {
    const out = applyTenantPolicy(input({ spam: 0, entries: [entry('block', 'ip', '198.51.100.0/24')] }));
    expect(out.verdict).toBe('quarantine');
    expect(out.reasons).toEqual(["policy: blocked by the tenant's block list (ip 198.51.100.0/24 matches the client IP)"]);
    expect(out.checks).toContainEqual({ check: 'lists', result: 'fail', reason: out.reasons[0] });
  });

  it('when From claims the tenant’s own domain and fails authentication, then it is quarantined with a failing spoofing check, even if its address is allow-listed; an ip allow entry exempts it', () => {
    const spoof = { headerFrom: ['ceo@tenant.example'], auth: { ...authOk, spf: { result: 'pass' as const, domain: 'sender.example' } } };
    const out = applyTenantPolicy(input(spoof));
    expect(out.verdict).toBe('quarantine');
    expect(out.checks).toContainEqual(expect.objectContaining({ check: 'spoofing', result: 'fail' }));
    expect(out.reasons[0]).toMatch(/^spoofing: tenant.example is the tenant's own domain/);
    expect(applyTenantPolicy(input({ ...spoof, entries: [entry('allow', 'address', 'ceo@tenant.example')] })).verdict).toBe('quarantine');
    const exempt = applyTenantPolicy(input({ ...spoof, entries: [entry('allow', 'ip', '198.51.100.7')] }));
    expect(exempt.verdict).toBe('deliver');
  });

  it('when the spoofing check cannot be settled (DNS), then the outcome asks for the scanner-unavailable policy', () => {
    const out = applyTenantPolicy(input({ headerFrom: ['ceo@tenant.example'], auth: { spf: { result: 'temperror', domain: 'sender.example' }, dkimPass: [], dmarc: { result: 'temperror', policy: null, pct: null } } }));
    expect(out.unsettled).toContain("tenant.example is the tenant's own domain");
    expect(out.checks).toContainEqual(expect.objectContaining({ check: 'spoofing', result: 'temperror' }));
  });

  it('when DMARC fails with p=reject, then honour rejects, tag delivers, and an ip allow entry exempts', () => {
    const auth: AuthEvidence = { ...authOk, dmarc: { result: 'fail', policy: 'reject', pct: null } };
    expect(applyTenantPolicy(input({ auth, policy: { dmarc: 'honour' } })).verdict).toBe('reject');
    expect(applyTenantPolicy(input({ auth, policy: { dmarc: 'honour' } })).reasons).toContain("dmarc: the message fails DMARC and the sender domain's policy is reject");
    expect(applyTenantPolicy(input({ auth, policy: { dmarc: 'tag' } })).verdict).toBe('deliver');
    expect(applyTenantPolicy(input({ auth, policy: { dmarc: 'honour' }, entries: [entry('allow', 'address', 'alice@sender.example')] })).verdict).toBe('reject');
    expect(applyTenantPolicy(input({ auth, policy: { dmarc: 'honour' }, entries: [entry('allow', 'ip', '198.51.100.0/24')] })).verdict).toBe('deliver');
    expect(applyTenantPolicy(input({ auth: { ...auth, dmarc: { result: 'fail', policy: 'quarantine', pct: null } }, policy: { dmarc: 'honour' } })).verdict).toBe('quarantine');
  });

  it('when the message is outbound, then lists, anti-spoofing and DMARC are not applied; the thresholds are', () => {
    const out = applyTenantPolicy(input({ direction: 'outbound', auth: null, headerFrom: [], entries: [entry('block', 'ip', '198.51.100.0/24')], spam: 30, policy: { quarantineScore: 5.2, rejectScore: 20 } }));
    expect(out.verdict).toBe('reject');
    expect(out.checks).toEqual([]);
  });

  it("when recipients' mailbox lists disagree, then the message is filtered on its score and the reason says why the lists did not apply", () => {
    const out = applyTenantPolicy(input({ spam: 1, rcptTo: ['a@tenant.example', 'b@tenant.example'], entries: [entry('block', 'domain', 'sender.example', 'a@tenant.example')] }));
    expect(out.verdict).toBe('deliver');
    expect(out.reasons[0]).toContain('lists not applied');
    expect(out.checks).toContainEqual(expect.objectContaining({ check: 'lists', result: 'neutral' }));
  });
});

describe('applyTenantPolicyPerRecipient (per-mailbox lists)', () => {
  const a = 'a@tenant.example';
  const b = 'b@tenant.example';
  const c = 'c@tenant.example';
  const parts = (i: PolicyInput) => applyTenantPolicyPerRecipient(i).map((p) => ({ verdict: p.outcome.verdict, rcptTo: p.rcptTo }));

  it("when one mailbox blocks the sender, then that mailbox's copy is quarantined and the others are delivered", () => {
    const out = applyTenantPolicyPerRecipient(input({ spam: 1, rcptTo: [a, b, c], entries: [entry('block', 'domain', 'sender.example', b)] }));
    expect(out.map((p) => ({ verdict: p.outcome.verdict, rcptTo: p.rcptTo }))).toEqual([
      { verdict: 'deliver', rcptTo: [a, c] },
      { verdict: 'quarantine', rcptTo: [b] },
    ]);
    expect(out[1]!.outcome.reasons[0]).toBe(`policy: blocked by the block list of ${b} (domain sender.example matches the envelope sender)`);
    expect(out[1]!.outcome.checks).toContainEqual(expect.objectContaining({ check: 'lists', result: 'fail' }));
    // The delivered part carries no word about b's list.
    expect(out[0]!.outcome.reasons.join(' ')).not.toContain(b);
  });

  it("when one mailbox allows a sender whose message is spam, then only that mailbox gets it (tagged); the others' copies are quarantined", () => {
    const out = applyTenantPolicyPerRecipient(input({ spam: 9, rcptTo: [a, b], entries: [entry('allow', 'address', 'alice@sender.example', a)] }));
    expect(out.map((p) => ({ verdict: p.outcome.verdict, rcptTo: p.rcptTo }))).toEqual([
      { verdict: 'deliver', rcptTo: [a] },
      { verdict: 'quarantine', rcptTo: [b] },
    ]);
    expect(out[0]!.outcome.spam.headers.status).toMatch(/^spam /);
  });

  it('when the groups end the same way, then the message is not split (one part, every recipient)', () => {
    // b allows, nobody blocks, the message is clean: everyone gets it anyway.
    expect(parts(input({ spam: 1, rcptTo: [a, b], entries: [entry('allow', 'domain', 'sender.example', b)] }))).toEqual([{ verdict: 'deliver', rcptTo: [a, b] }]);
    // b blocks, the message is spam: everyone's copy is quarantined.
    expect(parts(input({ spam: 9, rcptTo: [a, b], entries: [entry('block', 'domain', 'sender.example', b)] }))).toEqual([{ verdict: 'quarantine', rcptTo: [a, b] }]);
    // A virus is quarantined for all, whatever a mailbox allows.
    expect(parts(input({ virus: 'Eicar-Signature', rcptTo: [a, b], entries: [entry('allow', 'ip', '198.51.100.0/24', a)] }))).toEqual([{ verdict: 'quarantine', rcptTo: [a, b] }]);
  });

  it('when blocked, allowed and unlisted recipients all differ, then parts come deliver, quarantine, reject, recipients in the order given', () => {
    const out = parts(
      input({
        spam: 30,
        policy: { rejectScore: 20 },
        rcptTo: [c, b, a],
        entries: [entry('block', 'address', 'alice@sender.example', b), entry('allow', 'domain', 'sender.example', a)],
      }),
    );
    expect(out).toEqual([
      { verdict: 'deliver', rcptTo: [a] },
      { verdict: 'quarantine', rcptTo: [b] },
      { verdict: 'reject', rcptTo: [c] },
    ]);
  });

  it('when a tenant-wide entry matches, or there is one recipient, or the mail is outbound, then there is one part', () => {
    expect(parts(input({ spam: 1, rcptTo: [a, b], entries: [entry('block', 'domain', 'sender.example')] }))).toEqual([{ verdict: 'quarantine', rcptTo: [a, b] }]);
    expect(parts(input({ spam: 1, rcptTo: [b], entries: [entry('block', 'domain', 'sender.example', b)] }))).toEqual([{ verdict: 'quarantine', rcptTo: [b] }]);
    expect(parts(input({ direction: 'outbound', auth: null, spam: 1, rcptTo: [a, b], entries: [entry('block', 'domain', 'sender.example', b)] }))).toEqual([{ verdict: 'deliver', rcptTo: [a, b] }]);
  });
});
