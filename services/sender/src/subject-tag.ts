/**
 * The subject tag of a tenant's filter policy ("[SPAM]" on mail delivered tagged, issue 5). The
 * filter cannot change the stored message (it is written once and shared by every delivery), so it
 * asks for the tag with an `X-Moat-Subject-Tag` field in the header block Moat prepends, and the
 * sender applies it to the copy it transmits. Only the Subject field changes; the body never does.
 * (A DKIM signature that covers Subject no longer verifies downstream: the price of any subject
 * tagging, and why the tag is off unless the tenant sets one.)
 */

const tagField = /(?:^|\n)X-Moat-Subject-Tag:[ \t]*((?:[^\r\n]|\r?\n[ \t])*)/i;

/** The tag asked for in Moat's prepended block (unfolded), or null. Only Moat writes that block. */
export function subjectTagOf(prepended: string): string | null {
  const m = tagField.exec(prepended);
  if (!m) return null;
  const tag = m[1]!.replace(/\r?\n[ \t]/g, ' ').trim();
  return tag === '' ? null : tag;
}

/** The tag as header text: as it is when printable ASCII, else an RFC 2047 encoded word (B, UTF-8), since a header holds 7-bit text. */
export function encodeTag(tag: string): string {
  return /^[\x20-\x7e]*$/.test(tag) ? tag : `=?UTF-8?B?${Buffer.from(tag, 'utf8').toString('base64')}?=`;
}

/** The end of the header section: the offset just after the CRLF (or LF) that ends the last field; 0 for none. */
function headerEnd(raw: Buffer): number {
  if (raw[0] === 0x0a || (raw[0] === 0x0d && raw[1] === 0x0a)) return 0;
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const ends = [crlf >= 0 ? crlf + 2 : -1, lf >= 0 ? lf + 1 : -1].filter((i) => i >= 0);
  return ends.length > 0 ? Math.min(...ends) : raw.length;
}

/**
 * The message with `tag` and a space put in front of the first Subject field's value (RFC 5322
 * §3.6.5; folding and encoded words after it are kept as they are). A subject that already starts
 * with the tag (a reply to tagged mail, a redelivery) is left alone; a message without a Subject
 * gets one holding the tag. Pure.
 */
export function tagSubject(raw: Buffer, tag: string): Buffer {
  const text = encodeTag(tag);
  const end = headerEnd(raw);
  // latin1 maps bytes 1:1, so offsets in the string are offsets in the buffer.
  const header = raw.subarray(0, end).toString('latin1');
  const m = /(^|\n)Subject:[ \t]*/i.exec(header);
  if (!m) return Buffer.concat([Buffer.from(`Subject: ${text}\r\n`, 'latin1'), raw]);
  const at = m.index + m[0].length;
  if (header.startsWith(text, at)) return raw;
  return Buffer.concat([raw.subarray(0, at), Buffer.from(`${text} `, 'latin1'), raw.subarray(at)]);
}
