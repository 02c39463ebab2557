import type { CheckResult, MessageAcceptedPayload, Verdict } from '@moat/contracts';
import type { FilterPolicy, TenantFilterSettings } from '@moat/store';
import type { AuthEvidence } from './auth-checks.js';
import { listDecision, recipientFates, type ListDecision } from './filter-lists.js';
import { foldHeader } from './prepend.js';
import { dmarcAction, spoofingCheck } from './sender-auth.js';
import { statusFor, type SpamStatus, type SpamThresholds } from './spam/classify.js';
import type { SpamCheckOutcome } from './spam/spam-check.js';
import type { VirusCheckOutcome } from './virus-check.js';

/**
 * Tenant filter policy (issue 5): the tenant's thresholds, allow and block lists, anti-spoofing
 * and DMARC handling turned into the message's verdict. Pure: the filter hands in what the checks
 * found and what the tenant configured (tenant-policy-source.ts reads it), and publishes what
 * comes out. Precedence, first match wins:
 *
 *  1. a virus, or a MIME structure too deep or too wide → quarantine. No list overrides these:
 *     an allow list never bypasses virus scanning.
 *  2. the block lists block the message (filter-lists.ts: every recipient blocked) → quarantine,
 *     reason `policy: blocked by …` (quarantine category `policy`).
 *  3. inbound mail whose From claims one of the tenant's own domains and fails authentication
 *     (sender-auth.ts spoofingCheck) → quarantine, failing check `spoofing` (category `spoofing`:
 *     only a tenant admin may release it). Bypassed only by an allow entry of kind `ip` for every
 *     recipient: an address or domain entry names what a spoofer writes himself.
 *  4. DMARC `honour` and the sender's domain asks for quarantine or reject → that verdict. Bypassed
 *     only by an `ip` allow entry, as 3.
 *  5. the allow lists allow the message → delivered; it is still scored and tagged with what was
 *     found (X-Moat-Spam-Status), the spam verdict is just not applied.
 *  6. the spam score against the tenant's thresholds: reject score → reject (the router sends the
 *     sender a DSN), quarantine score → quarantine, tag score → delivered tagged `unsure`.
 *
 * Lists, anti-spoofing and DMARC are about who sent inbound mail; outbound mail (the tenant's own)
 * gets only the thresholds.
 *
 * Per-mailbox lists (applyTenantPolicyPerRecipient): when the recipients' own lists disagree and
 * that gives them different verdicts, the message is split into one part per verdict; each part
 * is judged as if its recipients were the message's only ones.
 */

/** The thresholds in force for a tenant: its own, the service's where it set none. */
export interface TenantThresholds {
  tag: number;
  quarantine: number;
  /** null: spam is never rejected. */
  reject: number | null;
}

export function tenantThresholds(policy: FilterPolicy, service: SpamThresholds): TenantThresholds {
  const quarantine = policy.quarantineScore ?? service.quarantine;
  // A tag score above the quarantine score leaves no tag band (the API refuses it when both are
  // the tenant's; against a service default that changed later, the bands just collapse).
  const tag = Math.min(policy.spamTagScore ?? service.unsure, quarantine);
  const reject = policy.rejectScore === null ? null : Math.max(policy.rejectScore, quarantine);
  return { tag, quarantine, reject };
}

function sameAsService(t: TenantThresholds, service: SpamThresholds): boolean {
  return t.reject === null && t.quarantine === service.quarantine && t.tag === service.unsure;
}

/** The spam outcome judged under the tenant's thresholds, and the status it leads to. */
export interface SpamJudgement {
  spam: SpamCheckOutcome;
  /** `spam` at or above the quarantine score; `reject` at or above the reject score. */
  status: SpamStatus | 'reject';
}

/** Reason lines the spam check writes for its verdict ("spam: score …", "spam unsure: score …"); other spam reasons (engine unavailable, classifier error) are kept. */
const verdictReason = /^spam(?: unsure)?: score /;

/**
 * Re-judges the spam outcome when the tenant's thresholds differ from the service's (the
 * classifier and the engines scored with the service's): the status, the check record, the
 * verdict reason and X-Moat-Spam-Status then name the tenant's thresholds. A classifier failure
 * with nothing else scored (no basis) stays as it is: delivered, marked `error`.
 */
export function judgeSpam(spam: SpamCheckOutcome, t: TenantThresholds, service: SpamThresholds): SpamJudgement {
  if (spam.basis === undefined) return { spam, status: 'ham' };
  if (sameAsService(t, service)) return { spam, status: statusFor(spam.score, service) };
  const score = spam.score;
  const status: SpamJudgement['status'] = t.reject !== null && score >= t.reject ? 'reject' : statusFor(score, { quarantine: t.quarantine, unsure: t.tag });
  const word: SpamStatus = status === 'reject' ? 'spam' : status;
  const limits = `quarantine=${t.quarantine} unsure=${t.tag}${t.reject !== null ? ` reject=${t.reject}` : ''}`;
  const reason =
    status === 'reject'
      ? `spam: score ${score} at or above the reject score ${t.reject} (${spam.basis})`
      : word === 'ham'
        ? null
        : `${word === 'spam' ? 'spam' : 'spam unsure'}: score ${score} (${spam.basis})`;
  const check: CheckResult =
    spam.check.result === 'error'
      ? spam.check
      : {
          check: spam.check.check,
          result: word === 'spam' ? 'fail' : word === 'unsure' ? 'neutral' : 'pass',
          reason: `${word}: score ${score} (tenant thresholds: quarantine at ${t.quarantine}, unsure at ${t.tag}${t.reject !== null ? `, reject at ${t.reject}` : ''}); ${spam.basis}`,
        };
  return {
    status,
    spam: {
      ...spam,
      check,
      verdict: word === 'spam' ? 'quarantine' : 'deliver',
      reasons: [...(reason ? [reason] : []), ...spam.reasons.filter((r) => !verdictReason.test(r))],
      headers: { score: spam.headers.score, status: `${word} score=${score.toFixed(2)} ${limits} ${spam.basis}` },
    },
  };
}

/** What the filter knows of the tenant for one message (tenant-policy-source.ts). */
export interface TenantContext {
  settings: TenantFilterSettings;
  /** The message's From header addresses, lower case (inbound only; empty for outbound). */
  headerFrom: string[];
}

export interface PolicyInput {
  accepted: Pick<MessageAcceptedPayload, 'messageId' | 'direction' | 'mailFrom' | 'rcptTo' | 'client'>;
  /** Inbound mail's authentication facts; null for outbound mail (not authenticated). */
  auth: AuthEvidence | null;
  tenant: TenantContext;
  virus: Pick<VirusCheckOutcome, 'signature'>;
  mime: CheckResult;
  spam: SpamCheckOutcome;
  service: SpamThresholds;
}

export interface PolicyOutcome {
  verdict: Verdict;
  /** In order: virus, mime, lists, spoofing, DMARC, then the spam reasons. */
  reasons: string[];
  /** The spam outcome under the tenant's thresholds (its check record and headers go out). */
  spam: SpamCheckOutcome;
  /** Records this policy adds: `spoofing` (inbound mail claiming an own domain), `lists` (when an entry matched). */
  checks: CheckResult[];
  /** Header fields to prepend after the verdict ones (X-Moat-Subject-Tag, read by the sender), CRLF-terminated; '' for none. */
  headers: string;
  /**
   * Set when anti-spoofing could not be settled (DNS trouble): the scanner-unavailable policy
   * applies, as for a scanner without a verdict: `retry` waits, `deliver` goes on with this result.
   */
  unsettled: string | null;
}

function listsCheck(lists: ListDecision): CheckResult | null {
  if (lists.kind === 'block') return { check: 'lists', result: 'fail', reason: lists.reason };
  if (lists.kind === 'allow') return { check: 'lists', result: 'pass', reason: lists.reason };
  return lists.reason ? { check: 'lists', result: 'neutral', reason: lists.reason } : null;
}

export function applyTenantPolicy(input: PolicyInput): PolicyOutcome {
  const { accepted, tenant, virus, mime } = input;
  const policy = tenant.settings.policy;
  const judged = judgeSpam(input.spam, tenantThresholds(policy, input.service), input.service);
  const inbound = accepted.direction === 'inbound' && input.auth !== null;
  const lists: ListDecision = inbound ? listDecision(tenant.settings.entries, accepted.rcptTo, { mailFrom: accepted.mailFrom, headerFrom: tenant.headerFrom, clientIp: accepted.client.ip }) : { kind: 'none', reason: null };
  const spoofing = inbound ? spoofingCheck(tenant.headerFrom, tenant.settings.domains, input.auth!) : null;
  const dmarc = inbound ? dmarcAction(policy.dmarc, input.auth!, accepted.messageId) : { action: 'none' as const, reason: null };
  const trusted = lists.kind === 'allow' && lists.byIp;

  const reasons: string[] = [];
  if (virus.signature !== null) reasons.push(`virus: ${virus.signature}`);
  if (mime.result === 'fail') reasons.push(mime.reason);
  if (lists.kind !== 'none' || lists.reason) reasons.push(lists.kind === 'allow' ? `${lists.reason}: spam verdict not applied` : lists.reason!);
  const spoofed = spoofing?.result === 'fail' && !trusted;
  if (spoofed) reasons.push(`spoofing: ${spoofing.reason}`);
  const dmarcActs = dmarc.action !== 'none' && !trusted;
  if (dmarcActs) reasons.push(dmarc.reason!);
  reasons.push(...judged.spam.reasons);

  let verdict: Verdict;
  if (virus.signature !== null || mime.result === 'fail' || lists.kind === 'block' || spoofed) verdict = 'quarantine';
  else if (dmarcActs) verdict = dmarc.action === 'reject' ? 'reject' : 'quarantine';
  else if (lists.kind === 'allow') verdict = 'deliver';
  else verdict = judged.status === 'reject' ? 'reject' : judged.status === 'spam' ? 'quarantine' : 'deliver';

  const checks = [spoofing, listsCheck(lists)].filter((c): c is CheckResult => c !== null);
  // Tagged: delivered mail at or above the tag score (allow-listed spam included: tagged with what was found).
  const tagged = verdict === 'deliver' && judged.status !== 'ham' && judged.spam.basis !== undefined;
  const headers = tagged && policy.subjectTag && accepted.direction === 'inbound' ? foldHeader('X-Moat-Subject-Tag', policy.subjectTag) : '';
  const unsettled = spoofing?.result === 'temperror' && !trusted && verdict === 'deliver' ? spoofing.reason : null;
  return { verdict, reasons, spam: judged.spam, checks, headers, unsettled };
}

/** One part of a message: these recipients get this outcome. */
export interface PolicyPart {
  rcptTo: string[];
  outcome: PolicyOutcome;
}

const partOrder: readonly Verdict[] = ['deliver', 'quarantine', 'reject'];

/** Outcomes with one verdict as one: the first's spam record and headers, every reason and check once. */
function mergeOutcomes(outcomes: readonly PolicyOutcome[]): PolicyOutcome {
  const first = outcomes[0]!;
  const reasons = [...new Set(outcomes.flatMap((o) => o.reasons))];
  const seen = new Set<string>();
  const checks = outcomes
    .flatMap((o) => o.checks)
    .filter((c) => {
      const key = `${c.check}\u0000${c.result}\u0000${c.reason}`;
      return seen.has(key) ? false : (seen.add(key), true);
    });
  return { ...first, reasons, checks, unsettled: outcomes.find((o) => o.unsettled !== null)?.unsettled ?? null };
}

/**
 * The tenant's policy per recipient (per-mailbox allow and block lists). The recipients are
 * grouped by what their own lists decide (blocked, allowed, unlisted), each group is judged as if
 * it were the message's only recipients, and groups with the same verdict form one part. One part
 * (every recipient the same verdict, the usual case) is the whole-message outcome; several parts
 * mean the message is split: a mailbox's block list keeps the message from that mailbox only, an
 * allow list lets it through to that mailbox only, and every other recipient gets what the
 * message deserves on its own. Parts come in the order deliver, quarantine, reject.
 */
export function applyTenantPolicyPerRecipient(input: PolicyInput): PolicyPart[] {
  const whole = applyTenantPolicy(input);
  const { accepted, tenant } = input;
  const inbound = accepted.direction === 'inbound' && input.auth !== null;
  const single = [{ rcptTo: [...accepted.rcptTo], outcome: whole }];
  if (!inbound || tenant.settings.entries.length === 0 || accepted.rcptTo.length < 2) return single;
  const fates = recipientFates(tenant.settings.entries, accepted.rcptTo, { mailFrom: accepted.mailFrom, headerFrom: tenant.headerFrom, clientIp: accepted.client.ip });
  const byFate = new Map<string, string[]>();
  for (const f of fates) byFate.set(f.fate, [...(byFate.get(f.fate) ?? []), f.rcpt]);
  if (byFate.size < 2) return single;
  const byVerdict = new Map<Verdict, { rcptTo: string[]; outcomes: PolicyOutcome[] }>();
  for (const rcptTo of byFate.values()) {
    const outcome = applyTenantPolicy({ ...input, accepted: { ...accepted, rcptTo } });
    const part = byVerdict.get(outcome.verdict) ?? { rcptTo: [], outcomes: [] };
    part.rcptTo.push(...rcptTo);
    part.outcomes.push(outcome);
    byVerdict.set(outcome.verdict, part);
  }
  if (byVerdict.size === 1) {
    // Every group ends the same way: one message, one verdict, as the lists would have it. The
    // whole-message outcome says why the lists decided nothing; it is used when it agrees.
    const [verdict, part] = [...byVerdict][0]!;
    return whole.verdict === verdict ? single : [{ rcptTo: [...accepted.rcptTo], outcome: mergeOutcomes(part.outcomes) }];
  }
  // Recipients keep their order within a part (the order the client gave them).
  const order = new Map(accepted.rcptTo.map((r, i) => [r, i]));
  return partOrder.flatMap((verdict) => {
    const part = byVerdict.get(verdict);
    return part ? [{ rcptTo: part.rcptTo.sort((a, b) => order.get(a)! - order.get(b)!), outcome: mergeOutcomes(part.outcomes) }] : [];
  });
}
