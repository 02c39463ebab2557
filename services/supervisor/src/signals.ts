export type SignalAction = 'stop' | 'ignore' | 'force';

/**
 * What a stop signal means, given the ones before it. The first starts a graceful stop. One
 * Ctrl-C can arrive more than once: the terminal signals the whole foreground group, and
 * `npm start` forwards the signal it got as well. So a repeat within `repeatWindowMs` of the
 * first is the same request; a later one means "stop waiting" and kills what is left.
 */
export class StopSignals {
  private firstAt: number | null = null;

  constructor(private readonly repeatWindowMs = 1_000) {}

  next(now: number): SignalAction {
    if (this.firstAt === null) {
      this.firstAt = now;
      return 'stop';
    }
    return now - this.firstAt < this.repeatWindowMs ? 'ignore' : 'force';
  }
}
