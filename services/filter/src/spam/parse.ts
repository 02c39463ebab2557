import PostalMime, { type Address, type Email } from 'postal-mime';

/**
 * What the spam classifier and the rules read from one message: parsed once, shared by both.
 *
 * The message is cut at `maxSpamBytes` before parsing. Content past that adds nothing a
 * classifier needs (the words that decide sit at the top) and a large attachment would cost
 * milliseconds of base64 decoding per message; SpamAssassin's spamc skips whole messages over
 * 500 KB for the same reason. Viruses are clamd's job, which reads the whole message.
 */
export const maxSpamBytes = 32 * 1024;
/** Decoded text beyond this is not tokenized (a 5 MB text part is not more telling than 64 KiB of it). */
export const maxTextChars = 64 * 1024;

export interface SpamLink {
  /** The href as written (entities decoded), trimmed. */
  href: string;
  /** The anchor's visible text, tags removed; empty for URLs found in plain text. */
  text: string;
}

export interface SpamInput {
  /** Header fields in order, names lower-case, values unfolded and raw (not RFC 2047-decoded). */
  headers: Array<{ key: string; value: string }>;
  /** Decoded Subject, '' when missing. */
  subject: string;
  from: { name: string; address: string } | null;
  replyTo: string | null;
  /** text/plain parts joined; '' when the message has none. */
  text: string;
  /** text/html parts joined, raw markup; '' when the message has none. */
  html: string;
  /** The HTML with tags, scripts, styles and comments removed and entities decoded. */
  htmlText: string;
  /** Links from the HTML anchors (with their text) and bare URLs from the text. */
  links: SpamLink[];
  /** Media types and charsets of every part, from the raw Content-Type fields. */
  contentTypes: string[];
  charsets: string[];
  attachments: Array<{ filename: string; mimeType: string }>;
  /** The message was longer than `maxSpamBytes` and was cut. */
  truncated: boolean;
  /** Parse failed: only the headers read by hand are set. */
  unparsable: boolean;
}

const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** Named entities that matter for words and links, plus numeric ones (`&#65;`, `&#x41;`). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});?/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : ' ';
    }
    return entities[name.toLowerCase()] ?? whole;
  });
}

/** Visible text of an HTML document: no scripts, styles, comments or tags; entities decoded. */
export function stripHtml(html: string): string {
  return decodeEntities(
    html
      .replace(/<!--[^]*?-->/g, ' ')
      .replace(/<(script|style)\b[^]*?<\/\1\s*>/gi, ' ')
      .replace(/<[^>]*>/g, ' '),
  );
}

const anchorPattern = /<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>([^]*?)<\/a\s*>/gi;
const bareUrlPattern = /\b(?:https?:\/\/|www\.)[^\s<>"'()]+/gi;

export function extractLinks(html: string, text: string): SpamLink[] {
  const links: SpamLink[] = [];
  for (const m of html.matchAll(anchorPattern)) {
    const href = decodeEntities(m[1] ?? m[2] ?? m[3] ?? '').trim();
    if (href) links.push({ href, text: stripHtml(m[4] ?? '').replace(/\s+/g, ' ').trim() });
    if (links.length >= 200) return links;
  }
  // Images and other sources load remote content too; spam uses them for tracking and hosting.
  for (const m of html.matchAll(/<(?:img|iframe|form)\b[^>]*?\b(?:src|action)\s*=\s*["']?([^\s"'>]+)/gi)) {
    links.push({ href: decodeEntities(m[1] ?? '').trim(), text: '' });
    if (links.length >= 200) return links;
  }
  for (const m of text.matchAll(bareUrlPattern)) {
    links.push({ href: m[0], text: '' });
    if (links.length >= 200) return links;
  }
  return links;
}

function firstMailbox(a: Address | Address[] | undefined): { name: string; address: string } | null {
  const first = Array.isArray(a) ? a[0] : a;
  if (!first) return null;
  if (first.group) return first.group[0] ? { name: first.group[0].name, address: first.group[0].address } : null;
  return { name: first.name ?? '', address: first.address ?? '' };
}

/** Every Content-Type of the message and its parts, read from the raw text (postal-mime keeps only the attachments'). */
function contentTypesOf(raw: string): { types: string[]; charsets: string[] } {
  const types: string[] = [];
  const charsets: string[] = [];
  const pattern = /^content-type:[ \t]*([^;\s]+)((?:[^\n]|\n[ \t])*)/gim;
  for (const m of raw.matchAll(pattern)) {
    types.push((m[1] ?? '').toLowerCase());
    const charset = /charset\s*=\s*"?([^";\s]+)/i.exec(m[2] ?? '');
    if (charset?.[1]) charsets.push(charset[1].toLowerCase());
    if (types.length >= 50) break;
  }
  return { types, charsets };
}

/** Header fields read by hand, for a message postal-mime refuses. */
function headersByHand(raw: string): Array<{ key: string; value: string }> {
  const end = raw.search(/\r?\n\r?\n/);
  const section = end >= 0 ? raw.slice(0, end) : raw;
  const out: Array<{ key: string; value: string }> = [];
  for (const m of section.replace(/\r?\n[ \t]+/g, ' ').matchAll(/^([!-9;-~]+):[ \t]*(.*)$/gm)) {
    out.push({ key: (m[1] ?? '').toLowerCase(), value: m[2] ?? '' });
  }
  return out;
}

export async function parseForSpam(raw: Buffer): Promise<SpamInput> {
  const truncated = raw.length > maxSpamBytes;
  const bytes = truncated ? raw.subarray(0, maxSpamBytes) : raw;
  // latin1 keeps one char per byte: the Content-Type scan needs only ASCII.
  const latin = bytes.toString('latin1');
  const { types, charsets } = contentTypesOf(latin);
  let email: Email;
  try {
    // Attachments stay ArrayBuffers (the cheapest form); only their names and types are read.
    email = await PostalMime.parse(bytes, { maxNestingDepth: 50 });
  } catch {
    return {
      headers: headersByHand(latin),
      subject: '',
      from: null,
      replyTo: null,
      text: '',
      html: '',
      htmlText: '',
      links: [],
      contentTypes: types,
      charsets,
      attachments: [],
      truncated,
      unparsable: true,
    };
  }
  const text = (email.text ?? '').slice(0, maxTextChars);
  const html = (email.html ?? '').slice(0, maxTextChars);
  const htmlText = html ? stripHtml(html) : '';
  return {
    headers: email.headers.map((h) => ({ key: h.key, value: h.value })),
    subject: email.subject ?? '',
    from: firstMailbox(email.from),
    replyTo: firstMailbox(email.replyTo)?.address ?? null,
    text,
    html,
    htmlText,
    links: extractLinks(html, text),
    contentTypes: types,
    charsets,
    attachments: email.attachments.map((a) => ({ filename: a.filename ?? '', mimeType: a.mimeType })),
    truncated,
    unparsable: false,
  };
}
