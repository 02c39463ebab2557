import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomerServer, createTestEnv, eventually, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import { startStack, type Stack } from './support/stack.js';
import { ApiClient } from './support/api.js';

// Every message of the MIME torture corpus (malformed headers, deep nesting, broken encodings,
// huge headers) goes through the whole stack: each must be accepted and reach the customer's
// server byte for byte after Moat's prepended headers — none may crash a consumer or be parked.

const dir = fileURLToPath(new URL('./fixtures/corpus/mime/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));

/** SMTP needs CRLF line ends (the corpus has LF files): bare LF and bare CR become CRLF. */
function toCrlf(buf: Buffer): Buffer {
  const text = buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text.endsWith('\r\n') ? text : `${text}\r\n`, 'latin1');
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let t: TestEnv;
let stack: Stack;
let pool: ReturnType<typeof testPool>;
const customer = new CustomerServer();
const domain = `corpus${randomBytes(3).toString('hex')}.example`;

beforeAll(async () => {
  await customer.start();
  // This suite is about parsing robustness: every message must come out the other side. Some
  // torture messages look like spam to the classifier (no From, no Date, odd attachments), so
  // only GTUBE-level scores would quarantine here.
  t = await createTestEnv({ MOAT_DOMAIN_CACHE_MS: '0', MOAT_ROUTE_CACHE_MS: '0', MOAT_FILTER_SPAM_QUARANTINE_SCORE: '1000' });
  pool = testPool(t);
  stack = await startStack(t.env);
  await new ApiClient(`http://127.0.0.1:${stack.httpPort}`, t.env.MOAT_BOOTSTRAP_TOKEN!).provision('Corpus', [
    { name: domain, routes: [{ host: '127.0.0.1', port: customer.port, priority: 10 }] },
  ]);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await pool?.end();
  await customer.stop().catch(() => {});
  await t?.cleanup();
}, 60_000);

describe('the MIME torture corpus', () => {
  it(`when each of the ${files.length} corpus messages is sent, then each is delivered once with its bytes intact and nothing is parked`, async () => {
    expect(files.length).toBeGreaterThan(90);
    const sent = new Map<string, string>();
    // Five sessions at a time, each message in its own transaction to its own recipient.
    const queue = [...files];
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        for (let file = queue.shift(); file; file = queue.shift()) {
          const raw = toCrlf(readFileSync(`${dir}${file}`));
          const rcpt = `${createHash('sha1').update(file).digest('hex').slice(0, 12)}@${domain}`;
          const res = await sendSmtp({ port: stack.smtpPort, from: 'corpus@outside.test', to: [rcpt], raw });
          expect(res.code, `${file}: ${res.response}`).toBe(250);
          sent.set(rcpt, sha256(raw));
        }
      }),
    );
    await eventually(() => customer.transactions.length >= sent.size, 60_000, 200);
    for (const [rcpt, digest] of sent) {
      const txs = customer.transactions.filter((tx) => tx.rcptTo.includes(rcpt));
      expect(txs, rcpt).toHaveLength(1);
      // What arrived is Moat's trace and verdict headers followed by the original bytes.
      const prefix = prependedPrefix(txs[0]!.data, digest);
      expect(prefix, `${rcpt}: original bytes not found intact`).not.toBeNull();
      expect(prefix!, rcpt).toMatch(/^(?:(?:Received|Authentication-Results|X-Moat-[\w-]+):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+$/);
    }
    const parked = await pool.query('SELECT count(*)::int AS n FROM parked_events');
    expect(parked.rows[0].n).toBe(0);
  }, 180_000);
});

/**
 * The header block in front of the original bytes: the shortest prefix, ending at a line
 * boundary, after which the rest hashes to the digest of what was sent; null when none does.
 */
function prependedPrefix(data: Buffer, digest: string): string | null {
  for (let i = 0; i < data.length; ) {
    if (sha256(data.subarray(i)) === digest) return data.subarray(0, i).toString('latin1');
    const next = data.indexOf('\r\n', i);
    if (next < 0) return null;
    i = next + 2;
  }
  return null;
}
