import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { Logger } from '@moat/runtime';
import type { GreylistingPolicy } from '@moat/store';
import { withinDeadline } from './check-deadline.js';
import { clientKey, unmappedIp } from './client-connections.js';

/**
 * Greylisting (RFC 6647): the first delivery attempt of an unknown (client network, sender,
 * recipient) triplet is refused temporarily; a real MTA retries after a few minutes and from then
 * on the triplet passes, while most spam software never retries.
 */

/** The triplet's client part: the /24 of an IPv4 address, the /64 of an IPv6 one (RFC 6647 §4.2: big senders retry from a neighbouring address of a pool). */
export function greylistNetwork(ip: string): string {
  const address = unmappedIp(ip);
  if (isIPv4(address)) return `${address.split('.').slice(0, 3).join('.')}.0/24`;
  return clientKey(address);
}

/**
 * The sender as the triplet keeps it: lower-cased, without a subaddress tag, digit runs of the
 * local part folded to `#` — bounce and list software (VERP, SRS, BATV) writes a fresh token
 * into the sender of every attempt, and such a sender would never pass otherwise (postgrey does
 * the same). The null sender stays `<>`.
 */
export function greylistSender(mailFrom: string): string {
  const address = mailFrom.trim().toLowerCase();
  if (address === '') return '<>';
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? '' : address.slice(at);
  const plus = local.indexOf('+');
  return `${(plus > 0 ? local.slice(0, plus) : local).replace(/[0-9]+/g, '#')}${domain}`;
}

export function greylistKey(tenantId: string, ip: string, mailFrom: string, rcpt: string): string {
  const triplet = `${greylistNetwork(ip)}\u0000${greylistSender(mailFrom)}\u0000${rcpt.toLowerCase()}`;
  return `greylist:${tenantId}:${createHash('sha256').update(triplet).digest('base64url')}`;
}

export type GreylistVerdict =
  /** Never seen (or its retry window passed): refused, first attempt remembered. */
  | 'first'
  /** Seen, but the delay has not passed: refused again (the first attempt's time stays). */
  | 'early'
  /** A retry after the delay, within the window: passes, and the triplet is whitelisted. */
  | 'retried'
  /** Whitelisted earlier: passes (the whitelisting is renewed). */
  | 'whitelisted';

/** What to write back: the entry's value (first-attempt time in ms, or `pass`) and its lifetime. */
export interface GreylistWrite {
  value: string;
  ttlMs: number;
  /** Write only when absent (the first attempt: two replicas racing keep the earlier one). */
  onlyIfAbsent: boolean;
}

/** The decision for one attempt, from the stored entry (null: none). Pure. */
export function decideGreylist(stored: string | null, nowMs: number, policy: GreylistingPolicy): { verdict: GreylistVerdict; write: GreylistWrite | null } {
  const delayMs = policy.delaySeconds * 1000;
  const windowMs = policy.retryWindowHours * 3_600_000;
  const pass: GreylistWrite = { value: 'pass', ttlMs: policy.passTtlDays * 86_400_000, onlyIfAbsent: false };
  if (stored === 'pass') return { verdict: 'whitelisted', write: pass };
  const firstSeen = stored === null ? Number.NaN : Number(stored);
  // Unknown, unreadable, or older than the window (the entry's TTL normally ends it first).
  if (!Number.isFinite(firstSeen) || nowMs - firstSeen > windowMs) {
    return { verdict: 'first', write: { value: String(nowMs), ttlMs: windowMs, onlyIfAbsent: stored === null } };
  }
  if (nowMs - firstSeen < delayMs) return { verdict: 'early', write: null };
  return { verdict: 'retried', write: pass };
}

/** The two Redis operations greylisting needs (service.ts adapts ioredis). */
export interface GreylistStore {
  get(key: string): Promise<string | null>;
  set(key: string, write: GreylistWrite): Promise<void>;
}

export type GreylistResult = { result: 'pass'; verdict: GreylistVerdict } | { result: 'greylisted'; verdict: GreylistVerdict } | { result: 'error' };

export class Greylist {
  constructor(
    private readonly store: GreylistStore,
    private readonly opts: { timeoutMs: number; now?: () => number },
    private readonly log: Logger,
  ) {}

  /**
   * One attempt of the triplet. Redis unreachable or slow: the attempt passes (fails open, logged)
   * — greylisting only delays, and delaying every message while Redis is away would be an outage.
   */
  async check(tenantId: string, ip: string, mailFrom: string, rcpt: string, policy: GreylistingPolicy): Promise<GreylistResult> {
    const key = greylistKey(tenantId, ip, mailFrom, rcpt);
    try {
      return await withinDeadline(this.attempt(key, policy), this.opts.timeoutMs, 'greylisting');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, tenantId, client: ip }, 'greylisting not checked (Redis unavailable): passing');
      return { result: 'error' };
    }
  }

  private async attempt(key: string, policy: GreylistingPolicy): Promise<GreylistResult> {
    const decision = decideGreylist(await this.store.get(key), (this.opts.now ?? Date.now)(), policy);
    if (decision.write) await this.store.set(key, decision.write);
    const passes = decision.verdict === 'retried' || decision.verdict === 'whitelisted';
    return { result: passes ? 'pass' : 'greylisted', verdict: decision.verdict };
  }
}
