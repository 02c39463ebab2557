import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, testPool, type TestEnv } from '@moat/testkit';
import { createIsolatedEnv, queuedId, SmtpDialog, startIngress, startProbe } from './support.js';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;
let dir: string;
let zoneFile: string;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  const tenant = await tenants.createTenant({ name: 'Lifecycle Ltd' });
  await tenants.createDomain(tenant.id, { name: 'life.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
  dir = mkdtempSync(join(tmpdir(), 'moat-ingress-'));
  zoneFile = join(dir, 'zone.json');
  // The static resolver answers PTR for the address itself, as `system` mode's reverse() does.
  writeFileSync(zoneFile, JSON.stringify({ '127.0.0.1': { PTR: ['client.host.test.'] }, 'client.host.test': { A: ['127.0.0.1'] } }));
});

afterAll(async () => {
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const to = ['user@life.example'];
const raw = () => makeMessage({ from: 'sender@outside.example', to });

async function readyz(port: number): Promise<{ status: number; body: { checks?: Record<string, boolean> } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as { checks?: Record<string, boolean> } };
}

describe('ingress lifecycle', () => {
  it("when the client's address has a forward-confirmed PTR name, then the event and the Received header carry it", async () => {
    const ingress = await startIngress(t, { MOAT_DNS_STATIC_FILE: zoneFile });
    try {
      const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to, raw: raw() });
      const event = await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(sent.response)));
      expect(event.payload.client.ptr).toBe('client.host.test');
      expect(event.payload.prependHeaders).toMatch(/^Received: from client\.test \(client\.host\.test \[127\.0\.0\.1\]\)\r\n/);
    } finally {
      await ingress.stop();
    }
  });

  it('when reverse DNS is turned off, then no lookup is made and the client shows as unknown', async () => {
    const ingress = await startIngress(t, { MOAT_DNS_STATIC_FILE: zoneFile, MOAT_REVERSE_DNS: 'false' });
    try {
      const sent = await sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to, raw: raw() });
      const event = await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(sent.response)));
      expect(event.payload.client.ptr).toBeNull();
      expect(event.payload.prependHeaders).toContain('(unknown [127.0.0.1])');
    } finally {
      await ingress.stop();
    }
  });

  it('when stopping, then readiness drops, new connections are refused, the message in transfer still gets its 250, and the next command gets 421', async () => {
    const ingress = await startIngress(t, { MOAT_ADMIN_PORT: '0', MOAT_SMTP_CLOSE_TIMEOUT_MS: '5000' });
    const ready = await readyz(ingress.adminPort);
    expect(ready.status).toBe(200);
    expect(ready.body.checks?.smtp).toBe(true);

    const { dialog } = await SmtpDialog.open(ingress.smtpPort);
    await dialog.command('EHLO client.test');
    await dialog.command('MAIL FROM:<sender@outside.example>');
    expect(await dialog.command('RCPT TO:<user@life.example>')).toMatch(/^250 /);
    expect(await dialog.command('DATA')).toMatch(/^354 /);
    const body = raw().toString('latin1');
    const half = Math.floor(body.length / 2);
    dialog.write(body.slice(0, half));

    const stopped = ingress.stop();
    await eventually(async () => (await readyz(ingress.adminPort).catch(() => ({ status: 0 }))).status === 503, 5_000, 50);
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(ingress.smtpPort, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);

    // The transaction under way completes: the promise of its 250 is kept.
    const queued = await dialog.command(`${body.slice(half)}.`);
    const event = await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(queued)));
    expect(event.payload.rcptTo).toEqual(to);
    // smtp-server refuses anything new once closing (RFC 5321 §3.8: 421, closing the channel).
    expect(await dialog.command('MAIL FROM:<sender@outside.example>')).toBe('421 4.3.2 Server shutting down');
    dialog.close();
    await stopped;
  });
});
