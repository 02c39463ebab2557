import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { arc, dkimVerify, dmarc, spf, type ARCData, type ARCResult, type AuthStatus, type DKIMVerifyResult, type DMARCResult, type DNSResolver, type SPFResult } from 'mailauth';
import type { CheckResult } from '@moat/contracts';
import type { DnsResolve, Logger } from '@moat/runtime';

/**
 * Message authentication (SPF, DKIM, ARC, DMARC) with mailauth.
 *
 * This runs mailauth's own check functions in the order and with the inputs its
 * `authenticate()` uses (mailauth 4.13 lib/mailauth.js), and joins the result lines mailauth
 * formats (`info`) into the Authentication-Results value the way `authenticate()` does. Running
 * the steps ourselves, rather than calling `authenticate()`, gives each check:
 * - its own duration (logged, and returned for the benchmark's per-check latency);
 * - its own time bound: a check that hangs on a slow DNS server becomes a temperror and the
 *   message moves on (fail soft), instead of the whole handler timing out and being redelivered
 *   until it parks;
 * - DKIM and SPF side by side (they are independent), which halves the DNS wait.
 * A unit test pins the joined header to `authenticate()`'s output for the same input.
 */

export type AuthCheck = 'dkim' | 'spf' | 'arc' | 'dmarc';
export type CheckStatus = CheckResult['result'];

export interface AuthInput {
  ip: string;
  helo: string;
  /** MAIL FROM; the empty string is the null reverse-path (RFC 5321 §4.5.5). */
  mailFrom: string;
}

export interface AuthOptions {
  /** authserv-id of the Authentication-Results header (RFC 8601 §2.5). */
  authservId: string;
  resolver: DnsResolve;
  checkTimeoutMs: number;
  log: Logger;
}

export interface AuthOutcome {
  checks: CheckResult[];
  /** Authentication-Results header value, unfolded: `authserv-id; resinfo; resinfo…` (RFC 8601 §2.2). */
  authResults: string;
  /** Wall time of each check in milliseconds. */
  durations: Record<AuthCheck, number>;
  /** What tenant policy (anti-spoofing, DMARC handling) reads instead of re-parsing the reasons. */
  evidence: AuthEvidence;
}

/** The authentication facts tenant policy decides on (sender-auth.ts). */
export interface AuthEvidence {
  /** SPF's result and the domain it was evaluated for (MAIL FROM's, or HELO's for a bounce); null when it did not complete. */
  spf: { result: CheckStatus; domain: string | null } | null;
  /** Signing domains (d=) of the DKIM signatures that verified, lower case; null when DKIM did not complete. */
  dkimPass: string[] | null;
  /** DMARC's result and, when the domain has a record, the policy it asks for (sp= for a subdomain) and its pct=. */
  dmarc: { result: CheckStatus; policy: 'none' | 'quarantine' | 'reject' | null; pct: number | null };
}

function dmarcPolicy(value: string | undefined): AuthEvidence['dmarc']['policy'] {
  const p = (value ?? '').toLowerCase();
  return p === 'none' || p === 'quarantine' || p === 'reject' ? p : null;
}

class CheckTimedOut extends Error {
  constructor(
    readonly check: AuthCheck,
    readonly ms: number,
  ) {
    super(`${check} check timed out after ${ms} ms`);
  }
}

type Attempt<T> = { ok: true; value: T; ms: number } | { ok: false; error: Error; ms: number };

/** Runs one check within its bound and measures it. A check that throws or overruns is reported, never rethrown. */
async function attempt<T>(check: AuthCheck, timeoutMs: number, run: () => Promise<T>): Promise<Attempt<T>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimedOut(check, timeoutMs)), timeoutMs);
  });
  try {
    // The losing promise keeps running in the background; race() holds a handler on it, so its
    // late rejection is never an unhandled one.
    const value = await Promise.race([run(), deadline]);
    return { ok: true, value, ms: performance.now() - started };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err : new Error(String(err)), ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** mailauth status values onto the contract's closed vocabulary. */
export function toCheckStatus(result: AuthStatus['result'] | string | undefined): CheckStatus {
  switch (result) {
    case 'pass':
    case 'fail':
    case 'neutral':
    case 'none':
    case 'softfail':
    case 'temperror':
    case 'permerror':
    case 'policy':
      return result;
    // mailauth spells a temporary error `temperr` in a few places and a skipped check `skipped`.
    case 'temperr':
      return 'temperror';
    case 'skipped':
      return 'skip';
    default:
      return 'error';
  }
}

/** An RFC 8601 comment (§2.2 uses RFC 5322 comments): no parentheses, backslashes or line breaks inside. */
function comment(text: string): string {
  return `(${text.replace(/[()\\]/g, ' ').replace(/\s+/g, ' ').trim()})`;
}

function failureReason(err: Error): string {
  return err instanceof CheckTimedOut ? err.message : `check failed: ${err.message}`;
}

function dkimCheck(result: DKIMVerifyResult): CheckResult {
  const rows = result.results ?? [];
  // One CheckResult per method: a message passes DKIM when any signature verifies (RFC 6376 §6.1).
  const best = rows.find((r) => r.status.result === 'pass') ?? rows[0];
  const reason = rows
    .map((r) => {
      const who = r.signingDomain ? `d=${r.signingDomain}${r.selector ? ` s=${r.selector}` : ''}: ` : '';
      return `${who}${r.status.result}${r.status.comment ? ` (${r.status.comment})` : ''}`;
    })
    .join('; ');
  return { check: 'dkim', result: toCheckStatus(best?.status.result ?? 'none'), reason: reason || 'no signatures' };
}

function statusCheck(check: AuthCheck, status: AuthStatus, fallback: string): CheckResult {
  const text = typeof status.comment === 'string' && status.comment ? status.comment : fallback;
  return { check, result: toCheckStatus(status.result), reason: text };
}

export async function authenticateMessage(raw: Buffer, input: AuthInput, opts: AuthOptions): Promise<AuthOutcome> {
  const resolver = opts.resolver as unknown as DNSResolver;
  const timeout = opts.checkTimeoutMs;

  // Same identity handling as mailauth's authenticate(): the HELO name defaults to the client IP,
  // and an address literal is written in brackets (RFC 5321 §4.1.3).
  let helo = input.helo || input.ip;
  if (isIP(helo)) helo = `[${helo}]`;

  const [dkimAttempt, spfAttempt] = await Promise.all([
    attempt('dkim', timeout, () => dkimVerify(raw, { resolver, sender: input.mailFrom })),
    // With the null reverse-path mailauth checks the HELO identity, as RFC 7208 §2.4 asks.
    attempt('spf', timeout, () => spf({ sender: input.mailFrom, ip: input.ip, helo, mta: opts.authservId, resolver })),
  ]);

  const checks: CheckResult[] = [];
  const resinfos: string[] = [];

  if (dkimAttempt.ok) {
    checks.push(dkimCheck(dkimAttempt.value));
    for (const row of dkimAttempt.value.results ?? []) resinfos.push(row.info);
  } else {
    checks.push({ check: 'dkim', result: 'temperror', reason: failureReason(dkimAttempt.error) });
    resinfos.push(`dkim=temperror ${comment(failureReason(dkimAttempt.error))}`);
  }

  let spfResult: SPFResult | null = null;
  if (spfAttempt.ok) {
    spfResult = spfAttempt.value;
    checks.push(statusCheck('spf', spfResult.status, spfResult.status.result));
    resinfos.push(spfResult.info);
  } else {
    checks.push({ check: 'spf', result: 'temperror', reason: failureReason(spfAttempt.error) });
    resinfos.push(`spf=temperror ${comment(failureReason(spfAttempt.error))}`);
  }

  // ARC (RFC 8617) reads the chain the DKIM pass parsed out of the header.
  let arcResult: ARCResult | null = null;
  let arcMs = 0;
  if (dkimAttempt.ok) {
    const dkim = dkimAttempt.value;
    const arcAttempt = await attempt('arc', timeout, () => arc(dkim.arc as unknown as ARCData, { resolver }));
    arcMs = arcAttempt.ms;
    if (arcAttempt.ok) {
      arcResult = arcAttempt.value;
      checks.push(statusCheck('arc', arcResult.status, arcResult.status.result === 'none' ? 'no ARC chain' : arcResult.status.result));
      if (arcResult.info) resinfos.push(arcResult.info);
    } else {
      // RFC 8617 §4.4 registers only none/pass/fail for arc=: a check we could not finish is
      // recorded here but left out of the header rather than claimed as a chain failure.
      checks.push({ check: 'arc', result: 'temperror', reason: failureReason(arcAttempt.error) });
    }
  } else {
    checks.push({ check: 'arc', result: 'temperror', reason: 'not evaluated: the message headers could not be read' });
  }

  // DMARC (RFC 7489 §3.1) needs the outcome of SPF and DKIM; when one of them did not finish,
  // a `fail` would be a guess, so the honest answer is temperror.
  let dmarcMs = 0;
  let dmarcEvidence: AuthEvidence['dmarc'] = { result: 'none', policy: null, pct: null };
  if (!dkimAttempt.ok || !spfAttempt.ok) {
    const reason = 'not evaluated: the SPF or DKIM check did not complete';
    checks.push({ check: 'dmarc', result: 'temperror', reason });
    resinfos.push(`dmarc=temperror ${comment(reason)}`);
  } else if (dkimAttempt.value.headerFrom && dkimAttempt.value.headerFrom.length > 0) {
    const dkim = dkimAttempt.value;
    const dmarcAttempt = await attempt('dmarc', timeout, () =>
      dmarc({
        headerFrom: dkim.headerFrom,
        spfDomains: spfResult && spfResult.status.result === 'pass' && spfResult.domain ? [spfResult.domain] : [],
        dkimDomains: (dkim.results ?? [])
          .filter((r) => r.status.result === 'pass')
          .map((r) => ({ id: r.id, domain: r.signingDomain, aligned: r.status.aligned, underSized: r.status.underSized })),
        ...(arcResult ? { arcResult } : {}),
        resolver,
      }),
    );
    dmarcMs = dmarcAttempt.ms;
    if (!dmarcAttempt.ok) {
      checks.push({ check: 'dmarc', result: 'temperror', reason: failureReason(dmarcAttempt.error) });
      resinfos.push(`dmarc=temperror ${comment(failureReason(dmarcAttempt.error))}`);
    } else if (dmarcAttempt.value === false) {
      // mailauth declines a message with several From addresses (RFC 7489 §6.6.1).
      checks.push({ check: 'dmarc', result: 'permerror', reason: 'the From header has more than one address' });
    } else {
      const d: DMARCResult = dmarcAttempt.value;
      dmarcEvidence = { result: toCheckStatus(d.status.result), policy: dmarcPolicy(d.policy), pct: typeof d.pct === 'number' ? d.pct : null };
      checks.push(statusCheck('dmarc', d.status, d.status.result === 'none' ? 'no DMARC policy' : d.policy ? `policy ${d.policy}` : d.status.result));
      if (d.info) resinfos.push(d.info);
    }
  } else {
    checks.push({ check: 'dmarc', result: 'none', reason: 'the message has no From header domain' });
  }

  const durations: Record<AuthCheck, number> = { dkim: dkimAttempt.ms, spf: spfAttempt.ms, arc: arcMs, dmarc: dmarcMs };
  for (const check of checks) {
    opts.log.debug({ check: check.check, ms: Math.round(durations[check.check as AuthCheck] * 1000) / 1000, result: check.result }, 'auth check done');
  }

  // The DMARC record pushed last; a policy only when the domain's record was read.
  const dmarcCheck = checks[checks.length - 1]!;
  if (dmarcEvidence.policy === null) dmarcEvidence = { result: dmarcCheck.result, policy: null, pct: null };
  const evidence: AuthEvidence = {
    spf: spfResult ? { result: toCheckStatus(spfResult.status.result), domain: spfResult.domain ? spfResult.domain.toLowerCase() : null } : null,
    dkimPass: dkimAttempt.ok ? (dkimAttempt.value.results ?? []).filter((r) => r.status.result === 'pass' && r.signingDomain).map((r) => r.signingDomain!.toLowerCase()) : null,
    dmarc: dmarcEvidence,
  };
  return { checks, authResults: [opts.authservId, ...resinfos].join('; '), durations, evidence };
}
