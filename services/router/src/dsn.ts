import type { SmtpReply } from '@moat/contracts';

// =============================================================================================
// Delivery status notifications (RFC 3464, in a multipart/report of RFC 6522). Pure: the same
// input gives the same bytes, so a DSN rebuilt after a crash is the one stored the first time.
// =============================================================================================

/** What happened to one recipient, as the DSN reports it. */
export interface DsnRecipient {
  /** The envelope recipient (RCPT TO) as Moat tried it. */
  rcpt: string;
  /**
   * `failed`: refused for good (5xx, or a domain that cannot receive mail); `expired`: still
   * deferred when the queue lifetime ran out; `delayed`: still being retried (a warning).
   */
  fate: 'failed' | 'expired' | 'delayed';
  /** The reply that decided it: the remote server's (with its code) or Moat's own (code null). */
  reply: SmtpReply;
  /** Host name (or address) of the server that gave `reply`; null when no server replied. */
  remoteMta: string | null;
  lastAttemptAt: Date;
}

export interface DsnInput {
  /** The DSN's own message id (a UUID): its Message-ID and MIME boundary derive from it. */
  dsnMessageId: string;
  /** Moat's host name: Reporting-MTA, MAILER-DAEMON@…, Message-ID domain. */
  reportingMta: string;
  /** `failed` for a bounce (failed and expired recipients), `delayed` for a delay warning. */
  action: 'failed' | 'delayed';
  /** The original message's envelope sender: the DSN goes to it. Never empty (no DSN to `<>`). */
  to: string;
  /** The original message's id in Moat (an extension field, for the operator's tracking search). */
  originalMessageId: string;
  /** When Moat accepted the original (Arrival-Date). */
  arrivalDate: Date;
  /** The DSN's Date. */
  date: Date;
  /** Delay warnings: when Moat gives up (Will-Retry-Until). */
  willRetryUntil: Date | null;
  recipients: DsnRecipient[];
  /**
   * The original message as Moat delivers it: the header lines Moat prepends, and the stored
   * message; null when it cannot be read any more. Only its header section is reported, never
   * the body: whatever the body carried (a virus) must not travel back.
   */
  original: { prepended: string; raw: Buffer } | null;
}

/** Header sections longer than this are cut at a field boundary (a DSN is no place for 1 MB of headers). */
export const maxReportedHeaderBytes = 64 * 1024;

const CRLF = '\r\n';

// ---------------------------------------------------------------------------------------------
// Status codes
// ---------------------------------------------------------------------------------------------

/** RFC 3463 §2: class.subject.detail, class 2, 4 or 5, subject and detail 1–3 digits. */
const enhancedPattern = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/**
 * The Status of a recipient (RFC 3464 §2.3.4): the reply's enhanced code when it has a valid one
 * (its class corrected to the basic code's class when they disagree, as a server that says
 * "550 4.1.1" failed permanently), else derived from the basic code (5.0.0, 4.0.0). An expired
 * recipient without an enhanced code reports 4.4.7 "delivery time expired" (RFC 3463 §3.5);
 * anything else without any code reports the generic failure of its class.
 */
export function dsnStatus(r: Pick<DsnRecipient, 'fate' | 'reply'>): string {
  const { code, enhanced } = r.reply;
  const basicClass = code !== null && code >= 400 && code <= 599 ? String(code).charAt(0) : null;
  const m = enhancedPattern.exec(enhanced ?? '');
  if (m && m[1] !== '2') return `${basicClass ?? m[1]}.${m[2]}.${m[3]}`;
  if (r.fate === 'expired') return '4.4.7';
  if (basicClass) return `${basicClass}.0.0`;
  return r.fate === 'failed' ? '5.0.0' : '4.0.0';
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/** RFC 5322 §3.3 date-time in UTC, e.g. `Tue, 05 Mar 2024 10:00:00 +0000`. */
export function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${two(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** "5 days", "4 hours", "12 minutes", "3 seconds" (rounded down to the largest unit). */
export function humanDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1_000, 'second'],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? '' : 's'}`;
  }
  return 'less than a second';
}

/**
 * A field value for message/delivery-status, which is 7-bit text: line breaks and tabs become
 * spaces, other controls and non-ASCII characters become `\x{HEX}` (the escape RFC 6533 §3
 * defines for addresses in delivery-status fields).
 */
export function asciiFieldValue(s: string): string {
  let out = '';
  for (const ch of s.replace(/[\r\n\t]+/g, ' ')) {
    const cp = ch.codePointAt(0)!;
    out += cp >= 0x20 && cp <= 0x7e ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out.replace(/ {2,}/g, ' ').trim();
}

/**
 * `Name: value` folded at spaces so lines stay within 78 characters where the value allows it
 * (RFC 5322 §2.1.1), and far within 998 in any case: a run of more than 900 characters without
 * a space (only an absurd reply has one) is broken into pieces.
 */
export function foldField(name: string, value: string, width = 78): string {
  const first = `${name}:`;
  const lines: string[] = [];
  let line = first;
  for (const word of value.split(' ').filter((w) => w.length > 0)) {
    for (let i = 0; i < word.length; i += 900) {
      const piece = word.slice(i, i + 900);
      if (line !== first && line.length + 1 + piece.length > width) {
        lines.push(line);
        line = '';
      }
      // A continuation line starts with the space (RFC 5322 §2.2.3 folding).
      line += ` ${piece}`;
    }
  }
  lines.push(line);
  return lines.join(CRLF);
}

/** The reply as the server sent it: every line with its code (`550-…` then `550 …`), or Moat's own text. */
export function replyLines(reply: SmtpReply): string[] {
  const lines = reply.text.split(/\r?\n/);
  if (reply.code === null) return lines.map((l, i) => (i === 0 && reply.enhanced ? `${reply.enhanced} ${l}` : l));
  return lines.map((l, i) => `${reply.code}${i < lines.length - 1 ? '-' : ' '}${reply.enhanced ? `${reply.enhanced} ` : ''}${l}`.trimEnd());
}

/**
 * Quoted-printable (RFC 2045 §6.7) of CRLF-separated lines: printable ASCII stays, everything
 * else is =XX, trailing blanks are encoded, and lines are soft-broken at 76 characters.
 */
export function quotedPrintable(data: Buffer): string {
  const out: string[] = [];
  for (const line of splitLines(data)) {
    let encoded = '';
    let current = '';
    for (let i = 0; i < line.length; i++) {
      const byte = line[i]!;
      const isLast = i === line.length - 1;
      const literal = (byte >= 33 && byte <= 126 && byte !== 61) || ((byte === 32 || byte === 9) && !isLast);
      const piece = literal ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      if (current.length + piece.length > 75) {
        encoded += `${current}=${CRLF}`;
        current = '';
      }
      current += piece;
    }
    out.push(encoded + current);
  }
  return out.join(CRLF);
}

/** Lines of a buffer split at CRLF (or a lone LF), without the line ends; a final line end adds no empty line. */
function splitLines(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0a) {
      const end = i > start && data[i - 1] === 0x0d ? i - 1 : i;
      lines.push(data.subarray(start, end));
      start = i + 1;
    }
  }
  if (start < data.length) lines.push(data.subarray(start));
  return lines;
}

/** True when the data can travel as 7bit: ASCII without NUL or a lone CR, lines of at most 998 octets. */
function is7bitClean(data: Buffer): boolean {
  let lineLength = 0;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0x0a) {
      lineLength = 0;
      continue;
    }
    if (b === 0x0d && data[i + 1] === 0x0a) continue;
    if (b === 0 || b === 0x0d || b > 0x7e) return false;
    if (++lineLength > 998) return false;
  }
  return true;
}

/** The body of a MIME part in the cheapest encoding that keeps it intact: 7bit, else quoted-printable. */
function encodePart(data: Buffer): { cte: '7bit' | 'quoted-printable'; body: string } {
  if (is7bitClean(data)) return { cte: '7bit', body: splitLines(data).map((l) => l.toString('latin1')).join(CRLF) };
  return { cte: 'quoted-printable', body: quotedPrintable(data) };
}

/**
 * The header section of a message as delivered: Moat's prepended lines, then the message's own
 * fields up to (without) the empty line that ends them, CRLF-terminated. Cut after the last
 * whole field that fits in `maxBytes`; `truncated` says so.
 */
export function headerSection(prepended: string, raw: Buffer, maxBytes = maxReportedHeaderBytes): { headers: Buffer; truncated: boolean } {
  let end = raw.length;
  if (raw[0] === 0x0a || (raw[0] === 0x0d && raw[1] === 0x0a)) end = 0;
  else {
    const crlf = raw.indexOf('\r\n\r\n');
    const lf = raw.indexOf('\n\n');
    const candidates = [crlf >= 0 ? crlf + 2 : -1, lf >= 0 ? lf + 1 : -1].filter((x) => x >= 0);
    if (candidates.length > 0) end = Math.min(...candidates);
  }
  const own = raw.subarray(0, end);
  const lines = splitLines(Buffer.concat([Buffer.from(prepended, 'utf8'), own]));
  const out: Buffer[] = [];
  let size = 0;
  let truncated = false;
  // Whole fields only: a field is its first line and the continuation lines (leading blank) after it.
  const fields: Buffer[][] = [];
  for (const line of lines) {
    if (line.length === 0) continue;
    const continuation = line[0] === 0x20 || line[0] === 0x09;
    if (continuation && fields.length > 0) fields[fields.length - 1]!.push(line);
    else fields.push([line]);
  }
  for (const field of fields) {
    const bytes = field.reduce((n, l) => n + l.length + 2, 0);
    if (size + bytes > maxBytes) {
      truncated = true;
      break;
    }
    for (const l of field) out.push(l, Buffer.from(CRLF));
    size += bytes;
  }
  return { headers: Buffer.concat(out), truncated };
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/** Prose wrapped at spaces to `width` columns (the reply lines are quoted as they are, never wrapped). */
function wrap(text: string, width = 76): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line.length > 0 ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines;
}

/** The human-readable part (RFC 6522 §3: the first part explains the report to a person). */
function notificationText(input: DsnInput, headersTruncated: boolean): string {
  const lines: string[] = [`This is the mail delivery system at ${input.reportingMta}.`, ''];
  if (input.action === 'failed') {
    lines.push(
      'Your message could not be delivered to the recipients below. No further',
      'attempts will be made for them. The reason is given for each; the headers',
      'of your message are attached (its content is not).',
    );
  } else {
    lines.push(
      'Your message has not yet been delivered to the recipients below. This is a',
      'warning only: you do not need to send it again. Delivery will be retried',
      ...wrap(`until ${rfc5322Date(input.willRetryUntil ?? input.date)}; you will be told if it fails for good.`),
    );
  }
  for (const r of input.recipients) {
    lines.push('');
    const age = humanDuration(r.lastAttemptAt.getTime() - input.arrivalDate.getTime());
    const from = r.remoteMta ? ` from ${r.remoteMta}` : '';
    if (r.fate === 'failed') {
      lines.push(...wrap(r.reply.code !== null ? `<${r.rcpt}>: refused; the reply${from} was:` : `<${r.rcpt}>: cannot be delivered:`));
    } else if (r.fate === 'expired') {
      lines.push(...wrap(`<${r.rcpt}>: still not delivered after ${age} of retrying; giving up. The last attempt (${rfc5322Date(r.lastAttemptAt)}) got${from}:`));
    } else {
      lines.push(...wrap(`<${r.rcpt}>: not delivered yet after ${age}. The last attempt (${rfc5322Date(r.lastAttemptAt)}) got${from}:`));
    }
    for (const l of replyLines(r.reply)) lines.push(`    ${l}`);
  }
  if (headersTruncated) lines.push('', `(The attached headers were cut after ${maxReportedHeaderBytes} bytes.)`);
  if (input.original === null) lines.push('', '(The headers of your message are no longer available.)');
  lines.push('');
  return lines.join(CRLF);
}

/** The message/delivery-status part (RFC 3464 §2): per-message fields, then one group per recipient. */
function deliveryStatus(input: DsnInput): string {
  const groups: string[][] = [
    [
      foldField('Reporting-MTA', `dns; ${asciiFieldValue(input.reportingMta)}`),
      foldField('X-Moat-Message-ID', asciiFieldValue(input.originalMessageId)),
      foldField('Arrival-Date', rfc5322Date(input.arrivalDate)),
    ],
  ];
  for (const r of input.recipients) {
    // RFC 6533 §3: an address with non-ASCII characters is of type utf-8, escaped as \x{…}.
    const addressType = /^[\x20-\x7e]*$/.test(r.rcpt) ? 'rfc822' : 'utf-8';
    const group = [
      foldField('Final-Recipient', `${addressType}; ${asciiFieldValue(r.rcpt)}`),
      foldField('Action', r.fate === 'delayed' ? 'delayed' : 'failed'),
      foldField('Status', dsnStatus(r)),
    ];
    // Remote-MTA and an smtp Diagnostic-Code only for what a server said; Moat's own verdict
    // (DNS, a connection that never got a reply) is an X-Moat diagnostic (RFC 3464 §2.3.6).
    if (r.reply.code !== null && r.remoteMta) group.push(foldField('Remote-MTA', `dns; ${asciiFieldValue(r.remoteMta)}`));
    const diagnostic = r.reply.code !== null ? `smtp; ${r.reply.code}${r.reply.enhanced ? ` ${r.reply.enhanced}` : ''} ${r.reply.text}` : `X-Moat; ${r.reply.text}`;
    group.push(foldField('Diagnostic-Code', asciiFieldValue(diagnostic).slice(0, 4000)));
    group.push(foldField('Last-Attempt-Date', rfc5322Date(r.lastAttemptAt)));
    if (r.fate === 'delayed' && input.willRetryUntil) group.push(foldField('Will-Retry-Until', rfc5322Date(input.willRetryUntil)));
    groups.push(group);
  }
  return groups.map((g) => g.join(CRLF)).join(CRLF + CRLF) + CRLF;
}

/** A boundary that occurs in none of the parts (RFC 2046 §5.1.1), derived from the DSN's id. */
function boundaryFor(id: string, parts: string[]): string {
  const base = `=_moat-dsn-${id.replace(/[^0-9a-zA-Z]/g, '')}`;
  for (let n = 0; ; n++) {
    const candidate = n === 0 ? base : `${base}-${n}`;
    if (parts.every((p) => !p.includes(candidate))) return candidate;
  }
}

/**
 * The whole DSN, CRLF line ends throughout. Its envelope is MAIL FROM:<> (RFC 5321 §4.5.5, so
 * that nothing ever answers a DSN with another DSN) and RCPT TO the original's sender.
 */
export function buildDsn(input: DsnInput): Buffer {
  if (input.to === '') throw new Error('a DSN is never sent to the null sender');
  if (input.recipients.length === 0) throw new Error('a DSN reports at least one recipient');
  const section = input.original ? headerSection(input.original.prepended, input.original.raw) : null;
  const text = encodePart(Buffer.from(notificationText(input, section?.truncated ?? false), 'utf8'));
  const status = deliveryStatus(input);
  const headers = section ? encodePart(section.headers) : null;
  const boundary = boundaryFor(input.dsnMessageId, [text.body, status, headers?.body ?? '']);
  const subject = input.action === 'failed' ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)';
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`,
    foldField('To', `<${input.to}>`),
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(input.date)}`,
    `Message-ID: <${input.dsnMessageId}@${input.reportingMta}>`,
    // RFC 3834 §5: automatic responses say so, so that vacation responders stay silent.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF}\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 7bit',
    '',
    'This is a MIME-encapsulated message (a delivery status notification).',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${text.cte}`,
    '',
    text.body,
    `--${boundary}`,
    'Content-Description: Delivery report',
    'Content-Type: message/delivery-status',
    '',
    status,
  ];
  if (headers) {
    lines.push(
      `--${boundary}`,
      `Content-Description: ${input.action === 'failed' ? 'Undelivered' : 'Delayed'} Message Headers`,
      'Content-Type: text/rfc822-headers',
      `Content-Transfer-Encoding: ${headers.cte}`,
      '',
      headers.body,
    );
  }
  lines.push(`--${boundary}--`, '');
  return Buffer.from(lines.join(CRLF), 'utf8');
}
