import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { MessageContentScanner, type ContentFault, type ContentLimits } from './message-content-scanner.js';

/** Why a received message is refused: over the size limit, or a fault of its bytes. */
export type MessageRefusal = 'oversize' | ContentFault;

export interface CollectedMessage {
  /** The bytes the client sent after dot-unstuffing; empty when refused. */
  raw: Buffer;
  /** Bytes received (all of them, also past the limit). */
  size: number;
  /** sha256 (hex) of raw; empty when refused. */
  sha256: string;
  /**
   * Why the message must be refused, or null when it may be stored. An oversize message is only
   * counted, so its content is not judged (552 wins); see message-content-scanner.ts for the rest.
   */
  refusal: MessageRefusal | null;
}

export interface CollectLimits extends ContentLimits {
  /** Largest message (MOAT_MAX_MESSAGE_BYTES). */
  maxBytes: number;
}

/** smtp-server's data stream: a Readable that also says when the SIZE limit was passed. */
export type DataStream = Readable & { sizeExceeded?: boolean };

/**
 * Reads a DATA stream to its end, hashing and judging its content as it goes (no second pass at
 * the final dot). The chunks are kept only while the message may still be stored: from the
 * moment it is over the size limit or its content is at fault they are dropped and the rest is
 * only counted, because the client is still sending and must get its refusal after the final dot.
 *
 * Memory: an accepted message is held once, as its chunks, and joined into one buffer at the end
 * (the store seals one contiguous body); the chunk list is let go at that moment, so during the
 * commit the body exists once in ingress. Rejects when the stream fails or closes before its end
 * (the client went away in mid-message: nothing is kept).
 */
export function collectMessage(stream: DataStream, limits: CollectLimits): Promise<CollectedMessage> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const content = new MessageContentScanner(limits);
    let chunks: Buffer[] = [];
    let size = 0;
    let oversize = false;
    let refused = false;
    let ended = false;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (oversize) return;
      if (size > limits.maxBytes || stream.sizeExceeded) {
        oversize = true;
        chunks = [];
        return;
      }
      content.push(chunk);
      if (refused) return;
      if (content.fault !== null) {
        refused = true;
        chunks = [];
        return;
      }
      hash.update(chunk);
      chunks.push(chunk);
    });
    stream.once('end', () => {
      ended = true;
      oversize ||= stream.sizeExceeded === true;
      const refusal: MessageRefusal | null = oversize ? 'oversize' : content.end();
      if (refusal !== null) {
        chunks = [];
        resolve({ raw: Buffer.alloc(0), size, sha256: '', refusal });
        return;
      }
      const raw = Buffer.concat(chunks, size);
      chunks = [];
      resolve({ raw, size, sha256: hash.digest('hex'), refusal: null });
    });
    stream.once('error', (err) => reject(err));
    stream.once('close', () => {
      if (!ended) reject(new Error('data stream closed before the end of the message'));
    });
  });
}
