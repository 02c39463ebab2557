import type { CheckResult } from '@moat/contracts';
import { ClamdUnavailable, type ClamdVerdict } from './clamd.js';
import { retryWithin, type RetryWindow } from './retry-window.js';

/** What to do with a message when the virus scanner gives no verdict (down, timed out, refused it). */
export type ScannerUnavailablePolicy = 'retry' | 'deliver';

export interface VirusCheckOutcome {
  check: CheckResult;
  /** The virus found; null when none was (or no scan happened). */
  signature: string | null;
  /** The scan was asked for and gave no verdict. */
  unavailable: boolean;
}

/**
 * The virus check: a closed result from a scanner (clamd) or from its absence. A scanner that
 * cannot answer is an `error` — never a `pass` — and the caller applies the policy for it.
 */
export async function checkForViruses(
  raw: Buffer,
  scan: ((raw: Buffer) => Promise<ClamdVerdict>) | null,
  retry: RetryWindow = { forMs: 0, everyMs: 1_000 },
): Promise<VirusCheckOutcome> {
  if (!scan) return { check: { check: 'virus', result: 'skip', reason: 'no virus scanner configured' }, signature: null, unavailable: false };
  try {
    const verdict = await retryWithin(() => scan(raw), (err) => err instanceof ClamdUnavailable, retry);
    if (verdict.infected) return { check: { check: 'virus', result: 'fail', reason: `virus found: ${verdict.signature}` }, signature: verdict.signature, unavailable: false };
    return { check: { check: 'virus', result: 'pass', reason: 'no virus found' }, signature: null, unavailable: false };
  } catch (err) {
    const reason = err instanceof ClamdUnavailable ? err.message : `virus scan failed: ${(err as Error).message}`;
    return { check: { check: 'virus', result: 'error', reason }, signature: null, unavailable: true };
  }
}
