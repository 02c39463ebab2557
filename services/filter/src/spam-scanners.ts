import type { CheckResult, MessageAcceptedPayload } from '@moat/contracts';
import { retryWithin, type RetryWindow } from './retry-window.js';

/**
 * External spam engines (rspamd, SpamAssassin's spamd) that judge a message in addition to the
 * built-in classifier when they are configured. Each yields one closed check record and, when it
 * gave a verdict, points that spam/combine-scanners.ts adds to the built-in score.
 */

/** The SMTP context an engine judges a message in: the real client, not Moat. */
export interface ScanEnvelope {
  ip: string;
  helo: string;
  /** MAIL FROM; empty for a bounce. */
  mailFrom: string;
  rcptTo: readonly string[];
  /** Moat's message id, so one message can be found in the engine's log too. */
  queueId: string;
  /** The client's reverse DNS name, when there was one. */
  hostname: string | null;
  /** The trace header block Moat prepends on delivery (its Received line: client, HELO, time), CRLF-terminated. */
  received: string;
}

/** An engine's verdict, as the combined score uses it. */
export interface ScannerVerdict {
  /** The engine's own score, on its own scale. */
  score: number;
  /** Points per point of the engine's score in the combined score (MOAT_RSPAMD_WEIGHT, MOAT_SPAMD_WEIGHT). */
  weight: number;
  /** The engine's own answer in one word (rspamd's action; spamd's True/False as `spam`/`ham`). */
  action: string;
  /** The engine would refuse the message outright: the combined score is at least the quarantine score. */
  forcesQuarantine: boolean;
}

export interface ScannerOutcome {
  /** `rspamd`, `spamd`: also the check's name. */
  scanner: string;
  check: CheckResult;
  /** null when the engine gave no verdict. */
  verdict: ScannerVerdict | null;
  /** The engine was asked and gave no verdict (down, timed out, a reply that is not one): the scanner-unavailable policy applies. */
  unavailable: boolean;
}

export interface SpamScanner {
  scan(raw: Buffer, envelope: ScanEnvelope): Promise<ScannerOutcome>;
}

/** The envelope of an accepted message, as the engines are told it. */
export function scanEnvelope(accepted: ScannedMessage): ScanEnvelope {
  return { ip: accepted.client.ip, helo: accepted.client.helo, mailFrom: accepted.mailFrom, rcptTo: accepted.rcptTo, queueId: accepted.messageId, hostname: accepted.client.ptr, received: accepted.prependHeaders };
}

type ScannedMessage = Pick<MessageAcceptedPayload, 'messageId' | 'mailFrom' | 'rcptTo' | 'client' | 'prependHeaders'>;

/**
 * An engine as a scanner: asks it (retrying while `isUnavailable` says it could not answer, within
 * the window), and turns its answer into an outcome. No verdict is an `error` with `unavailable`
 * set, never a pass: the filter applies the scanner-unavailable policy to it.
 */
export function engineScanner<R>(opts: {
  name: string;
  ask: (raw: Buffer, envelope: ScanEnvelope) => Promise<R>;
  isUnavailable: (err: unknown) => boolean;
  outcome: (result: R) => ScannerOutcome;
  retry: RetryWindow;
}): SpamScanner {
  return {
    async scan(raw, envelope) {
      try {
        return opts.outcome(await retryWithin(() => opts.ask(raw, envelope), opts.isUnavailable, opts.retry));
      } catch (err) {
        const reason = opts.isUnavailable(err) ? (err as Error).message : `${opts.name} check failed: ${(err as Error).message}`;
        return { scanner: opts.name, check: { check: opts.name, result: 'error', reason }, verdict: null, unavailable: true };
      }
    },
  };
}

/** The configured engines, asked side by side; none configured: no outcomes (and no check records). */
export class SpamScanners {
  constructor(private readonly scanners: readonly SpamScanner[]) {}

  get configured(): boolean {
    return this.scanners.length > 0;
  }

  run(raw: Buffer, accepted: ScannedMessage): Promise<ScannerOutcome[]> {
    const envelope = scanEnvelope(accepted);
    return Promise.all(this.scanners.map((s) => s.scan(raw, envelope)));
  }
}

/** The engines that gave no verdict, for the policy and the log ("rspamd, spamd"); empty when all answered. */
export function unavailableScanners(outcomes: readonly ScannerOutcome[]): string[] {
  return outcomes.filter((o) => o.unavailable).map((o) => `${o.scanner} (${o.check.reason})`);
}
