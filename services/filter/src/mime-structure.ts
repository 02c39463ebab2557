import type { CheckResult } from '@moat/contracts';

/**
 * The MIME structure check: how deep a message's multiparts (and attached messages) nest and how
 * many parts it has, read from the whole message by following its boundaries line by line (no
 * decoding, no parse tree: linear in the size, a few MiB/s per core is plenty).
 *
 * Why a check of its own: parsers and scanners give up past a depth (postal-mime throws at 64
 * levels, clamd stops at MaxRecursion), and a part nobody looked at is where an evasion hides.
 * Real mail nests a handful of levels (a forward of a forward with attachments is about ten), so
 * a message beyond the limit is not something to guess about: it is quarantined (category
 * policy) with the reason, releasable by the tenant, never a crash and never delivered unread.
 */

export interface MimeLimits {
  /** Most multipart / message-in-message levels a message may nest. */
  maxDepth: number;
  /** Most body parts a message may have. */
  maxParts: number;
}

export const defaultMimeLimits: MimeLimits = { maxDepth: 40, maxParts: 1000 };

export interface MimeStructure {
  /** Deepest nesting seen (0: a single-part message). Counting stops past the limit. */
  depth: number;
  /** Body parts seen (delimiter lines). Counting stops past the limit. */
  parts: number;
}

const LF = 0x0a;

/** A nesting level: a multipart's boundary, or null for an attached message (no boundary of its own). */
type Level = string | null;

/** The boundary of a multipart Content-Type value, or null when it is not a multipart (or has none). */
export function multipartBoundary(contentType: string): string | null {
  if (!/^\s*multipart\s*\//i.test(contentType)) return null;
  const m = /;\s*boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(contentType);
  const boundary = m ? (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!) : '';
  return boundary.length > 0 ? boundary : null;
}

const isEncapsulatedMessage = (contentType: string) => /^\s*message\s*\/\s*(?:rfc822|global)\b/i.test(contentType);

export function scanMimeStructure(raw: Buffer, limits: MimeLimits = defaultMimeLimits): MimeStructure {
  const stack: Level[] = [];
  let depth = 0;
  let parts = 0;
  let inHeaders = true;
  /** The Content-Type field of the header block being read (unfolded), or null. */
  let contentType: string | null = null;
  let readingContentType = false;
  let pos = 0;
  while (pos < raw.length) {
    let end = raw.indexOf(LF, pos);
    if (end < 0) end = raw.length;
    // Body lines that cannot be a delimiter are skipped without making a string of them.
    if (!inHeaders && (stack.length === 0 || raw[pos] !== 0x2d || raw[pos + 1] !== 0x2d)) {
      pos = end + 1;
      continue;
    }
    // latin1: one char per byte; boundaries and header names are ASCII.
    let line = raw.toString('latin1', pos, end > pos && raw[end - 1] === 0x0d ? end - 1 : end);
    pos = end + 1;
    if (inHeaders) {
      if (line.length === 0) {
        inHeaders = false;
        readingContentType = false;
        const ct = contentType ?? '';
        contentType = null;
        const boundary = multipartBoundary(ct);
        if (boundary !== null) stack.push(boundary);
        else if (isEncapsulatedMessage(ct)) {
          // The body is a whole message: its header block starts now, one level down.
          stack.push(null);
          inHeaders = true;
        }
        depth = Math.max(depth, stack.length);
        if (depth > limits.maxDepth) break;
        continue;
      }
      if (line[0] === ' ' || line[0] === '\t') {
        if (readingContentType) contentType += line;
      } else {
        readingContentType = /^content-type\s*:/i.test(line);
        if (readingContentType) contentType = line.slice(line.indexOf(':') + 1);
      }
      continue;
    }
    // RFC 2046 §5.1.1: a delimiter may carry trailing whitespace.
    line = line.replace(/[ \t]+$/, '');
    for (let i = stack.length - 1; i >= 0; i--) {
      const b = stack[i];
      if (b === null || b === undefined) continue;
      if (line === `--${b}`) {
        // A new part of the multipart at level i; any deeper level left open ends here.
        stack.length = i + 1;
        parts++;
        inHeaders = true;
        contentType = null;
        readingContentType = false;
        break;
      }
      if (line === `--${b}--`) {
        stack.length = i;
        break;
      }
    }
    if (parts > limits.maxParts) break;
  }
  return { depth, parts };
}

export function mimeStructureCheck(raw: Buffer, limits: MimeLimits = defaultMimeLimits): CheckResult {
  const s = scanMimeStructure(raw, limits);
  if (s.depth > limits.maxDepth) return { check: 'mime', result: 'fail', reason: `mime: parts nested more than ${limits.maxDepth} levels deep` };
  if (s.parts > limits.maxParts) return { check: 'mime', result: 'fail', reason: `mime: more than ${limits.maxParts} body parts` };
  return { check: 'mime', result: 'pass', reason: `${s.parts} part${s.parts === 1 ? '' : 's'}, nested ${s.depth} level${s.depth === 1 ? '' : 's'} deep` };
}
