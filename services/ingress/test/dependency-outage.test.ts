import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantRepository } from '@moat/store';
import { eventually, makeMessage, sendSmtp, TcpProxy, testPool, type SendResult, type TestEnv } from '@moat/testkit';
import type { RunningIngress } from '../src/index.js';
import { createIsolatedEnv, queuedId, startIngress, startProbe } from './support.js';

let t: TestEnv;
let pool: ReturnType<typeof testPool>;
let probe: Awaited<ReturnType<typeof startProbe>>;

beforeAll(async () => {
  t = await createIsolatedEnv();
  pool = testPool(t);
  const tenants = new TenantRepository(pool);
  const tenant = await tenants.createTenant({ name: 'Outage Ltd' });
  await tenants.createDomain(tenant.id, { name: 'outage.example', routes: [{ host: '127.0.0.1', port: 2600, priority: 10 }] });
  probe = await startProbe(t);
});

afterAll(async () => {
  await probe?.stop();
  await pool?.end();
  await t?.cleanup();
});

/** A proxy in front of the service behind `url`, and the same URL pointed at the proxy. */
async function proxied(url: string): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(url);
  const proxy = new TcpProxy(target.hostname, Number(target.port));
  const through = new URL(url);
  through.port = String(await proxy.start());
  return { proxy, url: through.toString() };
}

function send(ingress: RunningIngress, subject: string): Promise<SendResult> {
  const to = ['user@outage.example'];
  return sendSmtp({ port: ingress.smtpPort, from: 'sender@outside.example', to, raw: makeMessage({ from: 'sender@outside.example', to, subject }) });
}

async function storedRows(): Promise<number> {
  return Number((await pool.query('SELECT count(*) AS n FROM messages')).rows[0].n);
}

describe('ingress when a dependency is unreachable', () => {
  it('when RabbitMQ is unreachable, then DATA gets 451 4.3.0, no body is left behind, and a resend after it is back gets 250', async () => {
    const { proxy, url } = await proxied(t.env.MOAT_AMQP_URL!);
    const ingress = await startIngress(t, { MOAT_AMQP_URL: url });
    try {
      const before = await storedRows();
      proxy.cut();
      const refused = await send(ingress, 'while the broker is away');
      expect(refused).toMatchObject({ ok: false, code: 451, stage: 'DATA', response: '451 4.3.0 Temporary failure, please try again later' });
      expect(await storedRows()).toBe(before);

      proxy.restore();
      // What a sending MTA does: retry until the 250 (the broker client reconnects with back-off).
      const accepted = await eventually(
        async () => {
          const r = await send(ingress, 'after the broker is back');
          return r.ok ? r : null;
        },
        30_000,
        500,
      );
      const event = await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(accepted.response)));
      expect(event.payload.rcptTo).toEqual(['user@outage.example']);
      expect(await storedRows()).toBe(before + 1);
    } finally {
      await ingress.stop();
      await proxy.stop();
    }
  });

  it('when Postgres is unreachable, then DATA gets 451 4.3.0 and nothing is published', async () => {
    const { proxy, url } = await proxied(t.env.MOAT_DATABASE_URL!);
    // A long domain cache keeps RCPT answering from memory, so the outage is met at DATA.
    const ingress = await startIngress(t, { MOAT_DATABASE_URL: url, MOAT_DOMAIN_CACHE_MS: '600000' });
    try {
      const warm = await send(ingress, 'before the outage');
      expect(warm.ok).toBe(true);
      await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(warm.response)));
      const publishedBefore = probe.events.length;
      const rowsBefore = await storedRows();

      proxy.cut();
      const refused = await send(ingress, 'while the database is away');
      expect(refused).toMatchObject({ ok: false, code: 451, stage: 'DATA', response: '451 4.3.0 Temporary failure, please try again later' });
      // Give a stray publish time to arrive: none may.
      await sleep(1_000);
      expect(probe.events.length).toBe(publishedBefore);
      expect(await storedRows()).toBe(rowsBefore);

      proxy.restore();
      const accepted = await eventually(
        async () => {
          const r = await send(ingress, 'after the database is back');
          return r.ok ? r : null;
        },
        30_000,
        500,
      );
      await eventually(() => probe.events.find((e) => e.payload.messageId === queuedId(accepted.response)));
      expect(probe.events.length).toBe(publishedBefore + 1);
    } finally {
      await ingress.stop();
      await proxy.stop();
    }
  });
});
