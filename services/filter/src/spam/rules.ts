import type { CheckResult } from '@moat/contracts';
import type { SpamInput } from './parse.js';

/**
 * Hand-written rules with weights, added to the classifier's score (0–10, see classify.ts).
 * Each rule names a fact that the word statistics cannot see (an authentication result) or
 * that is decisive on its own (GTUBE, an executable). Weights stay small for the soft signals so
 * that no single one of them quarantines a message the classifier thinks is ham: they tip an
 * unsure message, they do not overrule clear evidence. The decisive ones are above the
 * quarantine threshold by themselves.
 */

export interface RuleHit {
  rule: string;
  weight: number;
  detail: string;
}

export interface RuleContext {
  input: SpamInput;
  raw: Buffer;
  /** The authentication checks' results; empty when they were not run (the eval command). */
  auth: readonly CheckResult[];
}

/**
 * GTUBE, the Generic Test for Unsolicited Bulk Email (SpamAssassin): any message carrying it is
 * spam by definition, so an operator can test the spam path end to end.
 */
export const gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** File types that run when opened on Windows or in a browser; no business mail needs them unpacked. */
const executableExtensions = new Set([
  'exe', 'scr', 'pif', 'com', 'bat', 'cmd', 'vbs', 'vbe', 'js', 'jse', 'jar', 'lnk', 'hta', 'msi', 'ps1', 'cpl', 'wsf', 'wsh', 'reg', 'msc', 'iso', 'img',
]);

export const ruleWeights = {
  GTUBE: 1000,
  EXECUTABLE_ATTACHMENT: 6,
  AUTH_DMARC_FAIL: 2,
  AUTH_SPF_FAIL: 1,
  AUTH_SPF_SOFTFAIL: 0.3,
  AUTH_DKIM_FAIL: 0.5,
  FROM_NAME_OTHER_ADDRESS: 1.5,
  URL_TEXT_MISMATCH: 1,
  MISSING_FROM: 0.3,
  MISSING_DATE: 0.2,
  MISSING_MESSAGE_ID: 0.2,
} as const;

export type RuleName = keyof typeof ruleWeights;

/** The registrable part of a host name, roughly: the last two labels, three under a two-letter ccTLD's short second level (example.co.uk). */
export function baseDomain(host: string): string {
  const labels = host.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length <= 2) return labels.join('.');
  const tld = labels[labels.length - 1]!;
  const second = labels[labels.length - 2]!;
  const keep = tld.length === 2 && second.length <= 3 ? 3 : 2;
  return labels.slice(-keep).join('.');
}

function hrefHost(href: string): string | null {
  const m = /^(?:https?:)?\/\/([^/?#:\s@]+@)?([^/?#:\s]+)/i.exec(href.trim());
  return m?.[2] ? m[2].toLowerCase() : null;
}

/**
 * A link text that itself reads as a full web address: "https://bank.com/login", "www.bank.com".
 * A bare "example.com" does not count: newsletters show their own name and link through a click
 * tracker, which on the SpamAssassin ham is the most common mismatch of all.
 */
function textHost(text: string): string | null {
  const m = /^(?:https?:\/\/|www\.)((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#]\S*)?$/i.exec(text.trim());
  if (m?.[0].toLowerCase().startsWith('www.')) return `www.${m[1]!.toLowerCase()}`;
  return m?.[1] ? m[1].toLowerCase() : null;
}

function authResult(auth: readonly CheckResult[], check: string): CheckResult['result'] | undefined {
  return auth.find((c) => c.check === check)?.result;
}

function hasHeader(input: SpamInput, key: string): boolean {
  return input.headers.some((h) => h.key === key);
}

export function evaluateRules(ctx: RuleContext): RuleHit[] {
  const { input, raw, auth } = ctx;
  const hits: RuleHit[] = [];
  const hit = (rule: RuleName, detail: string) => hits.push({ rule, weight: ruleWeights[rule], detail });

  // Raw bytes first (an undecodable body still counts), then the decoded text (a base64 or QP body).
  if (raw.includes(gtube, 0, 'latin1') || input.text.includes(gtube) || input.htmlText.includes(gtube)) hit('GTUBE', 'the GTUBE test string');

  const executables = input.attachments
    .map((a) => a.filename)
    .filter((name) => executableExtensions.has(/\.([a-z0-9]{1,4})$/i.exec(name.trim())?.[1]?.toLowerCase() ?? ''));
  if (executables.length > 0) hit('EXECUTABLE_ATTACHMENT', `executable attachment ${executables.slice(0, 3).join(', ')}`);

  if (authResult(auth, 'dmarc') === 'fail') hit('AUTH_DMARC_FAIL', 'DMARC fail');
  const spf = authResult(auth, 'spf');
  if (spf === 'fail') hit('AUTH_SPF_FAIL', 'SPF fail');
  else if (spf === 'softfail') hit('AUTH_SPF_SOFTFAIL', 'SPF softfail');
  if (authResult(auth, 'dkim') === 'fail') hit('AUTH_DKIM_FAIL', 'DKIM signature does not verify');

  if (input.from) {
    // "PayPal <service@paypal.com>" <x@evil.test>: the name shows an address the mail is not from.
    const shown = /[a-z0-9._%+-]+@([a-z0-9.-]+\.[a-z]{2,})/i.exec(input.from.name)?.[1];
    const actual = input.from.address.split('@')[1];
    if (shown && actual && baseDomain(shown) !== baseDomain(actual)) hit('FROM_NAME_OTHER_ADDRESS', `From name shows @${shown.toLowerCase()}, sent from @${actual.toLowerCase()}`);
  }

  for (const link of input.links) {
    const shown = textHost(link.text);
    const actual = hrefHost(link.href);
    if (shown && actual && baseDomain(shown) !== baseDomain(actual)) {
      hit('URL_TEXT_MISMATCH', `link shows ${shown}, goes to ${actual}`);
      break;
    }
  }

  if (!input.unparsable) {
    if (!hasHeader(input, 'from')) hit('MISSING_FROM', 'no From header');
    if (!hasHeader(input, 'date')) hit('MISSING_DATE', 'no Date header');
    if (!hasHeader(input, 'message-id')) hit('MISSING_MESSAGE_ID', 'no Message-ID header');
  }
  return hits;
}
