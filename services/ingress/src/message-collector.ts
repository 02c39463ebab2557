import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

export interface CollectedMessage {
  /** The bytes the client sent after dot-unstuffing; empty when oversize. */
  raw: Buffer;
  /** Bytes received (all of them, also past the limit). */
  size: number;
  /** sha256 (hex) of raw. */
  sha256: string;
  /** The message went over the limit: nothing was kept. */
  oversize: boolean;
}

/** smtp-server's data stream: a Readable that also says when the SIZE limit was passed. */
export type DataStream = Readable & { sizeExceeded?: boolean };

/**
 * Reads a DATA stream to its end, hashing as it goes and keeping the chunks only up to
 * maxBytes: an oversize message is read to its end (the client is still sending and must get
 * its 552 after the final dot) but never buffered. Rejects when the stream fails or closes
 * before its end (the client went away in mid-message: nothing is kept).
 */
export function collectMessage(stream: DataStream, maxBytes: number): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
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
      chunks.push(chunk);
    });
    stream.once('end', () => {
      ended = true;
      oversize ||= stream.sizeExceeded === true;
      if (oversize) resolve({ raw: Buffer.alloc(0), size, sha256: '', oversize });
      else resolve({ raw: Buffer.concat(chunks, size), size, sha256: hash.digest('hex'), oversize });
    });
    stream.once('error', (err) => reject(err));
    stream.once('close', () => {
      if (!ended) reject(new Error('data stream closed before the end of the message'));
    });
  });
}
