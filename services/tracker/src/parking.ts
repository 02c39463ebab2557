import type { Broker } from '@moat/runtime';
import type { NewParkedEvent } from '@moat/store';

/** The AMQP message the parking consumer receives (as amqplib delivers it). */
export type RawMessage = Parameters<Parameters<Broker['consumeRaw']>[2]>[0];

interface DeathRecord {
  queue?: unknown;
  reason?: unknown;
  'routing-keys'?: unknown;
}

/**
 * What a dead-lettered message says about itself. RabbitMQ records each dead-lettering in the
 * `x-death` header (most recent first) and the first one in `x-first-death-*`; 3.13+ adds
 * `x-last-death-*`. The most recent death is the one that parked it now.
 */
export function describeParked(msg: RawMessage, namespace: string): NewParkedEvent {
  const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const deaths = Array.isArray(headers['x-death']) ? (headers['x-death'] as DeathRecord[]) : [];
  const last = deaths[0];
  const queue = str(headers['x-last-death-queue']) ?? str(last?.queue) ?? str(headers['x-first-death-queue']);
  const reason = str(headers['x-last-death-reason']) ?? str(last?.reason) ?? str(headers['x-first-death-reason']);
  const deathKeys = Array.isArray(last?.['routing-keys']) ? (last['routing-keys'] as unknown[]) : [];
  const routingKey = str(deathKeys[0]) ?? msg.fields.routingKey;
  const identity = eventIdentity(msg.content);
  return {
    sourceQueue: queue === null ? null : unqualify(queue, namespace),
    routingKey,
    reason,
    eventId: identity.eventId,
    eventType: identity.eventType ?? str(msg.properties.type),
    messageId: identity.messageId,
    headers: jsonSafe(headers) as Record<string, unknown>,
    body: msg.content,
  };
}

/** The envelope fields of a body, as far as it parses (a parked body often does not match its contract). */
export function eventIdentity(body: Buffer): { eventId: string | null; eventType: string | null; messageId: string | null } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { eventId: null, eventType: null, messageId: null };
  }
  if (typeof json !== 'object' || json === null) return { eventId: null, eventType: null, messageId: null };
  const o = json as { id?: unknown; type?: unknown; payload?: { messageId?: unknown } };
  const messageId = str(o.payload?.messageId);
  return {
    eventId: str(o.id)?.slice(0, 200) ?? null,
    eventType: str(o.type)?.slice(0, 200) ?? null,
    messageId: messageId && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(messageId) ? messageId : null,
  };
}

function str(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return null;
}

function unqualify(queue: string, namespace: string): string {
  return queue.startsWith(`${namespace}.`) ? queue.slice(namespace.length + 1) : queue;
}

/** AMQP header values as JSON (byte strings as text, 64-bit integers as numbers or strings, timestamps as ISO). */
export function jsonSafe(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = jsonSafe(x);
    return out;
  }
  return v;
}
