/**
 * The chaos suite's verdict, as a pure function of what the clients were told, what the
 * customer's servers received and what Moat's tracking shows.
 *
 * Promise 1 and 2 (docs/DESIGN.md): every recipient of every message that got `250` ends in
 * exactly one visible fate, or is still visibly queued. A recipient is:
 * - delivered: the customer's server received the message for it (once; more is a duplicate);
 * - final: not received, but tracking shows a final fate (failed, bounced, expired, quarantined,
 *   rejected) — visible, the sender learns of it;
 * - queued: not received, tracking shows it in flight (received, queued, deferred) or a
 *   delivery row still holds it — it will be delivered or bounced later;
 * - parked: its event sits in the parking store (visible and replayable, but needs an operator);
 * - lost: none of these. The suite fails when any recipient is lost.
 * A message the client did not get `250` for counts as not accepted; if it reached the customer
 * anyway (the reply was lost on the way), that is reported as "delivered unacknowledged" (the
 * client will send it again: RFC 1047's duplicate).
 */

export interface ClientAttempt {
  chaosId: string;
  /** The recipients the server accepted at RCPT time. */
  rcpts: string[];
  /** Recipients refused at RCPT time (the client keeps them: not Moat's). */
  refusedRcpts?: string[];
  code: number;
}

export type TrackedStatus = 'received' | 'queued' | 'deferred' | 'delivered' | 'failed' | 'bounced' | 'quarantined' | 'rejected' | 'expired';

export interface Observations {
  /** chaos id → recipient (lower-case) → times the customer's servers received it. */
  received: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** chaos id → recipient (lower-case) → tracked status. */
  tracked: ReadonlyMap<string, ReadonlyMap<string, TrackedStatus>>;
  /** chaos id → recipients (lower-case) that a not-done delivery row still holds. */
  pendingDeliveries: ReadonlyMap<string, ReadonlySet<string>>;
  /** chaos ids with a parked event. */
  parked: ReadonlySet<string>;
}

export interface FaultReport {
  sent: number;
  accepted: number;
  /** Replies 4xx (the client retries later): fine during a fault. */
  tempRefused: number;
  /** Replies 5xx: never acceptable during a fault Moat should ride out. */
  permRefused: number;
  /** Connection lost before a reply. */
  dropped: number;
  /** Recipients refused at RCPT time within accepted messages (e.g. 451 while Postgres restarts). */
  refusedRcpts: number;
  /** Recipient counts from here on. */
  recipients: number;
  delivered: number;
  final: number;
  queued: number;
  parked: number;
  lost: number;
  /** Recipients received more than once (each extra copy counts). */
  duplicated: number;
  /** Recipients of not-accepted messages that reached the customer anyway. */
  deliveredUnacknowledged: number;
  /** Up to 10 examples of lost recipients, for the report. */
  lostExamples: string[];
}

const finalStatuses = new Set<TrackedStatus>(['failed', 'bounced', 'quarantined', 'rejected', 'expired', 'delivered']);
const inFlightStatuses = new Set<TrackedStatus>(['received', 'queued', 'deferred']);

export function reconcile(attempts: readonly ClientAttempt[], obs: Observations): FaultReport {
  const report: FaultReport = {
    sent: attempts.length,
    accepted: 0,
    tempRefused: 0,
    permRefused: 0,
    dropped: 0,
    refusedRcpts: 0,
    recipients: 0,
    delivered: 0,
    final: 0,
    queued: 0,
    parked: 0,
    lost: 0,
    duplicated: 0,
    deliveredUnacknowledged: 0,
    lostExamples: [],
  };
  for (const a of attempts) {
    const received = obs.received.get(a.chaosId);
    if (a.code !== 250) {
      if (a.code >= 500) report.permRefused++;
      else if (a.code >= 400) report.tempRefused++;
      else report.dropped++;
      for (const rcpt of a.rcpts) if ((received?.get(rcpt.toLowerCase()) ?? 0) > 0) report.deliveredUnacknowledged++;
      continue;
    }
    report.accepted++;
    report.refusedRcpts += a.refusedRcpts?.length ?? 0;
    // A recipient refused at RCPT that reached the customer anyway: the client will send it again.
    for (const rcpt of a.refusedRcpts ?? []) if ((received?.get(rcpt.toLowerCase()) ?? 0) > 0) report.deliveredUnacknowledged++;
    for (const rcpt of a.rcpts.map((r) => r.toLowerCase())) {
      report.recipients++;
      const times = received?.get(rcpt) ?? 0;
      if (times > 0) {
        report.delivered++;
        report.duplicated += times - 1;
        continue;
      }
      const status = obs.tracked.get(a.chaosId)?.get(rcpt);
      if (status && finalStatuses.has(status) && status !== 'delivered') report.final++;
      else if ((status && inFlightStatuses.has(status)) || obs.pendingDeliveries.get(a.chaosId)?.has(rcpt)) report.queued++;
      else if (obs.parked.has(a.chaosId)) report.parked++;
      else {
        // Tracking says delivered but the customer has no copy: that is a loss too.
        report.lost++;
        if (report.lostExamples.length < 10) report.lostExamples.push(`${a.chaosId} → ${rcpt} (tracking: ${status ?? 'nothing'})`);
      }
    }
  }
  return report;
}

/** The printed table: one row per fault. */
export function formatTable(rows: ReadonlyArray<{ fault: string; report: FaultReport }>): string {
  const cols = ['sent', 'accepted', '4xx', '5xx', 'dropped', 'rcpt 4xx', 'rcpts', 'delivered', 'bounced', 'queued', 'parked', 'lost', 'dup', 'unacked'];
  const width = Math.max(...rows.map((r) => r.fault.length), 5);
  const head = `${'fault'.padEnd(width)}  ${cols.map((c) => c.padStart(9)).join('')}`;
  const lines = rows.map(({ fault, report: r }) => {
    const values = [r.sent, r.accepted, r.tempRefused, r.permRefused, r.dropped, r.refusedRcpts, r.recipients, r.delivered, r.final, r.queued, r.parked, r.lost, r.duplicated, r.deliveredUnacknowledged];
    return `${fault.padEnd(width)}  ${values.map((v) => String(v).padStart(9)).join('')}`;
  });
  return [head, ...lines].join('\n');
}
