import net from 'node:net';

/** What spamd said about one message (the SYMBOLS command's reply). */
export interface SpamdResult {
  /** spamd's own judgement: its score reached its threshold (`required_score`, 5 by default). */
  isSpam: boolean;
  score: number;
  threshold: number;
  /** The names of the rules that hit (SYMBOLS gives names, not points). */
  symbols: string[];
}

export interface SpamdOptions {
  host: string;
  port: number;
  /** Bound on the whole exchange: connect, send, spamd's checks, the reply. */
  timeoutMs: number;
  /** A reply larger than this is not read (a SYMBOLS reply is a line of rule names). */
  maxResponseBytes?: number;
}

/** spamd gave no verdict (unreachable, timed out, an error code, a reply that is not one): never "clean". */
export class SpamdUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpamdUnavailable';
  }
}

const defaultMaxResponseBytes = 64 * 1024;

/**
 * Parses spamd's reply to SYMBOLS (spamd's protocol, SPAMC/1.5):
 *
 *   SPAMD/1.1 0 EX_OK
 *   Content-length: 68
 *   Spam: True ; 1003.3 / 5.0
 *
 *   GTUBE,MISSING_DATE,…
 *
 * A non-zero code (an EX_* error from sysexits.h) or a reply without the Spam header is no verdict.
 */
export function parseSpamdReply(reply: string): SpamdResult {
  const end = reply.indexOf('\r\n\r\n');
  const head = end === -1 ? reply : reply.slice(0, end);
  const body = end === -1 ? '' : reply.slice(end + 4);
  const [status = '', ...headers] = head.split('\r\n');
  const code = /^SPAMD\/\d+\.\d+ (\d+) (.*)$/.exec(status);
  if (!code) throw new SpamdUnavailable(`spamd: unexpected reply ${JSON.stringify(reply.slice(0, 200))}`);
  if (code[1] !== '0') throw new SpamdUnavailable(`spamd: error ${code[1]} ${code[2]!.slice(0, 200)}`);
  for (const header of headers) {
    const spam = /^Spam:\s*(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*\/\s*(-?\d+(?:\.\d+)?)\s*$/i.exec(header);
    if (!spam) continue;
    return {
      isSpam: /^(?:true|yes)$/i.test(spam[1]!),
      score: Number(spam[2]),
      threshold: Number(spam[3]),
      symbols: body.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
    };
  }
  throw new SpamdUnavailable(`spamd: reply without a Spam header: ${JSON.stringify(head.slice(0, 200))}`);
}

/**
 * Asks spamd about one message over TCP: `SYMBOLS SPAMC/1.5`, Content-length, a blank line and
 * the message; spamd answers and closes the connection. Every way of not getting a verdict is a
 * SpamdUnavailable, so the caller applies its policy (retry or deliver tagged), never passes.
 */
export function checkWithSpamd(message: Buffer, opts: SpamdOptions): Promise<SpamdResult> {
  const maxBytes = opts.maxResponseBytes ?? defaultMaxResponseBytes;
  const where = `spamd at ${opts.host}:${opts.port}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    let size = 0;
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: opts.host, port: opts.port });
    const finish = (err: Error | null, result?: SpamdResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new SpamdUnavailable(`${where}: no verdict within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    socket.setNoDelay(true);
    socket.on('error', (err) => finish(new SpamdUnavailable(`${where}: ${err.message}`)));
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) finish(new SpamdUnavailable(`${where}: reply larger than ${maxBytes} bytes`));
      else chunks.push(chunk);
    });
    socket.on('end', () => {
      if (size === 0) {
        finish(new SpamdUnavailable(`${where} closed the connection without a verdict`));
        return;
      }
      try {
        finish(null, parseSpamdReply(Buffer.concat(chunks).toString('latin1')));
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on('connect', () => {
      // Corked: the request head and the message leave together, no small packet waiting on an ACK.
      socket.cork();
      socket.write(`SYMBOLS SPAMC/1.5\r\nContent-length: ${message.length}\r\n\r\n`, 'latin1');
      socket.write(message);
      socket.uncork();
    });
  });
}
