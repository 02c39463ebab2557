import { pino, type Logger } from 'pino';
import { trace } from '@opentelemetry/api';

export type { Logger };

/** pino with the service name on every line and the active trace id when there is one. */
export function createLogger(service: string, level: string): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const ctx = span.spanContext();
      return { traceId: ctx.traceId, spanId: ctx.spanId };
    },
  });
}
