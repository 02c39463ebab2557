import net from 'node:net';

/** What clamd said about one stream. */
export type ClamdVerdict = { infected: false } | { infected: true; signature: string };

export interface ClamdOptions {
  host: string;
  port: number;
  /** Bound on the whole scan: connect, send, and clamd's answer. */
  timeoutMs: number;
  /** Bytes per INSTREAM chunk (clamd reads chunks of at most StreamMaxLength in total). */
  chunkBytes?: number;
}

/** clamd could not give a verdict (unreachable, timed out, refused the stream): never "clean". */
export class ClamdUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClamdUnavailable';
  }
}

/**
 * Parses clamd's reply to INSTREAM ("stream: OK", "stream: <signature> FOUND", "<text> ERROR"),
 * NUL- or newline-terminated (z- or n-prefixed commands). Anything else is not a verdict.
 */
export function parseClamdReply(reply: string): ClamdVerdict {
  const line = reply.replace(/[\0\r\n]+$/, '');
  if (/^(?:stream|\S+): OK$/.test(line)) return { infected: false };
  const found = /^(?:stream|\S+): (.+) FOUND$/.exec(line);
  if (found) return { infected: true, signature: found[1]! };
  throw new ClamdUnavailable(`clamd: ${line.endsWith(' ERROR') ? line : `unexpected reply ${JSON.stringify(line.slice(0, 200))}`}`);
}

/**
 * Scans a message with clamd's INSTREAM command over TCP (the clamd protocol: `zINSTREAM\0`,
 * then chunks each prefixed with its length as a 4-byte big-endian integer, then a zero-length
 * chunk; one reply line). The whole message goes as one stream, so clamd's mail scanner decodes
 * its MIME parts and archives itself.
 */
export function scanWithClamd(message: Buffer, opts: ClamdOptions): Promise<ClamdVerdict> {
  const chunkBytes = opts.chunkBytes ?? 64 * 1024;
  return new Promise((resolve, reject) => {
    let settled = false;
    const replyChunks: Buffer[] = [];
    const socket = net.connect({ host: opts.host, port: opts.port });
    const finish = (err: Error | null, verdict?: ClamdVerdict) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(verdict!);
    };
    const timer = setTimeout(() => finish(new ClamdUnavailable(`clamd at ${opts.host}:${opts.port}: no verdict within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    socket.on('error', (err) => finish(new ClamdUnavailable(`clamd at ${opts.host}:${opts.port}: ${err.message}`)));
    socket.on('data', (chunk: Buffer) => {
      replyChunks.push(chunk);
      const reply = Buffer.concat(replyChunks);
      // The reply ends with NUL (z-command); clamd closes the connection after it.
      if (reply.includes(0)) {
        try {
          finish(null, parseClamdReply(reply.toString('latin1')));
        } catch (err) {
          finish(err as Error);
        }
      }
    });
    socket.on('end', () => {
      if (settled) return;
      const reply = Buffer.concat(replyChunks).toString('latin1');
      try {
        finish(null, parseClamdReply(reply));
      } catch (err) {
        finish(reply.length === 0 ? new ClamdUnavailable(`clamd at ${opts.host}:${opts.port} closed the connection without a verdict`) : (err as Error));
      }
    });
    socket.on('connect', () => {
      socket.write('zINSTREAM\0');
      for (let offset = 0; offset < message.length; offset += chunkBytes) {
        const chunk = message.subarray(offset, offset + chunkBytes);
        const size = Buffer.alloc(4);
        size.writeUInt32BE(chunk.length, 0);
        socket.write(size);
        socket.write(chunk);
      }
      socket.write(Buffer.alloc(4));
    });
  });
}
