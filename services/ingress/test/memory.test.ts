import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@moat/runtime';
import { keyringFromConfig, MessageStore, TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import { configSchema, type RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe } from './support.js';

// Memory stays bounded under the two loads the issue names: 1,000 concurrent idle connections,
// and a client streaming a message at the size limit. Ingress runs in this process, so its heap
// and buffers are measured here after a full garbage collection; the idle clients run in a child
// process so that their sockets do not count.

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap and Buffer memory still reachable (after two full collections). */
function retained(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const MiB = 1024 * 1024;
/** What the test itself allocates stays reachable through here until the file ends. */
const keep: Buffer[] = [];
const maxMessageBytes = 8 * MiB;
const idleClients = 1_000;

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let ingress: RunningIngress;
let tenant: string;
/** retained() at the start of the last whileInsertWaits. */
let baseline = 0;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  tenant = (await tenants.createTenant({ name: 'Tenant A' })).id;
  await tenants.createDomain(tenant, { name: 'a.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
  // Room for the idle crowd plus the normal client; the per-address limit stays at its default
  // (the crowd comes from 20 addresses).
  ingress = await startIngress(t, { MOAT_SMTP_MAX_CLIENTS: String(idleClients + 50), MOAT_MAX_MESSAGE_BYTES: String(maxMessageBytes) });
  // Warm up the code paths (and caches) a message takes, so they are not counted as growth.
  await aNormalClientIsServed();
});

afterAll(async () => {
  await ingress?.stop();
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
});

async function aNormalClientIsServed(): Promise<void> {
  const raw = makeMessage({ from: 'sender@outside.example', to: ['alice@a.example'] });
  const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to: ['alice@a.example'], raw });
  expect(sent.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
  await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(sent.response)));
}

/**
 * A child process that opens `count` connections from 20 loopback addresses, reads each greeting
 * and then says nothing; it prints {greeted, refused} once every connection has its greeting.
 */
const crowdScript = `
const net = require('node:net');
const [port, count] = process.argv.slice(1).map(Number);
let greeted = 0, refused = 0;
const sockets = [];
const settle = (ok) => { ok ? greeted++ : refused++; if (greeted + refused === count) console.log(JSON.stringify({ greeted, refused })); };
for (let i = 0; i < count; i++) {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.1.' + (10 + (i % 20)) });
  let seen = '';
  let done = false;
  s.setEncoding('latin1');
  s.on('data', (d) => { seen += d; if (!done && seen.includes('\\r\\n')) { done = true; settle(seen.startsWith('220 ')); } });
  s.on('error', () => { if (!done) { done = true; settle(false); } });
  sockets.push(s);
}
setInterval(() => {}, 1 << 30);
`;

async function startCrowd(count: number): Promise<{ child: ChildProcess; result: { greeted: number; refused: number } }> {
  const child = spawn(process.execPath, ['-e', crowdScript, String(ingress.smtpPort), String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const result = await new Promise<{ greeted: number; refused: number }>((resolve, reject) => {
    lines.once('line', (line) => resolve(JSON.parse(line) as { greeted: number; refused: number }));
    child.once('exit', (code) => reject(new Error(`the client crowd exited early (${code})`)));
  });
  return { child, result };
}

/**
 * Starts `work` while the messages table is locked, waits until the store's INSERT waits for the
 * lock, and returns how much more memory is reachable then than before `work`; then unlocks and
 * lets `finish` see the work through.
 */
async function whileInsertWaits<T>(work: () => T, finish: (started: T) => Promise<void>): Promise<number> {
  const locker = await pool.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    baseline = retained();
    const started = work();
    await eventually(async () => Number((await pool.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO messages%'`)).rows[0].n) === 1);
    const held = retained() - baseline;
    await locker.query('COMMIT');
    await finish(started);
    return held;
  } finally {
    await locker.query('ROLLBACK').catch(() => {});
    locker.release();
  }
}

describe('ingress memory', () => {
  it(`when ${idleClients} clients connect and stay idle, then ingress memory grows by a bounded amount per connection and a normal client is still served`, async () => {
    const before = retained();
    const { child, result } = await startCrowd(idleClients);
    try {
      expect(result).toEqual({ greeted: idleClients, refused: 0 });
      const perConnection = (retained() - before) / idleClients;
      console.log(`ingress memory per idle connection: ${Math.round(perConnection)} bytes`);
      // smtp-server's connection, its parser and our guard, the socket: about 6 KiB here.
      expect(perConnection).toBeLessThan(16 * 1024);
      await aNormalClientIsServed();
    } finally {
      child.kill('SIGKILL');
    }
    // When the crowd is gone, so is what it cost (and the next test measures from a quiet heap).
    // (What stays: grown hash tables, the normal client's event; about 450 KiB here.)
    await eventually(() => retained() - before < MiB, 15_000, 250);
  });

  it('when a message at the size limit streams in while the store is slow, then ingress holds no more than one copy of the body beyond what the store itself holds for it', async () => {
    // What the store holds while its INSERT of a body this size waits (the sealed copy, the
    // driver's encoding of it): measured on its own, with the same lock.
    const store = new MessageStore(pool, keyringFromConfig(loadConfig(configSchema, t.env)));
    const body = Buffer.alloc(maxMessageBytes, 'z');
    keep.push(body);
    const storeHolds = await whileInsertWaits(
      () => store.put({ id: randomUUID(), tenantId: tenant, receivedAt: new Date(), sha256: '0'.repeat(64), raw: body }),
      async (put) => void (await put),
    );

    // Exactly the limit after dot-unstuffing: lines of 78 octets plus CRLF, no leading dots.
    const wire = Buffer.alloc(maxMessageBytes + 3);
    const head = wire.write('Subject: at the limit\r\n\r\n', 'latin1');
    const line = Buffer.from(`${'x'.repeat(78)}\r\n`);
    for (let at = head; at < maxMessageBytes; at += line.length) line.copy(wire, at, 0, Math.min(line.length, maxMessageBytes - at));
    wire.write('\r\n.\r\n', maxMessageBytes - 2, 'latin1');
    keep.push(wire);
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      expect(await dialog.command('EHLO client.test')).toMatch(/^250-/);
      expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('DATA')).toMatch(/^354 /);
      const ingressHolds = await whileInsertWaits(
        () => dialog.write(wire),
        async () => expect(await dialog.next()).toMatch(/^250 2\.0\.0 Ok: queued as /),
      );
      console.log(`held while the INSERT waits, in messages: store alone ${(storeHolds / maxMessageBytes).toFixed(2)}, ingress ${(ingressHolds / maxMessageBytes).toFixed(2)}`);
      // The body itself (once: the chunks are let go when they are joined) on top of the store's.
      expect(ingressHolds - storeHolds).toBeLessThan(1.25 * maxMessageBytes);
      expect(ingressHolds - storeHolds).toBeGreaterThan(0.75 * maxMessageBytes);
    } finally {
      dialog.close();
    }
    // Nothing of it is left once answered.
    expect(retained() - baseline).toBeLessThan(0.25 * maxMessageBytes);
  });

  it('when a message over the size limit streams in, then ingress keeps none of it', async () => {
    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    try {
      expect(await dialog.command('EHLO client.test')).toMatch(/^250-/);
      expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('RCPT TO:<alice@a.example>')).toMatch(/^250 2\.1\.[05] Accepted$/);
      expect(await dialog.command('DATA')).toMatch(/^354 /);
      const chunk = Buffer.alloc(MiB, 'y');
      for (let i = 0; i < 79; i++) chunk.write('\r\n', i * 13_000, 'latin1');
      keep.push(chunk);
      const before = retained();
      // One and a half times the limit, then a pause: everything sent has been read by ingress.
      for (let i = 0; i < 12; i++) dialog.write(chunk);
      await eventually(() => dialog.unsent === 0);
      await sleep(200);
      expect(retained() - before).toBeLessThan(0.1 * maxMessageBytes);
      for (let i = 0; i < 4; i++) dialog.write(chunk);
      dialog.write('\r\n.\r\n');
      expect(await dialog.next()).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    } finally {
      dialog.close();
    }
  });
});
