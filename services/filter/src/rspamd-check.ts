import type { CheckResult } from '@moat/contracts';
import { RspamdUnavailable, type RspamdEnvelope, type RspamdResult } from './rspamd.js';
import type { RetryWindow } from './retry-window.js';
import { engineScanner, type ScannerOutcome, type SpamScanner } from './spam-scanners.js';

/** Symbols named in the reason: enough to see why, short enough for the tracking view. */
const reasonSymbols = 5;

/**
 * rspamd's answer as a closed check result:
 * - `reject` (its score reached its reject threshold) → fail, and the message is quarantined
 *   whatever the other scores say (Moat quarantines where rspamd would reject at SMTP time: the
 *   message was accepted already, and quarantined mail can be found and released);
 * - `no action` → pass;
 * - `add header`, `rewrite subject`, `greylist`, `soft reject` and custom actions → neutral: rspamd
 *   has doubts, which its score carries into the combined score; nothing more.
 */
export function rspamdOutcome(result: RspamdResult, weight: number): ScannerOutcome {
  const result_: CheckResult['result'] = result.action === 'reject' ? 'fail' : result.action === 'no action' ? 'pass' : 'neutral';
  // The symbols that weigh most either way (GTUBE itself is reported with 0 points: it decides by action).
  const symbols = [...result.symbols]
    .sort((a, b) => Math.abs(b.score) - Math.abs(a.score) || a.name.localeCompare(b.name))
    .slice(0, reasonSymbols)
    .map((s) => `${s.name}(${formatPoints(s.score)})`);
  const more = result.symbols.length > reasonSymbols ? ` +${result.symbols.length - reasonSymbols} more` : '';
  return {
    scanner: 'rspamd',
    check: { check: 'rspamd', result: result_, reason: `${result.action}: score ${formatPoints(result.score)} (rspamd rejects at ${formatPoints(result.requiredScore)})${symbols.length > 0 ? `; ${symbols.join(' ')}${more}` : ''}` },
    verdict: { score: result.score, weight, action: result.action, forcesQuarantine: result.action === 'reject' },
    unavailable: false,
  };
}

function formatPoints(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/** The rspamd check: rspamd asked through `ask` (checkWithRspamd), its answer as an outcome. */
export function rspamdScanner(ask: (raw: Buffer, envelope: RspamdEnvelope) => Promise<RspamdResult>, opts: { weight: number; retry: RetryWindow }): SpamScanner {
  return engineScanner({ name: 'rspamd', ask, isUnavailable: (err) => err instanceof RspamdUnavailable, outcome: (result) => rspamdOutcome(result, opts.weight), retry: opts.retry });
}
