import type { Logger } from './logger.js';

/**
 * OpenTelemetry start-up. Off unless an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT;
 * the SDK reads the standard OTEL_* variables itself). Moat creates its own spans around every
 * publish and every consumed event and carries W3C trace context in AMQP headers, so one trace
 * spans ingress → filter → router → sender; with the SDK off those spans cost next to nothing.
 * The SDK is imported only when enabled: loading it costs ~20 MB of RSS and start-up time.
 * Returns the flush-and-stop function for the shutdown sequence.
 */
export async function startTelemetry(service: string, endpoint: string | undefined, log: Logger): Promise<() => Promise<void>> {
  if (!endpoint) return async () => {};
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({ serviceName: `moat-${service}` });
  sdk.start();
  log.info({ endpoint }, 'OpenTelemetry started');
  return async () => {
    await sdk.shutdown().catch((err: Error) => log.warn({ err: err.message }, 'telemetry flush failed'));
  };
}
