import type { Config } from './config.js';
import { checkWithRspamd } from './rspamd.js';
import { rspamdScanner } from './rspamd-check.js';
import { parseHostPort } from './scanner-config.js';
import { SpamScanners, type SpamScanner } from './spam-scanners.js';
import { checkWithSpamd } from './spamd.js';
import { spamdScanner } from './spamd-check.js';

/** The external spam engines MOAT_RSPAMD_URL and MOAT_SPAMD_ADDRESS name; neither set: an empty set. */
export function spamScannersFromConfig(config: Config): SpamScanners {
  const scanners: SpamScanner[] = [];
  const rspamdUrl = config.MOAT_RSPAMD_URL;
  if (rspamdUrl) {
    const opts = { url: rspamdUrl, timeoutMs: config.MOAT_RSPAMD_TIMEOUT_MS, password: config.MOAT_RSPAMD_PASSWORD ?? null };
    scanners.push(rspamdScanner((raw, envelope) => checkWithRspamd(raw, envelope, opts), { weight: config.MOAT_RSPAMD_WEIGHT, retry: { forMs: config.MOAT_RSPAMD_RETRY_MS, everyMs: 1_000 } }));
  }
  if (config.MOAT_SPAMD_ADDRESS) {
    const opts = { ...parseHostPort(config.MOAT_SPAMD_ADDRESS), timeoutMs: config.MOAT_SPAMD_TIMEOUT_MS };
    scanners.push(spamdScanner((message) => checkWithSpamd(message, opts), { weight: config.MOAT_SPAMD_WEIGHT, retry: { forMs: config.MOAT_SPAMD_RETRY_MS, everyMs: 1_000 } }));
  }
  return new SpamScanners(scanners);
}
