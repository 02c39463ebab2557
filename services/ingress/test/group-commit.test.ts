import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyEvent, StoreRef } from '@moat/contracts';
import { MoatError } from '@moat/runtime';
import { keyringFromConfig, MessageStore, type StoredMessage } from '@moat/store';
import { eventually, silentLog, testPool, type TestEnv } from '@moat/testkit';
import { GroupCommitStore, type BatchMessageWriter } from '../src/group-commit-store.js';
import { OutboundRelay } from '../src/outbound-relay.js';
import { RecipientPolicy } from '../src/recipient-policy.js';
import { SmtpEdge } from '../src/smtp-edge.js';
import { generateDevCertificate } from '../src/tls-credentials.js';
import { createIsolatedEnv, SmtpDialog } from './support.js';

/**
 * The SMTP edge over the real message store (real Postgres) with group commit, where the test
 * holds the first INSERT open so that the next sessions' DATA queue up behind it: they must then
 * share one INSERT, and each session's answer must follow its own batch.
 */
let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let messages: MessageStore;
const tenantId = randomUUID();

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  messages = new MessageStore(pool, keyringFromConfig({ MOAT_MASTER_KEY: t.env.MOAT_MASTER_KEY!, MOAT_MASTER_KEY_ID: t.env.MOAT_MASTER_KEY_ID ?? 'k1', MOAT_PREVIOUS_MASTER_KEYS: '' }));
});

afterAll(async () => {
  await pool?.end();
  await t?.cleanup();
});

/** The real store, with every INSERT recorded and the first one held until released. */
function heldWriter(opts: { failBatch?: number } = {}) {
  const batches: string[][] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const writer: BatchMessageWriter = {
    async putMany(batch: readonly StoredMessage[]): Promise<StoreRef[]> {
      const n = batches.push(batch.map((m) => m.id));
      if (n === 1) await held;
      if (n === opts.failBatch) throw new MoatError('STORE_WRITE_FAILED', 'message store write failed: connection terminated');
      return messages.putMany(batch);
    },
    delete: (ref) => messages.delete(ref),
  };
  return { writer, batches, release };
}

async function startEdge(writer: BatchMessageWriter) {
  const published: AnyEvent[] = [];
  const store = new GroupCommitStore(writer, { maxItems: 32, maxConcurrentWrites: 1, maxBytes: 4 * 1024 * 1024 });
  const edge = new SmtpEdge({
    listener: 'mx',
    hostname: 'mx.moat.test',
    maxMessageBytes: 64 * 1024,
    maxClients: 100,
    closeTimeoutMs: 1_000,
    intakeTimeoutMs: 20_000,
    tls: await generateDevCertificate('mx.moat.test'),
    policy: new RecipientPolicy(async () => ({ tenantId }), 3, silentLog),
    // Nobody relays here: only inbound mail.
    relay: new OutboundRelay({
      authenticate: async () => null,
      tenantForAddress: async () => null,
      findDomain: async () => null,
      messagesPerWindow: async () => 1,
      messages: { take: async () => Promise.reject(new Error('no outbound mail in this test')) },
      authFailures: { take: async () => Promise.reject(new Error('no AUTH in this test')), exceeded: async () => false },
      log: silentLog,
    }),
    maxRecipients: 3,
    clientName: async () => null,
    intake: {
      store,
      broker: {
        envelope: (type, payload, id = randomUUID()) => ({ v: 1, id, type, occurredAt: new Date().toISOString(), producer: 'test', payload }) as AnyEvent,
        async publish(_key, event) {
          published.push(event);
        },
      },
      log: silentLog,
    },
    log: silentLog,
  });
  const port = await edge.listen(0, '127.0.0.1');
  return {
    port,
    store,
    published,
    async stop() {
      await edge.close(1_000);
      await store.close();
    },
  };
}

/** A session up to the end of the message data; resolves with the DATA reply. */
async function sendData(port: number, n: number): Promise<string> {
  const { dialog } = await SmtpDialog.open(port);
  try {
    await dialog.command('EHLO client.test');
    expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 /);
    expect(await dialog.command(`RCPT TO:<user${n}@a.example>`)).toMatch(/^250 /);
    expect(await dialog.command('DATA')).toMatch(/^354 /);
    dialog.write(`Subject: message ${n}\r\n\r\nbody ${n}\r\n.\r\n`);
    return await dialog.next();
  } finally {
    dialog.close();
  }
}

async function rowsFor(ids: string[]): Promise<number> {
  return Number((await pool.query('SELECT count(*) AS n FROM messages WHERE id = ANY($1::uuid[])', [ids])).rows[0].n);
}

const queuedId = (reply: string) => /queued as ([0-9a-f-]{36})$/.exec(reply)?.[1];

describe('ingress group commit', () => {
  it('when DATA commands arrive while an INSERT runs, then they share the next INSERT and each gets 250 after its own commit', async () => {
    const w = heldWriter();
    const edge = await startEdge(w.writer);
    try {
      const first = sendData(edge.port, 0);
      await eventually(() => w.batches.length === 1 || undefined);
      const rest = Array.from({ length: 6 }, (_, i) => sendData(edge.port, i + 1));
      await eventually(() => edge.store.queued === 6 || undefined);
      // Nobody has an answer while their bodies are not committed.
      expect(edge.published).toEqual([]);
      w.release();
      const replies = await Promise.all([first, ...rest]);

      expect(w.batches.map((b) => b.length)).toEqual([1, 6]);
      for (const reply of replies) expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as /);
      const ids = replies.map((r) => queuedId(r)!);
      expect(new Set(ids).size).toBe(7);
      expect(await rowsFor(ids)).toBe(7);
      expect(edge.published.map((e) => (e.payload as { messageId: string }).messageId).sort()).toEqual([...ids].sort());
      // Each body is sealed on its own and reads back through its own reference.
      for (const event of edge.published) {
        const payload = event.payload as { messageId: string; store: StoreRef };
        const n = ids.indexOf(payload.messageId);
        expect((await messages.get(payload.store)).toString()).toBe(`Subject: message ${n}\r\n\r\nbody ${n}\r\n`);
      }
    } finally {
      await edge.stop();
    }
  });

  it('when a shared INSERT fails, then every session of that batch gets 451 4.3.0 and none of its messages is stored or published', async () => {
    const w = heldWriter({ failBatch: 2 });
    const edge = await startEdge(w.writer);
    try {
      const first = sendData(edge.port, 0);
      await eventually(() => w.batches.length === 1 || undefined);
      const rest = Array.from({ length: 5 }, (_, i) => sendData(edge.port, i + 1));
      await eventually(() => edge.store.queued === 5 || undefined);
      w.release();
      const [firstReply, ...restReplies] = await Promise.all([first, ...rest]);

      expect(w.batches.map((b) => b.length)).toEqual([1, 5]);
      expect(firstReply).toMatch(/^250 2\.0\.0 /);
      expect(restReplies).toEqual(Array.from({ length: 5 }, () => '451 4.3.0 Temporary failure, please try again later'));
      expect(await rowsFor(w.batches[1]!)).toBe(0);
      expect(edge.published.map((e) => (e.payload as { messageId: string }).messageId)).toEqual([queuedId(firstReply)]);
    } finally {
      await edge.stop();
    }
  });
});
