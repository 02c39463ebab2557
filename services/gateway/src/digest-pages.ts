import { createHash } from 'node:crypto';
import { displayLine as oneLine, escapeHtml } from '@moat/store';

// =============================================================================================
// The pages a digest release link opens: small, static HTML, no script, no remote content, every
// value from a message (sender, subject) escaped. Pure, so their safety is unit-tested.
// =============================================================================================

/** The one style block, allowed by its hash (CSP Level 2): no inline style or script runs otherwise. */
const style = 'body{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}dt{font-weight:bold}dd{margin:0 0 .6em 0}button{font-size:1em;padding:.5em 1.2em}';
const styleHash = createHash('sha256').update(style).digest('base64');

/**
 * The pages' policy: nothing loads (no scripts, images, fonts, frames), the form posts only here.
 * Referrer-Policy no-referrer matters as much: the URL carries the token.
 */
export const digestPageCsp = ["default-src 'none'", `style-src 'sha256-${styleHash}'`, "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"].join('; ');

export const digestPageHeaders: Record<string, string> = {
  'Content-Security-Policy': digestPageCsp,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  // The token is in the URL and the answer depends on its state: never stored anywhere.
  'Cache-Control': 'no-store',
  'X-Robots-Tag': 'noindex, nofollow',
};

export interface DigestMessageSummary {
  from: string;
  subject: string | null;
  quarantinedAt: string;
  category: string;
  mailbox: string;
}

export interface DigestPage {
  status: number;
  title: string;
  message: string;
  /** Shown as a list under the message. */
  summary?: DigestMessageSummary;
  /** The confirmation form (POST to the same URL). */
  confirm?: boolean;
}

export function renderDigestPage(page: DigestPage): string {
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    `<title>${escapeHtml(page.title)}</title><style>${style}</style></head><body>`,
    `<h1>${escapeHtml(page.title)}</h1>`,
    `<p>${escapeHtml(page.message)}</p>`,
  ];
  if (page.summary) {
    const s = page.summary;
    parts.push(
      '<dl>',
      `<dt>To</dt><dd>${escapeHtml(oneLine(s.mailbox, 320))}</dd>`,
      `<dt>From</dt><dd>${escapeHtml(oneLine(s.from) || '(unknown)')}</dd>`,
      `<dt>Subject</dt><dd>${escapeHtml(s.subject === null ? '(no subject)' : oneLine(s.subject) || '(empty)')}</dd>`,
      `<dt>Quarantined</dt><dd>${escapeHtml(s.quarantinedAt)}</dd>`,
      `<dt>Category</dt><dd>${escapeHtml(s.category)}</dd>`,
      '</dl>',
    );
  }
  // No action attribute: the form posts to this very URL (token included), and only here (form-action 'self').
  if (page.confirm) parts.push('<form method="post"><button type="submit">Release this message</button></form>');
  parts.push('</body></html>');
  return parts.join('\n');
}
