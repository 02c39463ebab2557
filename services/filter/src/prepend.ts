import type { Verdict } from '@moat/contracts';

/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, excluding the CRLF. */
const preferredLineLength = 78;

/**
 * One header field, folded and CRLF-terminated. Folding inserts CRLF before existing white space
 * (RFC 5322 §2.2.3), so unfolding gives back the value exactly. A word longer than a line stays
 * whole: a fold may only go where white space is. Line breaks inside the value are turned into
 * spaces first, so a value can never inject a header of its own.
 */
export function foldHeader(name: string, value: string): string {
  const words = value.replace(/[\r\n]+/g, ' ').split(' ');
  let out = `${name}:`;
  let lineLength = out.length;
  let first = true;
  for (const word of words) {
    // Keep the single space between words; an empty word is a run of spaces, kept as is.
    const piece = ` ${word}`;
    if (!first && lineLength + piece.length > preferredLineLength && word.length > 0) {
      out += `\r\n${piece}`;
      lineLength = piece.length;
    } else {
      out += piece;
      lineLength += piece.length;
    }
    first = false;
  }
  return `${out}\r\n`;
}

/**
 * The headers Moat prepends on delivery: what ingress computed (its Received line, kept byte for
 * byte), then the filter's Authentication-Results and verdict. Results sit right below the
 * Received field of the hop that evaluated them, as receiving MTAs commonly write them, so the
 * block reads as one trace entry (RFC 5322 §3.6.7; RFC 8601 §5: the field is added by the
 * border MTA of the ADMD that produced the results, never altered later).
 */
export function composePrependHeaders(input: { accepted: string; authResults: string | null; verdict: Verdict; spam?: { score: string; status: string } }): string {
  // The contract has the block CRLF-terminated; a missing final CRLF would glue our field onto its last line.
  const accepted = input.accepted === '' || input.accepted.endsWith('\r\n') ? input.accepted : `${input.accepted}\r\n`;
  // null: no results to report (outbound mail, see outboundAuthentication), so no field.
  const results = input.authResults === null ? '' : foldHeader('Authentication-Results', input.authResults);
  const spam = input.spam ? `${foldHeader('X-Moat-Spam-Score', input.spam.score)}${foldHeader('X-Moat-Spam-Status', input.spam.status)}` : '';
  return `${accepted}${results}${foldHeader('X-Moat-Verdict', input.verdict)}${spam}`;
}
