import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import amqp from 'amqplib';
import { qualify, type QueuePolicy } from '@moat/contracts';
import { silentLog, servicesUrls, eventually } from '@moat/testkit';
import { Broker, type Delivery } from './amqp.js';

const ns = `t${randomUUID().slice(0, 8)}`;
const policy: QueuePolicy = { name: 'probe', bindings: ['message.event'], prefetch: 4, deliveryLimit: 3, handlerTimeoutMs: 5_000 };
let broker: Broker;

beforeAll(async () => {
  broker = new Broker({ url: servicesUrls.amqp, namespace: ns, producer: 'test', log: silentLog });
  await broker.connect();
});
afterAll(async () => {
  await broker.destroyNamespace([policy.name]);
  await broker.close();
});

function event() {
  return broker.envelope('message.event', { messageId: randomUUID(), tenantId: null, kind: 'routed', rcpt: [], detail: {} });
}

describe('Broker', () => {
  it('when no queue is bound for a routing key, then publish rejects as unroutable', async () => {
    await expect(broker.publish('nobody.listens', event())).rejects.toMatchObject({ code: 'PUBLISH_UNROUTABLE' });
  });

  it('when a consumer handles an event, then it receives it parsed and the queue is left empty', async () => {
    const got: Delivery[] = [];
    await broker.consume(policy, async (d) => {
      got.push(d);
    });
    const e = event();
    await broker.publish('message.event', e);
    await eventually(() => got.length === 1);
    expect(got[0]!.event.id).toBe(e.id);
  });

  it('when a message is not a valid event, then it is parked, not redelivered forever', async () => {
    const conn = await amqp.connect(servicesUrls.amqp);
    const ch = await conn.createConfirmChannel();
    ch.publish(qualify(ns, 'events'), 'message.event', Buffer.from('{"not":"an event"}'), { persistent: true });
    await ch.waitForConfirms();
    const parked = await eventually(async () => (await ch.get(qualify(ns, 'parking'), { noAck: true })) || null);
    expect(parked.content.toString()).toBe('{"not":"an event"}');
    expect(JSON.stringify(parked.properties.headers?.['x-death'])).toContain(qualify(ns, 'probe'));
    await conn.close();
  });
});
