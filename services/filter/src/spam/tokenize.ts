import type { SpamInput } from './parse.js';

/**
 * Features of one message for the Bayesian classifier, after SpamBayes' tokenizer (the one that
 * won its long public tests): words, plus tokens prefixed by where they came from, so "free" in
 * a Subject and "free" in a body are different evidence. Each token counts once per message
 * (presence, not frequency: a word repeated 50 times should not outvote 50 different words).
 *
 * Prefixes:
 *   (none)   body words: text/plain, and the visible text of the HTML
 *   subject: Subject words and punctuation runs        from:  From address, domain, name words
 *   hdr:     which header fields appear, and how often  rcv:   Received hosts and IP prefixes
 *   xm:      X-Mailer / User-Agent words                ct: / cs:  part media types and charsets
 *   url:     link schemes, hosts and path words         html:  markup habits (tags, tricks)
 *   skip:    a long "word" (base64 junk, Asian text) as first char and length bucket
 *   mid:     the shape of the Message-ID               meta:  message shape (parts, sizes)
 */

/** Words shorter than this carry little; longer ones are mostly junk (SpamBayes' 3..12). */
const minWord = 3;
const maxWord = 12;
/** Body tokens beyond this many words add CPU, not accuracy. */
const maxBodyWords = 3000;

/** Header fields whose mere presence is not telling enough to count (every message has them). */
const ignoredHeaderNames = new Set(['received']);

function bucket(n: number): number {
  // Coarse log buckets: 0,1,2,3,4,5-8,9-16,…
  if (n <= 4) return n;
  return 2 ** Math.ceil(Math.log2(n));
}

/** Adds the word tokens of free text under a prefix. */
function addWords(out: Set<string>, text: string, prefix: string, limit: number): void {
  let count = 0;
  for (const raw of text.split(/\s+/)) {
    if (raw === '') continue;
    if (++count > limit) break;
    // Trailing and leading punctuation belongs to the sentence, not the word.
    const word = raw.toLowerCase().replace(/^[^\p{L}\p{N}$€£]+|[^\p{L}\p{N}$€£%!]+$/gu, '');
    if (word.length < minWord) continue;
    if (word.length > maxWord) {
      // SpamBayes: a long token says little as itself, but its first char and rough length do.
      if (word.includes('@')) {
        const [, domain] = word.split('@');
        if (domain) out.add(`${prefix}email:${domain}`);
      } else {
        out.add(`${prefix}skip:${word[0]} ${Math.floor(word.length / 10) * 10}`);
      }
      continue;
    }
    out.add(prefix + word);
  }
}

function addAddress(out: Set<string>, prefix: string, address: string): void {
  const at = address.lastIndexOf('@');
  const local = at >= 0 ? address.slice(0, at).toLowerCase() : address.toLowerCase();
  const domain = at >= 0 ? address.slice(at + 1).toLowerCase() : '';
  out.add(`${prefix}addr:${address.toLowerCase()}`);
  out.add(`${prefix}domain:${domain}`);
  // Spam's senders are often random: digits in the local part are a habit of throwaway accounts.
  out.add(`${prefix}local-digits:${/\d/.test(local) ? (local.replace(/\D/g, '').length > 3 ? 'many' : 'some') : 'none'}`);
  const labels = domain.split('.');
  if (labels.length >= 2) out.add(`${prefix}tld:${labels.slice(-1)[0]}`);
}

function hostOf(href: string): { scheme: string; host: string; path: string } | null {
  const m = /^(?:([a-z][a-z0-9+.-]*):)?\/\/([^/?#:\s]*)(?::\d+)?([^\s]*)/i.exec(href.startsWith('www.') ? `http://${href}` : href);
  if (!m) return null;
  return { scheme: (m[1] ?? 'http').toLowerCase(), host: (m[2] ?? '').toLowerCase().replace(/^.*@/, ''), path: m[3] ?? '' };
}

function addUrlTokens(out: Set<string>, input: SpamInput): void {
  let hosts = 0;
  for (const link of input.links) {
    const href = link.href;
    if (/^mailto:/i.test(href)) {
      out.add('url:mailto');
      continue;
    }
    const u = hostOf(href);
    if (!u) continue;
    out.add(`url:scheme:${u.scheme}`);
    if (/^\d+\.\d+\.\d+\.\d+$/.test(u.host)) {
      out.add('url:ip-host');
    } else if (u.host) {
      // Every parent domain, so a new subdomain of a known spam host still counts.
      const labels = u.host.split('.');
      for (let i = Math.max(0, labels.length - 4); i < labels.length - 1; i++) out.add(`url:${labels.slice(i).join('.')}`);
    }
    if (/%[0-9a-f]{2}/i.test(u.host)) out.add('url:encoded-host');
    for (const piece of u.path.toLowerCase().split(/[/?&=#.\-_+]+/)) {
      if (piece.length >= 3 && piece.length <= 12 && !/^\d+$/.test(piece)) out.add(`url:path:${piece}`);
    }
    if (++hosts >= 50) break;
  }
  out.add(`meta:links:${bucket(input.links.length)}`);
}

function addHtmlTokens(out: Set<string>, html: string): void {
  if (!html) return;
  // Tricks that hide or dress words up: comments inside words, tiny or white fonts, hex colours, forms.
  if (/[a-z]<!--[^]*?-->[a-z]/i.test(html)) out.add('html:comment-in-word');
  if (/font-size:\s*[01]px|size\s*=\s*"?[01]\b/i.test(html)) out.add('html:tiny-font');
  if (/color\s*[:=]\s*"?#?(?:fff|ffffff|white)\b/i.test(html)) out.add('html:white-text');
  if (/&#\d+;/.test(html)) out.add('html:numeric-entities');
}

function addHeaderTokens(out: Set<string>, input: SpamInput): void {
  const counts = new Map<string, number>();
  for (const h of input.headers) counts.set(h.key, (counts.get(h.key) ?? 0) + 1);
  for (const [name, n] of counts) {
    if (!ignoredHeaderNames.has(name)) out.add(`hdr:${name}:${Math.min(n, 3)}`);
  }
  out.add(`hdr:received-count:${bucket(counts.get('received') ?? 0)}`);

  for (const h of input.headers) {
    switch (h.key) {
      case 'received': {
        // Host names and the /24 of IPs the message passed through (SpamBayes' mine_received_headers).
        for (const m of h.value.matchAll(/\b(?:from|by)\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})/gi)) {
          const labels = (m[1] ?? '').toLowerCase().split('.');
          out.add(`rcv:${labels.slice(-2).join('.')}`);
          if (labels.length > 2) out.add(`rcv:${labels.slice(-3).join('.')}`);
        }
        for (const m of h.value.matchAll(/\[(\d+)\.(\d+)\.(\d+)\.\d+\]/g)) out.add(`rcv:ip:${m[1]}.${m[2]}.${m[3]}`);
        if (/\bwith\s+(e?smtps?a?|http|imap|local)/i.test(h.value)) out.add(`rcv:with:${(/\bwith\s+(\S+)/i.exec(h.value)?.[1] ?? '').toLowerCase()}`);
        break;
      }
      case 'x-mailer':
      case 'user-agent':
        addWords(out, h.value, 'xm:', 20);
        break;
      case 'message-id': {
        const m = /@([^>\s]+)>?/.exec(h.value);
        if (!m) out.add('mid:no-domain');
        else {
          const labels = (m[1] ?? '').toLowerCase().split('.');
          out.add(`mid:${labels.slice(-2).join('.')}`);
        }
        if (/^<?[A-Za-z0-9]{8,12}@/.test(h.value)) out.add('mid:short-random');
        break;
      }
      case 'to':
      case 'cc': {
        const n = h.value.split(',').length;
        out.add(`${h.key}:count:${bucket(n)}`);
        if (/undisclosed/i.test(h.value)) out.add(`${h.key}:undisclosed`);
        break;
      }
      case 'x-priority':
      case 'x-msmail-priority':
      case 'importance':
      case 'precedence':
      case 'mime-version':
      case 'content-transfer-encoding':
        out.add(`${h.key}:${h.value.trim().toLowerCase().slice(0, 20)}`);
        break;
      case 'list-id':
      case 'sender':
      case 'errors-to':
      case 'return-path':
      case 'delivered-to':
        for (const m of h.value.toLowerCase().matchAll(/[a-z0-9][a-z0-9.-]*\.[a-z]{2,}/g)) out.add(`${h.key}:${m[0]}`);
        break;
      case 'date': {
        // Spamware gets dates wrong in telling ways (missing zone, odd formats).
        const zone = /([+-]\d{4}|[A-Z]{2,4})\s*(\([^)]*\))?\s*$/.exec(h.value.trim());
        out.add(`date:zone:${zone ? zone[1] : 'none'}`);
        break;
      }
      default:
        break;
    }
  }
}

/** Subject words, and the punctuation and case habits of spam subjects. */
function addSubjectTokens(out: Set<string>, subject: string): void {
  if (!subject) {
    out.add('subject:none');
    return;
  }
  addWords(out, subject, 'subject:', 50);
  for (const m of subject.matchAll(/[!?$%*]{1,}/g)) out.add(`subject:punct:${m[0].slice(0, 3)}`);
  const letters = subject.replace(/[^A-Za-z]/g, '');
  if (letters.length >= 6 && letters === letters.toUpperCase()) out.add('subject:all-caps');
  if (/^(re|fwd?|aw):/i.test(subject.trim())) out.add(`subject:reply`);
  if (/\s{5,}\S+$/.test(subject)) out.add('subject:trailing-id');
  if (/[^\x00-\x7f]/.test(subject)) out.add('subject:8bit');
}

/** Word pairs of the body: "click here", "remove you". Only over a short prefix, to bound the model. */
function addBigrams(out: Set<string>, text: string, limit: number): void {
  let previous = '';
  let n = 0;
  for (const raw of text.split(/\s+/)) {
    const word = raw.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
    if (word.length < minWord || word.length > maxWord) {
      previous = '';
      continue;
    }
    if (previous) out.add(`bi:${previous} ${word}`);
    previous = word;
    if (++n > limit) break;
  }
}

export interface TokenizerOptions {
  bigrams: boolean;
}

export const defaultTokenizerOptions: TokenizerOptions = { bigrams: false };

export function tokenize(input: SpamInput, options: TokenizerOptions = defaultTokenizerOptions): Set<string> {
  const out = new Set<string>();
  addSubjectTokens(out, input.subject);
  if (input.from) {
    addAddress(out, 'from:', input.from.address);
    if (input.from.name) addWords(out, input.from.name, 'from:name:', 10);
    else out.add('from:no-name');
  } else out.add('from:none');
  if (input.replyTo && input.from && input.replyTo.toLowerCase() !== input.from.address.toLowerCase()) out.add('reply-to:differs');
  addHeaderTokens(out, input);
  for (const c of input.charsets) out.add(`cs:${c}`);
  for (const a of input.attachments) {
    const ext = /\.([a-z0-9]{1,5})$/i.exec(a.filename)?.[1];
    out.add(`att:${ext ? ext.toLowerCase() : a.mimeType}`);
  }
  // The body: plain text where there is one, the visible text of the HTML otherwise. Most HTML
  // mail has both as alternatives of the same words; counting both would double their weight.
  addWords(out, input.text, '', maxBodyWords);
  addWords(out, input.htmlText, '', maxBodyWords);
  if (options.bigrams) addBigrams(out, input.text || input.htmlText, maxBodyWords);
  addHtmlTokens(out, input.html);
  addUrlTokens(out, input);
  out.add(`meta:attachments:${bucket(input.attachments.length)}`);
  if (input.unparsable) out.add('meta:unparsable');
  return out;
}
