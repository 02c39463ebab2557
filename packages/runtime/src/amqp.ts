import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import type { ChannelModel, Channel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import { context, propagation, trace, SpanKind, SpanStatusCode, type Context } from '@opentelemetry/api';
import {
  eventsExchange,
  parking,
  parseEvent,
  queues,
  qualify,
  EventParseError,
  type AnyEvent,
  type EventType,
  type PayloadOf,
  type QueuePolicy,
} from '@moat/contracts';
import { MoatError } from './errors.js';
import type { Logger } from './logger.js';
import { withDeadline } from './deadline.js';

export interface BrokerOptions {
  url: string;
  namespace: string;
  /** Who publishes: goes into every envelope's `producer`. */
  producer: string;
  log: Logger;
  /** Time to wait for a publisher confirm before giving up. */
  confirmTimeoutMs?: number;
}

export interface Delivery<E extends AnyEvent = AnyEvent> {
  event: E;
  routingKey: string;
  redelivered: boolean;
  /** How many times the broker delivered this message before (quorum queues count it). */
  deliveryCount: number;
}
export type Handler = (delivery: Delivery) => Promise<void>;

/** Thrown by handlers for a message that will never succeed: it goes straight to parking. */
export class PermanentFailure extends MoatError {
  constructor(message: string, cause?: unknown) {
    super('EVENT_INVALID', message, { permanent: true, cause });
  }
}

interface ConsumerRegistration {
  policy: QueuePolicy;
  handler: Handler;
  channel: Channel | null;
  consumerTag: string | null;
  /** Raw consumers (the parking queue) get the AMQP message itself, unparsed. */
  raw?: (msg: ConsumeMessage) => Promise<void>;
  inFlight: Set<Promise<void>>;
  cancelled: boolean;
}

/**
 * One AMQP connection per process, with:
 * - a confirm channel for publishing: persistent, `mandatory`, and a returned message counts as
 *   a failure (a confirm also arrives for a message no queue took);
 * - one channel per consumer, manual acks, bounded prefetch, dead-lettering to parking;
 * - reconnection with back-off; consumers come back by themselves, publishes fail fast while the
 *   broker is away (the caller answers 451 or retries).
 */
export class Broker {
  private conn: ChannelModel | null = null;
  private pub: ConfirmChannel | null = null;
  private connecting: Promise<void> | null = null;
  private closed = false;
  private readonly consumers: ConsumerRegistration[] = [];
  private readonly returned = new Set<string>();
  private readonly exchange: string;
  private readonly parkingExchange: string;
  private readonly confirmTimeoutMs: number;
  private reconnectAttempt = 0;

  constructor(private readonly opts: BrokerOptions) {
    this.exchange = qualify(opts.namespace, eventsExchange);
    this.parkingExchange = qualify(opts.namespace, parking.exchange);
    this.confirmTimeoutMs = opts.confirmTimeoutMs ?? 10_000;
  }

  get connected(): boolean {
    return this.pub !== null;
  }

  queueName(policy: QueuePolicy): string {
    return qualify(this.opts.namespace, policy.name);
  }

  /** Connects (and declares the topology); rejects if the broker cannot be reached now. */
  async connect(): Promise<void> {
    if (this.pub) return;
    if (!this.connecting) {
      this.connecting = this.open().finally(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  private async open(): Promise<void> {
    const url = new URL(this.opts.url);
    if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', '10');
    // noDelay: Nagle's algorithm meets delayed ACKs and stalls every confirm by ~40 ms.
    const conn = await amqp.connect(url.toString(), { noDelay: true, clientProperties: { connection_name: this.opts.producer } } as Options.Connect);
    conn.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'amqp connection error'));
    conn.on('close', () => this.onConnectionLost(conn));
    conn.on('blocked', (reason: string) => this.opts.log.warn({ reason }, 'amqp connection blocked by broker (resource alarm)'));
    const pub = await conn.createConfirmChannel();
    pub.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'amqp publish channel error'));
    pub.on('return', (msg: ConsumeMessage) => {
      const id = msg.properties.messageId as string | undefined;
      if (id) this.returned.add(id);
    });
    await this.declareTopology(pub);
    this.conn = conn;
    this.pub = pub;
    this.reconnectAttempt = 0;
    for (const reg of this.consumers) if (!reg.cancelled) await this.startConsumer(reg);
    this.opts.log.info({ exchange: this.exchange }, 'amqp connected');
  }

  private onConnectionLost(conn: ChannelModel): void {
    if (this.conn !== conn && this.conn !== null) return;
    this.conn = null;
    this.pub = null;
    for (const reg of this.consumers) {
      reg.channel = null;
      reg.consumerTag = null;
    }
    if (this.closed) return;
    this.opts.log.warn('amqp connection lost; reconnecting');
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    while (!this.closed && !this.pub) {
      const delay = Math.min(200 * 2 ** this.reconnectAttempt, 5_000);
      this.reconnectAttempt++;
      await sleep(delay);
      if (this.closed) return;
      try {
        await this.connect();
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, attempt: this.reconnectAttempt }, 'amqp reconnect failed');
      }
    }
  }

  private async declareTopology(ch: Channel): Promise<void> {
    await ch.assertExchange(this.exchange, 'topic', { durable: true });
    await ch.assertExchange(this.parkingExchange, 'topic', { durable: true });
    const parkingQueue = qualify(this.opts.namespace, parking.queue);
    await ch.assertQueue(parkingQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(parkingQueue, this.parkingExchange, '#');
    // The fixed consuming queues exist as soon as any service connects, so a publisher never
    // sees its first messages returned as unroutable because a consumer has not started yet.
    for (const policy of [queues.filter, queues.archive, queues.router, queues.tracker]) await this.declareQueue(ch, policy);
  }

  /** Declares a queue (e.g. a pool's sender queue) before publishing to it. */
  async ensureQueue(policy: QueuePolicy): Promise<void> {
    const ch = this.pub;
    if (!ch) throw new MoatError('DEPENDENCY_UNAVAILABLE', 'broker not connected');
    await this.declareQueue(ch, policy);
  }

  /** Declares a consuming queue with its policy: quorum, delivery limit, dead-lettering to parking. */
  async declareQueue(ch: Channel, policy: QueuePolicy): Promise<string> {
    const name = this.queueName(policy);
    await ch.assertQueue(name, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': policy.deliveryLimit,
        'x-dead-letter-exchange': this.parkingExchange,
        // at-least-once dead-lettering: a message is removed from the source queue only once
        // the parking queue has confirmed it (needs reject-publish overflow).
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      },
    });
    for (const key of policy.bindings) await ch.bindQueue(name, this.exchange, key);
    return name;
  }

  /** Builds an envelope around a payload. */
  envelope<T extends EventType>(type: T, payload: PayloadOf<T>, id: string = randomUUID()): AnyEvent {
    return { v: 1, id, type, occurredAt: new Date().toISOString(), producer: this.opts.producer, payload } as AnyEvent;
  }

  /**
   * Publishes and resolves only once the broker has confirmed the message *and* routed it to at
   * least one queue. Rejects with a MoatError otherwise (the caller decides: 451, retry, nack).
   */
  async publish(routingKey: string, event: AnyEvent, opts: { exchange?: string; traceContext?: Context } = {}): Promise<void> {
    const parent = opts.traceContext ?? context.active();
    const span = tracer.startSpan(`publish ${routingKey}`, { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': routingKey, 'moat.event.id': event.id } }, parent);
    try {
      await this.publishInContext(routingKey, event, trace.setSpan(parent, span), opts.exchange);
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  }

  private async publishInContext(routingKey: string, event: AnyEvent, ctx: Context, exchangeName: string | undefined): Promise<void> {
    const headers: Record<string, string> = {};
    propagation.inject(ctx, headers);
    await this.confirmedPublish(exchangeName ?? this.exchange, routingKey, Buffer.from(JSON.stringify(event)), { type: event.type, headers }, event.type);
  }

  /**
   * Publishes raw bytes (parking replay) with the same guarantees as publish. With `queue`, the
   * message goes only to that queue (through the default exchange), so a replay reaches the
   * consumer that parked it and not every queue bound to the routing key.
   */
  async publishRaw(routingKey: string, body: Buffer, headers: Record<string, unknown> = {}, opts: { queue?: string } = {}): Promise<void> {
    if (opts.queue) await this.confirmedPublish('', qualify(this.opts.namespace, opts.queue), body, { headers }, `replay to ${opts.queue}`);
    else await this.confirmedPublish(this.exchange, routingKey, body, { headers }, `replay ${routingKey}`);
  }

  /** Resolves once the broker confirmed the message and routed it to at least one queue. */
  private async confirmedPublish(exchange: string, routingKey: string, body: Buffer, props: { type?: string; headers: Record<string, unknown> }, what: string): Promise<void> {
    const ch = this.pub;
    if (!ch) throw new MoatError('DEPENDENCY_UNAVAILABLE', 'broker not connected');
    const messageId = randomUUID();
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new MoatError('PUBLISH_FAILED', `no publisher confirm within ${this.confirmTimeoutMs} ms`));
      }, this.confirmTimeoutMs);
      try {
        ch.publish(
          exchange,
          routingKey,
          body,
          { persistent: true, mandatory: true, contentType: 'application/json', messageId, timestamp: Math.floor(Date.now() / 1000), ...props },
          (err) => {
            clearTimeout(timer);
            if (settled) return;
            settled = true;
            if (err) return reject(new MoatError('PUBLISH_NACKED', `broker nacked ${what}`, { cause: err }));
            // basic.return precedes basic.ack on the channel, so the set is up to date here.
            if (this.returned.delete(messageId)) return reject(new MoatError('PUBLISH_UNROUTABLE', `no queue is bound for ${routingKey}`));
            resolve();
          },
        );
      } catch (err) {
        clearTimeout(timer);
        settled = true;
        reject(new MoatError('PUBLISH_FAILED', `publish failed: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  /** Registers a consumer; it (re)starts whenever the connection is up. */
  async consume(policy: QueuePolicy, handler: Handler): Promise<void> {
    const reg: ConsumerRegistration = { policy, handler, channel: null, consumerTag: null, inFlight: new Set(), cancelled: false };
    this.consumers.push(reg);
    if (this.conn) await this.startConsumer(reg);
  }

  /** Consumes the parking queue with raw access (the tracker persists parked messages). */
  async consumeRaw(queue: string, prefetch: number, handler: (msg: ConsumeMessage) => Promise<void>): Promise<void> {
    const policy: QueuePolicy = { name: queue, bindings: [], prefetch, deliveryLimit: 0, handlerTimeoutMs: 30_000 };
    const reg: ConsumerRegistration = { policy, handler: async () => {}, raw: handler, channel: null, consumerTag: null, inFlight: new Set(), cancelled: false };
    this.consumers.push(reg);
    if (this.conn) await this.startConsumer(reg);
  }

  private async startConsumer(reg: ConsumerRegistration): Promise<void> {
    const conn = this.conn;
    if (!conn) return;
    const ch = await conn.createChannel();
    ch.on('error', (err: Error) => this.opts.log.warn({ err: err.message, queue: reg.policy.name }, 'amqp consumer channel error'));
    const raw = reg.raw;
    const queue = raw ? qualify(this.opts.namespace, reg.policy.name) : await this.declareQueue(ch, reg.policy);
    await ch.prefetch(reg.policy.prefetch);
    reg.channel = ch;
    const { consumerTag } = await ch.consume(
      queue,
      (msg) => {
        // The broker cancels a consumer (queue deleted, node down) by sending null.
        if (msg === null) {
          this.opts.log.warn({ queue }, 'consumer cancelled by broker; restarting');
          reg.channel = null;
          ch.close().catch(() => {});
          if (!reg.cancelled) setTimeout(() => void this.startConsumer(reg).catch(() => {}), 1_000);
          return;
        }
        const work = (raw ? this.runRaw(ch, msg, raw) : this.runHandler(ch, reg, msg)).finally(() => reg.inFlight.delete(work));
        reg.inFlight.add(work);
      },
      { noAck: false },
    );
    reg.consumerTag = consumerTag;
  }

  private async runRaw(ch: Channel, msg: ConsumeMessage, raw: (msg: ConsumeMessage) => Promise<void>): Promise<void> {
    try {
      await raw(msg);
      ch.ack(msg);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'raw handler failed; requeueing after a pause');
      await sleep(1_000);
      safe(() => ch.nack(msg, false, true));
    }
  }

  private async runHandler(ch: Channel, reg: ConsumerRegistration, msg: ConsumeMessage): Promise<void> {
    const deliveryCount = Number(msg.properties.headers?.['x-delivery-count'] ?? 0);
    let event: AnyEvent;
    try {
      event = parseEvent(msg.content);
    } catch (err) {
      // A message that does not parse will never parse: park it now, never block the queue.
      this.opts.log.error({ err: (err as Error).message, queue: reg.policy.name, routingKey: msg.fields.routingKey }, 'unparsable event; parking');
      safe(() => ch.nack(msg, false, false));
      return;
    }
    const parent = propagation.extract(context.active(), msg.properties.headers ?? {});
    const span = tracer.startSpan(`process ${event.type}`, { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': 'rabbitmq', 'messaging.destination.name': reg.policy.name, 'moat.event.id': event.id } }, parent);
    try {
      await context.with(trace.setSpan(parent, span), () =>
        withDeadline(reg.handler({ event, routingKey: msg.fields.routingKey, redelivered: msg.fields.redelivered, deliveryCount }), reg.policy.handlerTimeoutMs, () => new MoatError('HANDLER_TIMEOUT', `handler exceeded ${reg.policy.handlerTimeoutMs} ms`)),
      );
      safe(() => ch.ack(msg));
      span.end();
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      span.end();
      const permanent = err instanceof MoatError && err.permanent;
      if (permanent || err instanceof EventParseError) {
        this.opts.log.error({ err: (err as Error).message, eventId: event.id, type: event.type }, 'permanent failure; parking');
        safe(() => ch.nack(msg, false, false));
        return;
      }
      // Transient: back off a little before handing it back, so that a dependency outage does
      // not burn through the delivery limit in milliseconds. The broker parks it after the limit.
      const delay = Math.min(250 * 2 ** deliveryCount, 15_000);
      this.opts.log.warn({ err: (err as Error).message, eventId: event.id, type: event.type, deliveryCount, retryInMs: delay }, 'handler failed; will retry');
      await sleep(delay);
      safe(() => ch.nack(msg, false, true));
    }
  }

  /** Stops taking new messages and waits (bounded) for handlers in flight to finish and ack. */
  async drain(timeoutMs: number): Promise<void> {
    for (const reg of this.consumers) {
      reg.cancelled = true;
      if (reg.channel && reg.consumerTag) await reg.channel.cancel(reg.consumerTag).catch(() => {});
    }
    const all = this.consumers.flatMap((r) => [...r.inFlight]);
    await Promise.race([Promise.allSettled(all), sleep(timeoutMs)]);
  }

  async close(): Promise<void> {
    this.closed = true;
    const conn = this.conn;
    this.conn = null;
    this.pub = null;
    if (conn) await conn.close().catch(() => {});
  }

  /** For tests and operators: delete this namespace's queues and exchanges. */
  async destroyNamespace(queueNames: string[]): Promise<void> {
    const conn = this.conn;
    if (!conn) return;
    const ch = await conn.createChannel();
    // The fixed queues are declared on every connect: they go too.
    const fixed = [queues.filter, queues.archive, queues.router, queues.tracker].map((q) => q.name);
    for (const q of [...queueNames, ...fixed, parking.queue]) await ch.deleteQueue(qualify(this.opts.namespace, q)).catch(() => {});
    await ch.deleteExchange(this.exchange).catch(() => {});
    await ch.deleteExchange(this.parkingExchange).catch(() => {});
    await ch.close().catch(() => {});
  }
}

const tracer = trace.getTracer('moat');

function safe(fn: () => void): void {
  try {
    fn();
  } catch {
    // The channel closed under us: the broker redelivers the message to another consumer.
  }
}
