import { z } from 'zod';

/**
 * Every event travels in this envelope. `v` is the contract version: a breaking change to a
 * payload gets a new version and a new routing key, never an in-place edit.
 * Trace context travels in AMQP headers (`traceparent`), not here, so that the envelope stays
 * the same whether or not tracing is on.
 */
export const envelopeBase = z.object({
  v: z.literal(1),
  id: z.string().uuid(),
  occurredAt: z.string().datetime({ offset: true }),
  producer: z.string().min(1),
});
