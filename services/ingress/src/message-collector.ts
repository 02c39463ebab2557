import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { LineEndingScanner } from './line-ending-scanner.js';

export interface CollectedMessage {
  /** The bytes the client sent after dot-unstuffing; empty when oversize. */
  raw: Buffer;
  /** Bytes received (all of them, also past the limit). */
  size: number;
  /** sha256 (hex) of raw. */
  sha256: string;
  /** The message went over the limit: nothing was kept. */
  oversize: boolean;
  /**
   * The bytes hold a bare CR or LF (RFC 5321 §2.3.8): the message must be refused, it cannot be
   * relayed unchanged (see line-ending-scanner.ts). Not judged for an oversize message.
   */
  bareLineEnding: boolean;
}

/** smtp-server's data stream: a Readable that also says when the SIZE limit was passed. */
export type DataStream = Readable & { sizeExceeded?: boolean };

/**
 * Reads a DATA stream to its end, hashing as it goes and keeping the chunks only up to
 * maxBytes: an oversize message is read to its end (the client is still sending and must get
 * its 552 after the final dot) but never buffered. Rejects when the stream fails or closes
 * before its end (the client went away in mid-message: nothing is kept). Scans for bare CR/LF on
 * the way, so that the verdict is ready at the final dot without a second pass over the body.
 */
export function collectMessage(stream: DataStream, maxBytes: number): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const lineEndings = new LineEndingScanner();
    let chunks: Buffer[] = [];
    let size = 0;
    let oversize = false;
    let ended = false;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (oversize) return;
      if (size > maxBytes || stream.sizeExceeded) {
        oversize = true;
        chunks = [];
        return;
      }
      hash.update(chunk);
      lineEndings.push(chunk);
      chunks.push(chunk);
    });
    stream.once('end', () => {
      ended = true;
      oversize ||= stream.sizeExceeded === true;
      if (oversize) resolve({ raw: Buffer.alloc(0), size, sha256: '', oversize, bareLineEnding: false });
      else resolve({ raw: Buffer.concat(chunks, size), size, sha256: hash.digest('hex'), oversize, bareLineEnding: lineEndings.end() });
    });
    stream.once('error', (err) => reject(err));
    stream.once('close', () => {
      if (!ended) reject(new Error('data stream closed before the end of the message'));
    });
  });
}
