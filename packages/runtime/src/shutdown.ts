import type { Logger } from './logger.js';

interface Step {
  name: string;
  run: () => Promise<void> | void;
}

/**
 * Named shutdown steps run in registration order (register "stop accepting" first, "close
 * pools" last), within one overall bound. A second signal or the timer forces the exit.
 */
export class Shutdown {
  private readonly steps: Step[] = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly log: Logger,
    private readonly timeoutMs: number,
  ) {}

  register(name: string, run: () => Promise<void> | void): void {
    this.steps.push({ name, run });
  }

  async run(reason: string): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const step of this.steps) {
        try {
          await step.run();
        } catch (err) {
          this.log.warn({ step: step.name, err: (err as Error).message }, 'shutdown step failed');
        }
      }
      this.log.info('shutdown complete');
    })();
    return this.running;
  }

  /** Wires SIGTERM/SIGINT and crash-on-unknown (unhandled rejections end the process). */
  installSignalHandlers(): void {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        this.log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      const timer = setTimeout(() => {
        this.log.error({ timeoutMs: this.timeoutMs }, 'shutdown timed out: exiting');
        process.exit(1);
      }, this.timeoutMs);
      timer.unref();
      void this.run(signal).then(() => process.exit(0));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('unhandledRejection', (err) => {
      this.log.fatal({ err: err instanceof Error ? err.stack : String(err) }, 'unhandled rejection: crashing (the supervisor restarts us)');
      process.exit(70);
    });
  }
}
