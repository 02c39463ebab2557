import type { MessageEventPayload, SmtpReply } from '@moat/contracts';
import type { Logger, MoatError } from '@moat/runtime';

/** Which SMTP-time check refused a recipient (the closed set tracking and logs show). */
export type SmtpCheck = 'recipient-verification' | 'dnsbl' | 'greylisting' | 'rate-limit';

/** One recipient of a protected domain refused at RCPT. */
export interface Refusal {
  /** Fresh per refused transaction (MAIL FROM … RCPT …): the message id tracking shows it under. */
  transactionId: string;
  tenantId: string;
  rcpt: string;
  check: SmtpCheck;
  /** Why, in a word tracking can filter on (`unknown-user`, `listed`, `first`, `messages`…). */
  why: string;
  reply: MoatError;
  client: { ip: string; helo: string };
  mailFrom: string;
  /** When the transaction's first refusal happened (the tracked message's receivedAt). */
  at: Date;
  /** The DNSBL zone that listed the client, when that was the reason. */
  zone?: string;
}

/** The reply as tracking stores it: `451 4.7.1 text` → code, enhanced status, text. */
export function trackedReply(reply: MoatError): SmtpReply {
  const enhanced = reply.enhancedStatus ?? null;
  const text = enhanced && reply.message.startsWith(`${enhanced} `) ? reply.message.slice(enhanced.length + 1) : reply.message;
  return { code: reply.responseCode ?? null, enhanced, text };
}

/**
 * The message.events for a set of refusals: one `rejected` event per (transaction, reply), so a
 * transaction with several refused recipients costs one event per distinct reply, and each
 * recipient keeps the reply it got (tracking takes the event's reply for all its recipients).
 */
export function rejectionEvents(refusals: readonly Refusal[]): MessageEventPayload[] {
  const groups = new Map<string, { first: Refusal; rcpts: string[] }>();
  for (const r of refusals) {
    const key = `${r.transactionId}\u0000${r.reply.responseCode}\u0000${r.reply.message}`;
    const group = groups.get(key);
    if (!group) groups.set(key, { first: r, rcpts: [r.rcpt] });
    else if (!group.rcpts.includes(r.rcpt)) group.rcpts.push(r.rcpt);
  }
  return [...groups.values()].map(({ first: r, rcpts }) => ({
    messageId: r.transactionId,
    tenantId: r.tenantId,
    kind: 'rejected' as const,
    rcpt: rcpts.map((a) => clip(a, maxAddress)),
    detail: { stage: 'smtp', check: r.check, why: r.why, clientIp: r.client.ip, reply: trackedReply(r.reply), ...(r.zone ? { zone: r.zone } : {}) },
    refused: { direction: 'inbound' as const, mailFrom: clip(r.mailFrom, maxAddress), client: { ip: r.client.ip, helo: clip(r.client.helo, maxHelo) }, receivedAt: r.at.toISOString() },
  }));
}

/**
 * The contract's bounds (RFC 5321 §4.5.3.1: a path is at most 256 octets, a domain 255). A client
 * may send longer ones on a command line of up to MOAT_SMTP_MAX_COMMAND_LINE_BYTES; clipped here,
 * tracking still shows the refusal instead of the tracker parking an event it cannot store.
 */
const maxAddress = 320;
const maxHelo = 255;

function clip(value: string, max: number): string {
  return value.length <= max ? value : value.slice(0, max);
}

export interface RejectionTrackerOptions {
  /** How often refusals are published (and the counters logged). */
  flushMs: number;
  /** Events published per flush at most; refusals beyond are counted in the log only. */
  maxEventsPerFlush: number;
}

/**
 * Makes SMTP-time refusals visible in message tracking without letting a flood of them load the
 * broker: refusals are buffered and published every `flushMs` as rejected message.events (see
 * rejectionEvents), at most `maxEventsPerFlush` per flush; what is over that budget is not
 * published but counted, and every flush logs the counts per tenant and check ("smtp
 * refusals"). Publishing is best effort — the client already has its reply and nothing was
 * accepted, so a broker outage costs tracking entries, never mail (logged as a warning).
 */
export class RejectionTracker {
  private pending: Refusal[] = [];
  private pendingEvents = new Set<string>();
  private counts = new Map<string, { tenantId: string; check: SmtpCheck; tracked: number; untracked: number }>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly publish: (payload: MessageEventPayload) => Promise<void>,
    private readonly opts: RejectionTrackerOptions,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.flush(), opts.flushMs);
    this.timer.unref();
  }

  record(refusal: Refusal): void {
    const eventKey = `${refusal.transactionId}\u0000${refusal.reply.responseCode}\u0000${refusal.reply.message}`;
    const countKey = `${refusal.tenantId}\u0000${refusal.check}`;
    const count = this.counts.get(countKey) ?? { tenantId: refusal.tenantId, check: refusal.check, tracked: 0, untracked: 0 };
    this.counts.set(countKey, count);
    // A recipient joining an event already pending costs nothing more; a new event needs budget.
    if (!this.pendingEvents.has(eventKey) && this.pendingEvents.size >= this.opts.maxEventsPerFlush) {
      count.untracked++;
      return;
    }
    this.pendingEvents.add(eventKey);
    this.pending.push(refusal);
    count.tracked++;
  }

  /** Publishes what is pending and logs the counts; resolves when the publishes settled. */
  flush(): Promise<void> {
    const refusals = this.pending;
    const counts = [...this.counts.values()];
    this.pending = [];
    this.pendingEvents = new Set();
    this.counts = new Map();
    if (counts.length > 0) {
      const untracked = counts.reduce((n, c) => n + c.untracked, 0);
      this.log[untracked > 0 ? 'warn' : 'info']({ refusals: counts, untracked }, untracked > 0 ? 'smtp refusals (over the tracking budget: some not tracked)' : 'smtp refusals');
    }
    if (refusals.length === 0) return this.flushing;
    const events = rejectionEvents(refusals);
    const run = Promise.allSettled(events.map((e) => this.publish(e))).then((results) => {
      const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      if (failed.length > 0) this.log.warn({ failed: failed.length, of: events.length, err: (failed[0]!.reason as Error).message }, 'tracking SMTP refusals failed; those refusals are in the log only');
    });
    this.flushing = this.flushing.then(() => run);
    return this.flushing;
  }

  /** Stops the timer and publishes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
