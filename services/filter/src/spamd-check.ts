import type { RetryWindow } from './retry-window.js';
import { engineScanner, type ScanEnvelope, type ScannerOutcome, type SpamScanner } from './spam-scanners.js';
import { SpamdUnavailable, type SpamdResult } from './spamd.js';

/** Rules named in the reason: enough to see why, short enough for the tracking view. */
const reasonSymbols = 8;

/**
 * spamd's answer as a closed check result: spam by its own threshold → fail, otherwise pass. Its
 * score (weighted) goes into the combined score; its own threshold forces nothing, as SpamAssassin
 * has no reject action: Moat's thresholds decide on the sum.
 */
export function spamdOutcome(result: SpamdResult, weight: number): ScannerOutcome {
  const rules = result.symbols.slice(0, reasonSymbols).join(' ');
  const more = result.symbols.length > reasonSymbols ? ` +${result.symbols.length - reasonSymbols} more` : '';
  const action = result.isSpam ? 'spam' : 'ham';
  return {
    scanner: 'spamd',
    check: { check: 'spamd', result: result.isSpam ? 'fail' : 'pass', reason: `${action}: score ${result.score} (spamd's threshold ${result.threshold})${rules ? `; ${rules}${more}` : ''}` },
    verdict: { score: result.score, weight, action, forcesQuarantine: false },
    unavailable: false,
  };
}

/**
 * What spamd is given: Moat's Received line on top of the message, as the recipient will see it.
 * The spamd protocol has no envelope fields; SpamAssassin reads the client's address, HELO and
 * reverse DNS name from that line (its relay and DNS rules work on it).
 */
export function spamdMessage(raw: Buffer, envelope: Pick<ScanEnvelope, 'received'>): Buffer {
  const trace = envelope.received === '' || envelope.received.endsWith('\r\n') ? envelope.received : `${envelope.received}\r\n`;
  return Buffer.concat([Buffer.from(trace, 'utf8'), raw]);
}

/** The spamd check: spamd asked through `ask` (checkWithSpamd) with the message as spamdMessage builds it. */
export function spamdScanner(ask: (message: Buffer) => Promise<SpamdResult>, opts: { weight: number; retry: RetryWindow }): SpamScanner {
  return engineScanner({ name: 'spamd', ask: (raw, envelope) => ask(spamdMessage(raw, envelope)), isUnavailable: (err) => err instanceof SpamdUnavailable, outcome: (result) => spamdOutcome(result, opts.weight), retry: opts.retry });
}
