import type { StoreRef } from '@moat/contracts';
import { MoatError, type Pool } from '@moat/runtime';
import { open, seal, type Keyring } from './crypto.js';

export interface StoredMessage {
  id: string;
  tenantId: string;
  receivedAt: Date;
  sha256: string;
  raw: Buffer;
}

/** The sealed columns of a messages row, as selected from Postgres. */
export interface SealedBodyRow {
  key_id: string;
  wrapped_key: Buffer;
  iv: Buffer;
  tag: Buffer;
  body: Buffer;
}

/**
 * The message store: bodies are written once and read by the filter, the archive and every
 * delivery attempt (single-instance storage). Reads address the day partition through the
 * store reference.
 */
export class MessageStore {
  constructor(
    private readonly pool: Pool,
    private readonly keyring: Keyring,
  ) {}

  async put(msg: StoredMessage): Promise<StoreRef> {
    const sealed = seal(this.keyring, msg.raw, msg.id);
    try {
      await this.pool.query(
        `INSERT INTO messages (id, received_at, tenant_id, size, sha256, key_id, wrapped_key, iv, tag, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING`,
        [msg.id, msg.receivedAt, msg.tenantId, msg.raw.length, msg.sha256, sealed.keyId, sealed.wrappedKey, sealed.iv, sealed.tag, sealed.ciphertext],
      );
    } catch (err) {
      throw new MoatError('STORE_WRITE_FAILED', `message store write failed: ${(err as Error).message}`, { cause: err });
    }
    return { messageId: msg.id, receivedAt: msg.receivedAt.toISOString() };
  }

  /** Reads and decrypts a body; throws NOT_FOUND (permanent) when the reference points nowhere. */
  async get(ref: StoreRef): Promise<Buffer> {
    let rows: SealedBodyRow[];
    try {
      const res = await this.pool.query<SealedBodyRow>('SELECT key_id, wrapped_key, iv, tag, body FROM messages WHERE received_at = $1 AND id = $2', [ref.receivedAt, ref.messageId]);
      rows = res.rows;
    } catch (err) {
      throw new MoatError('STORE_READ_FAILED', `message store read failed: ${(err as Error).message}`, { cause: err });
    }
    const row = rows[0];
    if (!row) throw new MoatError('NOT_FOUND', `message ${ref.messageId} is not in the store`, { permanent: true });
    return this.openRow(ref, row);
  }

  /**
   * Decrypts a body whose row was read by another statement (e.g. a sender's claim that joins the
   * messages table, saving a round trip). Throws DECRYPT_FAILED like get().
   */
  openRow(ref: StoreRef, row: SealedBodyRow): Buffer {
    return open(this.keyring, { keyId: row.key_id, wrappedKey: row.wrapped_key, iv: row.iv, tag: row.tag, ciphertext: row.body }, ref.messageId);
  }

  async delete(ref: StoreRef): Promise<void> {
    await this.pool.query('DELETE FROM messages WHERE received_at = $1 AND id = $2', [ref.receivedAt, ref.messageId]);
  }
}
