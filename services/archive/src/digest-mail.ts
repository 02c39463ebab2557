import { createHash } from 'node:crypto';
import type { MessageFilteredPayload } from '@moat/contracts';
import { displayLine as oneLine, escapeHtml, isDangerous, type QuarantineCategory } from '@moat/store';

// =============================================================================================
// The quarantine digest as a message (RFC 5322 + MIME multipart/alternative, text and HTML).
// Pure: the same input gives the same bytes. Everything listed comes from strangers' mail (the
// sender, the subject): it is reduced to one line of printable text and, in the HTML part,
// escaped, so a subject can neither add a header, nor break the markup, nor load anything.
// =============================================================================================

export interface DigestEntry {
  messageId: string;
  quarantinedAt: Date;
  /** The From header as the message gave it, else its envelope sender. */
  from: string;
  subject: string | null;
  category: QuarantineCategory;
  /** The signed release link; null for virus and spoofing, which only an administrator releases. */
  releaseUrl: string | null;
}

export interface DigestMailInput {
  digestId: string;
  /** The recipient: the mailbox the listed messages were addressed to. */
  mailbox: string;
  /** MOAT_DIGEST_FROM: the digest's From address. */
  from: string;
  date: Date;
  entries: DigestEntry[];
  /** Messages of the period left out of this digest (more than MOAT_DIGEST_MAX_ITEMS). */
  omitted: number;
  /** When the links of this digest stop working (the earliest one, if they differ). */
  linksExpireAt: Date | null;
}

export interface DigestMail {
  raw: Buffer;
  subject: string;
  dateHeader: string;
  messageIdHeader: string;
  fromHeader: string;
}

const CRLF = '\r\n';
export const digestFromName = 'Moat quarantine';

/** RFC 5322 §3.3 date-time, in UTC. */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** A date as the digest shows it: `2026-11-28 11:27 UTC`. */
function shownDate(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** An unstructured header value (RFC 5322 §2.2.3): ASCII as is, else one RFC 2047 encoded-word per chunk. */
function headerText(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) return value;
  const words: string[] = [];
  let chunk = '';
  // Chunks of whole characters, small enough that an encoded-word stays under 75 octets (§2).
  for (const ch of value) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w).toString('base64')}?=`).join(`${CRLF} `);
}

/** base64 in lines of 76 (RFC 2045 §6.8): any text, any line length, travels intact. */
function base64Lines(text: string): string {
  return (Buffer.from(text, 'utf8').toString('base64').match(/.{1,76}/g) ?? []).join(CRLF);
}

const categoryNames: Record<QuarantineCategory, string> = { virus: 'virus', spoofing: 'spoofing', spam: 'spam', policy: 'policy' };

function adminOnlyNote(category: QuarantineCategory): string {
  return `Only an administrator can release this message (quarantined as ${category === 'virus' ? 'a virus' : 'spoofing'}).`;
}

export function digestSubject(count: number, mailbox: string): string {
  return `Quarantine digest: ${count} new message${count === 1 ? '' : 's'} held for ${oneLine(mailbox, 320)}`;
}

function textPart(input: DigestMailInput, total: number): string {
  const lines: string[] = [
    `Moat held ${total} new message${total === 1 ? '' : 's'} addressed to ${oneLine(input.mailbox, 320)} in quarantine.`,
    'They have not been delivered. Release the ones you expected; the others expire on their own.',
    '',
  ];
  input.entries.forEach((e, i) => {
    lines.push(`${i + 1}. ${shownDate(e.quarantinedAt)}  [${categoryNames[e.category]}]`);
    lines.push(`   From:    ${oneLine(e.from) || '(unknown)'}`);
    lines.push(`   Subject: ${e.subject === null ? '(no subject)' : oneLine(e.subject) || '(empty)'}`);
    lines.push(e.releaseUrl !== null && !isDangerous(e.category) ? `   Release: ${e.releaseUrl}` : `   ${adminOnlyNote(e.category)}`);
    lines.push('');
  });
  if (input.omitted > 0) lines.push(`${input.omitted} more message${input.omitted === 1 ? ' is' : 's are'} not listed here; ask your administrator to look at the quarantine.`, '');
  lines.push('A release link shows a confirmation page first: nothing is released until you confirm there.');
  if (input.linksExpireAt) lines.push(`Each link works once, until ${shownDate(input.linksExpireAt)}.`);
  return lines.join(CRLF) + CRLF;
}

function htmlPart(input: DigestMailInput, subject: string, total: number): string {
  const rows = input.entries.map((e) => {
    const action =
      e.releaseUrl !== null && !isDangerous(e.category)
        ? `<a href="${escapeHtml(e.releaseUrl)}">Release</a>`
        : `<em>${escapeHtml(adminOnlyNote(e.category))}</em>`;
    return (
      `<tr><td>${escapeHtml(shownDate(e.quarantinedAt))}</td><td>${escapeHtml(oneLine(e.from) || '(unknown)')}</td>` +
      `<td>${escapeHtml(e.subject === null ? '(no subject)' : oneLine(e.subject) || '(empty)')}</td><td>${escapeHtml(categoryNames[e.category])}</td><td>${action}</td></tr>`
    );
  });
  const parts = [
    '<!DOCTYPE html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head><body>`,
    `<p>Moat held ${total} new message${total === 1 ? '' : 's'} addressed to ${escapeHtml(oneLine(input.mailbox, 320))} in quarantine. They have not been delivered. Release the ones you expected; the others expire on their own.</p>`,
    '<table border="1" cellpadding="4" cellspacing="0">',
    '<tr><th>Quarantined</th><th>From</th><th>Subject</th><th>Category</th><th></th></tr>',
    ...rows,
    '</table>',
  ];
  if (input.omitted > 0) parts.push(`<p>${input.omitted} more message${input.omitted === 1 ? ' is' : 's are'} not listed here; ask your administrator to look at the quarantine.</p>`);
  parts.push('<p>A release link shows a confirmation page first: nothing is released until you confirm there.');
  if (input.linksExpireAt) parts.push(` Each link works once, until ${escapeHtml(shownDate(input.linksExpireAt))}.`);
  parts.push('</p></body></html>');
  return parts.join(CRLF) + CRLF;
}

/** The digest message: headers, then a multipart/alternative with the text part first (RFC 2046 §5.1.4: the richest last). */
export function composeDigest(input: DigestMailInput): DigestMail {
  const total = input.entries.length + input.omitted;
  const subject = digestSubject(total, input.mailbox);
  const domain = input.from.slice(input.from.lastIndexOf('@') + 1) || 'moat.invalid';
  const messageIdHeader = `<${input.digestId}.digest@${domain}>`;
  const dateHeader = rfc5322Date(input.date);
  const fromHeader = `"${digestFromName}" <${input.from}>`;
  const boundary = `moat-digest-${input.digestId}`;
  const head = [
    `From: ${fromHeader}`,
    `To: <${input.mailbox}>`,
    `Subject: ${headerText(subject)}`,
    `Date: ${dateHeader}`,
    `Message-ID: ${messageIdHeader}`,
    // RFC 3834 §5: machine-made; vacation responders and the like must not answer it.
    'Auto-Submitted: auto-generated',
    'X-Auto-Response-Suppress: All',
    `X-Moat-Digest: ${input.digestId}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
  ];
  const body = [
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(textPart(input, total)),
    `--${boundary}`,
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(htmlPart(input, subject, total)),
    `--${boundary}--`,
    '',
  ];
  return { raw: Buffer.from([...head, ...body].join(CRLF), 'utf8'), subject, dateHeader, messageIdHeader, fromHeader };
}

/**
 * The message.filtered that sends a digest: Moat's own mail, not filtered, so verdict deliver
 * straight away; inbound to the mailbox, so the router takes it to the tenant's server like any
 * mail for that mailbox (queued, retried, tracked, archived). The null reverse-path (RFC 5321
 * §4.5.5, as for notifications): a digest that cannot be delivered bounces to no one.
 */
export function digestPayload(opts: { digestId: string; tenantId: string; mailbox: string; createdAt: Date; mail: DigestMail }): MessageFilteredPayload {
  const at = opts.createdAt.toISOString();
  return {
    messageId: opts.digestId,
    tenantId: opts.tenantId,
    direction: 'inbound',
    store: { messageId: opts.digestId, receivedAt: at },
    mailFrom: '',
    rcptTo: [opts.mailbox],
    client: { ip: '127.0.0.1', helo: 'moat-archive', ptr: null, tls: null },
    size: opts.mail.raw.length,
    sha256: createHash('sha256').update(opts.mail.raw).digest('hex'),
    prependHeaders: '',
    receivedAt: at,
    verdict: 'deliver',
    score: 0,
    reasons: ['quarantine digest'],
    checks: [],
    authResults: '',
    headers: { from: opts.mail.fromHeader, to: `<${opts.mailbox}>`, subject: opts.mail.subject, date: opts.mail.dateHeader, messageIdHeader: opts.mail.messageIdHeader },
  };
}
