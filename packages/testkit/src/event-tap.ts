import amqp from 'amqplib';

/** Events published on a test environment's exchange, as they arrive (parsed JSON envelopes). */
export interface EventTap {
  events: Array<{ routingKey: string; event: { id: string; type: string; occurredAt: string; payload: any } }>;
  close(): Promise<void>;
}

/**
 * Listens to the events exchange of a test environment (`<namespace>.events`) with a private,
 * auto-deleted queue bound to the given routing keys: lets a test see what a service published
 * without consuming from the services' own queues.
 */
export async function tapEvents(env: Record<string, string>, bindings: string[]): Promise<EventTap> {
  const conn = await amqp.connect(env.MOAT_AMQP_URL!);
  const ch = await conn.createChannel();
  const exchange = `${env.MOAT_NAMESPACE}.events`;
  await ch.assertExchange(exchange, 'topic', { durable: true });
  const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  for (const key of bindings) await ch.bindQueue(queue, exchange, key);
  const tap: EventTap = {
    events: [],
    close: async () => {
      await ch.close().catch(() => {});
      await conn.close().catch(() => {});
    },
  };
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    tap.events.push({ routingKey: msg.fields.routingKey, event: JSON.parse(msg.content.toString('utf8')) });
  }, { noAck: true });
  return tap;
}
