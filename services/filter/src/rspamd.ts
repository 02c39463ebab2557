import http from 'node:http';
import https from 'node:https';
import { z } from 'zod';
import type { ScanEnvelope } from './spam-scanners.js';

/** What rspamd said about one message (the fields of its /checkv2 reply Moat uses). */
export interface RspamdResult {
  score: number;
  /** The score of rspamd's `reject` action (its "required score"). */
  requiredScore: number;
  /** rspamd's action: `no action`, `greylist`, `add header`, `rewrite subject`, `soft reject`, `reject` (or a custom one). */
  action: string;
  /** The symbols that fired, in rspamd's order. */
  symbols: Array<{ name: string; score: number }>;
}

/** The SMTP context rspamd judges a message in (sent as its HTTP request headers). */
export type RspamdEnvelope = Omit<ScanEnvelope, 'received'>;

export interface RspamdOptions {
  /** The worker's base URL (http://host:11333); /checkv2 is appended. */
  url: string;
  /** Bound on the whole request: connect, upload, rspamd's work, the reply. */
  timeoutMs: number;
  /** Sent as the Password header (a controller, or a proxy in front of the worker, may ask for one). */
  password?: string | null;
  /** A reply larger than this is not read (a few KiB is usual; a runaway symbol list is not a verdict). */
  maxResponseBytes?: number;
}

/** rspamd gave no verdict (unreachable, timed out, an error status, a reply that is not one): never "clean". */
export class RspamdUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RspamdUnavailable';
  }
}

const defaultMaxResponseBytes = 1024 * 1024;

const replySchema = z.object({
  score: z.number().finite(),
  required_score: z.number().finite(),
  action: z.string().min(1).max(64),
  symbols: z.record(z.string(), z.object({ score: z.number().finite().optional() })).optional(),
});

/** Parses a /checkv2 reply body; anything that is not a complete verdict throws RspamdUnavailable. */
export function parseRspamdReply(body: string): RspamdResult {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new RspamdUnavailable(`rspamd: reply is not JSON: ${JSON.stringify(body.slice(0, 200))}`);
  }
  const parsed = replySchema.safeParse(json);
  if (!parsed.success) {
    const error = typeof (json as { error?: unknown } | null)?.error === 'string' ? `: ${(json as { error: string }).error.slice(0, 200)}` : '';
    throw new RspamdUnavailable(`rspamd: reply is not a verdict (${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')})${error}`);
  }
  const { score, required_score: requiredScore, action, symbols = {} } = parsed.data;
  return {
    score,
    requiredScore,
    action,
    symbols: Object.entries(symbols).map(([name, s]) => ({ name, score: s.score ?? 0 })),
  };
}

/**
 * An HTTP header value from text that came from the SMTP client: control characters (CR, LF:
 * header injection) become spaces, and UTF-8 (SMTPUTF8 addresses) goes as its bytes, which
 * Node writes unchanged when the string holds them one per character (latin1).
 */
function headerValue(value: string): string {
  return Buffer.from(value.replace(/[\0-\x1f\x7f]/g, ' '), 'utf8').toString('latin1');
}

/** The request headers of rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html). */
export function rspamdRequestHeaders(envelope: RspamdEnvelope, password: string | null | undefined): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {
    IP: headerValue(envelope.ip),
    Helo: headerValue(envelope.helo),
    // The null reverse-path (a bounce) is written as SMTP writes it.
    From: headerValue(envelope.mailFrom === '' ? '<>' : envelope.mailFrom),
    // One Rcpt header per recipient: rspamd reads each as one envelope recipient.
    Rcpt: envelope.rcptTo.map(headerValue),
    'Queue-Id': headerValue(envelope.queueId),
  };
  if (envelope.hostname) headers.Hostname = headerValue(envelope.hostname);
  if (password) headers.Password = headerValue(password);
  return headers;
}

/**
 * Asks rspamd about one message: POST /checkv2 with the raw message as the body and the SMTP
 * context as headers, then the JSON verdict. Every way of not getting a verdict is a
 * RspamdUnavailable, so the caller can apply its policy (retry or deliver tagged), never pass.
 */
export function checkWithRspamd(raw: Buffer, envelope: RspamdEnvelope, opts: RspamdOptions): Promise<RspamdResult> {
  const maxBytes = opts.maxResponseBytes ?? defaultMaxResponseBytes;
  const target = new URL('checkv2', opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, result?: RspamdResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const req = client.request(target, {
      method: 'POST',
      headers: { ...rspamdRequestHeaders(envelope, opts.password), 'Content-Length': raw.length, 'Content-Type': 'message/rfc822' },
      // One connection per request: a pooled socket that rspamd closed meanwhile fails a request for nothing.
      agent: false,
    });
    const timer = setTimeout(() => finish(new RspamdUnavailable(`rspamd at ${target.host}: no verdict within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    req.on('error', (err) => finish(new RspamdUnavailable(`rspamd at ${target.host}: ${err.message}`)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          finish(new RspamdUnavailable(`rspamd at ${target.host}: reply larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(new RspamdUnavailable(`rspamd at ${target.host}: ${err.message}`)));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          finish(new RspamdUnavailable(`rspamd at ${target.host}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
          return;
        }
        try {
          finish(null, parseRspamdReply(body));
        } catch (err) {
          finish(err as Error);
        }
      });
    });
    req.end(raw);
  });
}
