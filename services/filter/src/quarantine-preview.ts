import PostalMime from 'postal-mime';
import type { QuarantinePreview } from '@moat/store';

/** Characters of text a preview keeps: enough to judge a message, little enough to seal per event. */
export const previewTextLimit = 4_096;
/** HTML read to make a text preview: the text that fits the preview sits in the first part of it. */
const htmlReadLimit = 256 * 1024;
/** Attachments listed; a message with more shows the first ones. */
const attachmentLimit = 50;

const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function decodeEntities(text: string): string {
  return text.replace(/&(#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,8});/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number.parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
    }
    return entities[name.toLowerCase()] ?? whole;
  });
}

const blockTags = new Set(['br', 'p', 'div', 'tr', 'li', 'table', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'hr', 'pre']);
/** Elements whose content is never text a reader sees. */
const hiddenTags = ['script', 'style', 'head', 'title', 'noscript', 'template', 'svg'];

/**
 * The text of an HTML part, for reading only: tags dropped (block tags become line breaks), the
 * content of script, style and head dropped, entities decoded, link targets kept as text so a
 * reader can judge where a link goes. Never produces markup, so nothing in it can load or run.
 * One forward pass with indexOf (linear in the input): hostile HTML full of unclosed `<` cannot
 * make it backtrack, as a regular-expression tag stripper can.
 */
export function htmlToPlainText(html: string): string {
  const lower = html.toLowerCase();
  let out = '';
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt < 0) {
      out += html.slice(i);
      break;
    }
    out += html.slice(i, lt);
    if (lower.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end < 0 ? html.length : end + 3;
      continue;
    }
    const gt = html.indexOf('>', lt + 1);
    if (gt < 0) {
      // An unclosed `<` is text, as a browser shows it.
      out += html.slice(lt);
      break;
    }
    const tag = lower.slice(lt + 1, gt);
    const name = /^\/?\s*([a-z][a-z0-9]*)/.exec(tag)?.[1] ?? '';
    const closing = tag.startsWith('/');
    if (!closing && hiddenTags.includes(name)) {
      const end = lower.indexOf(`</${name}`, gt + 1);
      i = end < 0 ? html.length : (html.indexOf('>', end) < 0 ? html.length : html.indexOf('>', end) + 1);
      continue;
    }
    if (blockTags.has(name)) out += '\n';
    else if (name === 'a' && !closing) {
      const href = /\bhref\s*=\s*["']?([^\s"'>]{1,2048})/.exec(html.slice(lt, gt))?.[1];
      if (href) out += ` (${decodeEntities(href)}) `;
    } else out += ' ';
    i = gt + 1;
  }
  return decodeEntities(out);
}

/**
 * Text fit to show: no control characters (a terminal or log that prints it cannot be steered)
 * except line breaks and tabs, runs of spaces and blank lines collapsed.
 */
export function tidyText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/[ \t\u00a0]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function cut(text: string): { text: string; truncated: boolean } {
  if (text.length <= previewTextLimit) return { text, truncated: false };
  // Never cut a surrogate pair in half (the JSON would carry a lone surrogate).
  let end = previewTextLimit;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return { text: text.slice(0, end), truncated: true };
}

/**
 * The safe preview of a quarantined message: its text (the text/plain part, or the HTML part
 * reduced to text), cut to previewTextLimit characters, and its attachments by name, type and
 * size. The attachments' content is never shown.
 */
export async function buildPreview(raw: Buffer): Promise<QuarantinePreview> {
  const parsed = await PostalMime.parse(raw, { attachmentEncoding: 'arraybuffer', maxNestingDepth: 64 });
  const attachments = parsed.attachments.slice(0, attachmentLimit).map((a) => ({
    filename: a.filename ? tidyText(a.filename).slice(0, 255) : null,
    mimeType: tidyText(a.mimeType).slice(0, 255),
    size: typeof a.content === 'string' ? Buffer.byteLength(a.content) : a.content.byteLength,
  }));
  if (parsed.text && parsed.text.trim() !== '') return { ...cut(tidyText(parsed.text)), source: 'text', attachments };
  if (parsed.html) return { ...cut(tidyText(htmlToPlainText(parsed.html.slice(0, htmlReadLimit)))), source: 'html', attachments };
  return { text: '', truncated: false, source: 'none', attachments };
}
