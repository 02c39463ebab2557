import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DeliveryRequestedPayload } from '@moat/contracts';
import { silentLog } from '@moat/testkit';
import { ConnectionPool } from './connection-pool.js';
import { Deliverer } from './deliver.js';
import type { ConnectionLimit, Slot } from './shared-limit.js';
import type { SmtpSession } from './smtp-session.js';

/** Every slot of every destination is taken by other senders. */
class FullLimit implements ConnectionLimit {
  onShareChanged: ((key: string) => void) | null = null;
  asked: string[] = [];
  async acquire(key: string): Promise<Slot | null> {
    this.asked.push(key);
    return null;
  }
  allowance(): number {
    return 10;
  }
  setWanting(): void {}
}

describe('Deliverer under the shared connection limit', () => {
  it('when the first route stays busy (our own limit) for the whole wait, then every recipient is deferred with 4.4.5 and no lower-priority route is tried', async () => {
    const limit = new FullLimit();
    const pool = new ConnectionPool<SmtpSession>({ maxPerDestination: 10, idleMs: 0, resetTimeoutMs: 100, shared: limit, waitMs: 80 });
    const deliverer = new Deliverer({
      pool,
      session: { ehloName: 'moat.test', localAddress: undefined, connectTimeoutMs: 500, greetingTimeoutMs: 500, socketTimeoutMs: 500 },
      resolve: async () => {
        throw new Error('no DNS in this test');
      },
      attemptBudgetMs: 10_000,
      log: silentLog,
    });
    const req: DeliveryRequestedPayload = {
      deliveryId: randomUUID(),
      attempt: 1,
      messageId: randomUUID(),
      tenantId: randomUUID(),
      store: { messageId: randomUUID(), receivedAt: new Date().toISOString() },
      pool: 'default',
      destination: 'busy',
      routes: [
        { host: '127.0.0.1', port: 2001, priority: 10 },
        { host: '127.0.0.1', port: 2002, priority: 20 },
      ],
      mailFrom: 's@outside.test',
      rcptTo: ['a@x.example', 'b@x.example'],
      prependHeaders: '',
      size: 10,
    };
    const result = await deliverer.deliver(req, Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    expect(result.recipients.map((r) => [r.outcome, r.reply.enhanced])).toEqual([
      ['deferred', '4.4.5'],
      ['deferred', '4.4.5'],
    ]);
    expect(result.error).toMatch(/destination busy/);
    // Nothing the router reads as "the server refused this pool".
    expect(result.error).not.toMatch(/refused|reset|blocked/i);
    // No host was tried: the router must not conclude that the destination is down (its
    // destination health reads an all-deferred result with a remote host as "down").
    expect(result.remoteHost).toBeNull();
    expect(new Set(limit.asked)).toEqual(new Set(['127.0.0.1:2001']));
    await pool.close();
  });
});
