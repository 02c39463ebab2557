import type { StoreRef } from '@moat/contracts';
import { MoatError, type Pool, type PoolClient } from '@moat/runtime';
import { open, seal, type Keyring } from './crypto.js';

export interface StoredMessage {
  id: string;
  tenantId: string;
  receivedAt: Date;
  sha256: string;
  raw: Buffer;
}

/** One reference's outcome in a batched read: its body, or why it has none (for that item alone). */
export type BodyRead = { body: Buffer } | { error: MoatError };

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
    const [ref] = await this.putMany([msg]);
    return ref!;
  }

  /**
   * Stores several bodies with one statement and one commit: Postgres costs per statement and
   * commit, not per byte, so concurrent writers (ingress sessions) share the round trip. Each body
   * is sealed with its own data key as in put(). Rows already present (a retried id) are left as
   * they are (ON CONFLICT DO NOTHING). All or nothing: a failure stores none of them.
   */
  async putMany(messages: readonly StoredMessage[]): Promise<StoreRef[]> {
    return this.insert(this.pool, messages);
  }

  /**
   * Stores a body inside the caller's transaction, so it commits (or not) with the caller's other
   * writes: a quarantine digest is stored in the transaction that records it as sent.
   */
  async putWithin(client: Pick<PoolClient, 'query'>, msg: StoredMessage): Promise<StoreRef> {
    const [ref] = await this.insert(client, [msg]);
    return ref!;
  }

  private async insert(db: Pick<Pool, 'query'> | Pick<PoolClient, 'query'>, messages: readonly StoredMessage[]): Promise<StoreRef[]> {
    if (messages.length === 0) return [];
    // One VALUES row per message with its own parameters: a Buffer parameter goes to Postgres
    // in binary, as is. (A bytea[] array parameter would travel as one text literal of hex
    // digits: twice the size, built in JS, then parsed character by character by array_in.)
    const values: unknown[] = [];
    const rows: string[] = [];
    for (const msg of messages) {
      const sealed = seal(this.keyring, msg.raw, msg.id);
      const n = values.length;
      rows.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6}, $${n + 7}, $${n + 8}, $${n + 9}, $${n + 10})`);
      // ISO strings keep the exact instant (milliseconds, UTC) the store reference carries.
      values.push(msg.id, msg.receivedAt.toISOString(), msg.tenantId, msg.raw.length, msg.sha256, sealed.keyId, sealed.wrappedKey, sealed.iv, sealed.tag, sealed.ciphertext);
    }
    try {
      await (db as Pick<Pool, 'query'>).query(
        `INSERT INTO messages (id, received_at, tenant_id, size, sha256, key_id, wrapped_key, iv, tag, body)
         VALUES ${rows.join(', ')}
         ON CONFLICT DO NOTHING`,
        values,
      );
    } catch (err) {
      throw new MoatError('STORE_WRITE_FAILED', `message store write failed: ${(err as Error).message}`, { cause: err });
    }
    return messages.map((msg) => ({ messageId: msg.id, receivedAt: msg.receivedAt.toISOString() }));
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
   * Reads and decrypts several bodies in one statement (a per-statement cost dominates a small
   * read, so a consumer batches its reads). One result per reference, in order: a reference that
   * points nowhere yields NOT_FOUND and a row that fails authentication DECRYPT_FAILED (both
   * permanent) for that item only; an unreachable database throws STORE_READ_FAILED for all.
   * The (received_at, id) pairs probe the primary key of each day partition they address.
   */
  async getMany(refs: readonly StoreRef[]): Promise<BodyRead[]> {
    if (refs.length === 0) return [];
    let rows: Array<SealedBodyRow & { id: string }>;
    try {
      const res = await this.pool.query<SealedBodyRow & { id: string }>(
        `SELECT id, key_id, wrapped_key, iv, tag, body FROM messages
         WHERE (received_at, id) IN (SELECT * FROM unnest($1::timestamptz[], $2::uuid[]))`,
        [refs.map((r) => r.receivedAt), refs.map((r) => r.messageId)],
      );
      rows = res.rows;
    } catch (err) {
      throw new MoatError('STORE_READ_FAILED', `message store read failed: ${(err as Error).message}`, { cause: err });
    }
    // Message ids are UUIDs (unique on their own); Postgres returns them lower-case.
    const byId = new Map(rows.map((row) => [row.id, row]));
    return refs.map((ref): BodyRead => {
      const row = byId.get(ref.messageId.toLowerCase());
      if (!row) return { error: new MoatError('NOT_FOUND', `message ${ref.messageId} is not in the store`, { permanent: true }) };
      try {
        return { body: this.openRow(ref, row) };
      } catch (err) {
        if (err instanceof MoatError) return { error: err };
        throw err;
      }
    });
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
