import { isIPv6 } from 'node:net';

export interface ReceivedInput {
  /** What the client gave in HELO/EHLO. */
  helo: string;
  /** The client's forward-confirmed reverse DNS name, or null. */
  ptr: string | null;
  ip: string;
  /** Our own name (the `by` clause). */
  hostname: string;
  /** The opening command: HELO gives "SMTP", EHLO gives "ESMTP" (RFC 3848). */
  esmtp: boolean;
  /** STARTTLS was in effect: "ESMTPS" (RFC 3848). */
  tls: boolean;
  /** The client authenticated (SMTP AUTH): "ESMTPA" / "ESMTPSA" (RFC 3848). */
  authenticated?: boolean;
  messageId: string;
  recipients: readonly string[];
  date: Date;
}

/**
 * The trace header Moat prepends (RFC 5321 §4.4, RFC 5322 §3.6.7):
 *
 *   Received: from <helo> (<ptr or unknown> [<ip>])
 *   	by <hostname> (Moat) with ESMTPS id <messageId>
 *   	for <rcpt>;
 *   	<date>
 *
 * folded with CRLF + TAB, CRLF-terminated. `for` names the recipient only when there is exactly
 * one: with several it would disclose every recipient to each of them (RFC 5321 §7.2).
 */
export function buildReceivedHeader(input: ReceivedInput): string {
  // RFC 3848 §2: AUTH implies ESMTP (it is an extension), so an authenticated HELO client cannot exist.
  const protocol = `${input.esmtp || input.authenticated ? 'ESMTP' : 'SMTP'}${input.tls ? 'S' : ''}${input.authenticated ? 'A' : ''}`;
  const lines = [
    `Received: from ${headerSafe(input.helo) || 'unknown'} (${input.ptr ? headerSafe(input.ptr) : 'unknown'} ${addressLiteral(input.ip)})`,
    `\tby ${headerSafe(input.hostname)} (Moat) with ${protocol} id ${input.messageId}`,
  ];
  const only = input.recipients.length === 1 ? input.recipients[0] : undefined;
  if (only !== undefined) lines.push(`\tfor <${only.replace(controlChars, '_')}>;`);
  else lines[lines.length - 1] += ';';
  lines.push(`\t${rfc5322Date(input.date)}`);
  return `${lines.join('\r\n')}\r\n`;
}

/** address-literal (RFC 5321 §4.1.3): `[192.0.2.1]`, `[IPv6:2001:db8::1]`. */
export function addressLiteral(ip: string): string {
  return isIPv6(ip) ? `[IPv6:${ip}]` : `[${ip}]`;
}

/**
 * Client-supplied names (HELO, addresses) go into a header other servers parse: no control
 * characters (header injection), no parentheses or backslashes (they would end or escape the
 * comment structure), nothing outside printable ASCII and UTF-8 letters.
 */
function headerSafe(value: string): string {
  return value.replace(/[\u0000-\u0020\u007f-\u009f()\\]/g, '_');
}

/** An address stays as given (a quoted local part may hold spaces); only line breaks are out. */
const controlChars = /[\u0000-\u001f\u007f-\u009f]/g;

const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** RFC 5322 §3.3 date-time in UTC with a numeric zone (`GMT` is the obsolete form). */
export function rfc5322Date(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
