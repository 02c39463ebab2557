import type { RecipientOutcome, SmtpReply } from '@moat/contracts';

/**
 * Parses a server reply as nodemailer hands it over (lines joined by "\n") into its code, its
 * enhanced status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034) and its text. The
 * text keeps every line, without the code and enhanced code prefixes, joined by "\n".
 */
export function parseReply(raw: string): SmtpReply {
  const lines = raw.replace(/\r/g, '').split('\n').filter((l) => l.length > 0);
  const first = lines[0] ?? '';
  const codeMatch = /^([2-5]\d\d)(?:[ -]|$)/.exec(first);
  if (!codeMatch) return { code: null, enhanced: null, text: lines.join('\n') };
  const code = Number(codeMatch[1]);
  // RFC 3463 §2: class "." subject "." detail, subject and detail 1–3 digits; the class must be 2, 4 or 5.
  const enhancedMatch = /^[2-5]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})(?=\s|$)/.exec(first);
  const enhanced = enhancedMatch?.[1] ?? null;
  const text = lines
    .map((line) => {
      let rest = line.replace(/^\d{3}(?:[ -]|$)/, '');
      if (enhanced && rest.startsWith(enhanced)) rest = rest.slice(enhanced.length).replace(/^\s/, '');
      return rest;
    })
    .join('\n');
  return { code, enhanced, text };
}

/** A reply for something that produced no server reply (connection refused, timeout…). */
export function localReply(text: string, enhanced: string | null = null): SmtpReply {
  return { code: null, enhanced, text };
}

/**
 * Permanent: the server said 5xx (RFC 5321 §4.2.1: "permanent negative completion", repeating
 * the same request will fail the same way). Without a reply code, only an explicit permanent
 * enhanced status (class 5, e.g. a size the server advertised and the message exceeds) counts.
 */
export function isPermanent(reply: SmtpReply): boolean {
  if (reply.code !== null) return reply.code >= 500 && reply.code <= 599;
  return reply.enhanced?.startsWith('5.') ?? false;
}

/**
 * Transient: the server said 4xx (RFC 5321 §4.2.1: "transient negative completion", the same
 * request may succeed later), or there was no reply at all (connection refused or lost, timeout,
 * TLS or DNS failure): nothing tells us the recipient is bad, so we try again later.
 */
export function isTransient(reply: SmtpReply): boolean {
  if (reply.code !== null) return reply.code >= 400 && reply.code <= 499;
  return !isPermanent(reply);
}

/** True when the server accepted (2xx, RFC 5321 §4.2.1 "positive completion"). */
export function isSuccess(reply: SmtpReply): boolean {
  return reply.code !== null && reply.code >= 200 && reply.code <= 299;
}

/**
 * A recipient's fate from the reply that decided it: 2xx delivered, permanent failed, anything
 * else (4xx, no reply, an out-of-protocol 3xx) deferred: when in doubt, retry rather than lose.
 */
export function outcomeOf(reply: SmtpReply): RecipientOutcome {
  if (isSuccess(reply)) return 'delivered';
  if (isPermanent(reply)) return 'failed';
  return 'deferred';
}
