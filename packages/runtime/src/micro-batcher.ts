/**
 * Group commit for consumers: callers add one item each and wait; items are processed together
 * (up to `maxItems`, or after `maxDelayMs`, or as soon as the previous batch finishes) and every
 * caller's promise settles with its own result from its batch. One batch at a time by default,
 * so batches never race each other for the same rows. With `maxDelayMs: 0` an idle batcher adds
 * no latency: the first item goes at once, and what arrives meanwhile forms the next batch —
 * under load batches grow by themselves, which is what makes a statement per batch pay.
 */
export interface MicroBatcherOptions<T, R = void> {
  maxItems: number;
  maxDelayMs: number;
  /**
   * Processes a whole batch; resolves only once it is durable, with one result per item in the
   * same order (or nothing, for a batcher of void results).
   */
  write: (items: T[]) => Promise<R[] | void>;
  /** Writes running at once (default 1). */
  maxConcurrentWrites?: number;
  /**
   * When a batch write fails with an error for which this returns true (bad data, not a
   * dependency outage), each item is written alone so that one poison item does not fail the
   * others with it.
   */
  isolateOn?: (err: unknown) => boolean;
  /**
   * Bounds what one batch holds besides its item count (e.g. bytes of message bodies, so that
   * a statement never carries hundreds of megabytes): a batch takes items while their summed
   * weight stays within maxWeight, and always at least one.
   */
  weigh?: (item: T) => number;
  maxWeight?: number;
}

interface Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<T, R = void> {
  private pending: Waiting<T, R>[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Pending items may be written now (their delay elapsed, or a write just finished). */
  private due = false;
  private closing = false;
  private readonly running = new Set<Promise<void>>();
  private readonly maxConcurrent: number;

  constructor(private readonly opts: MicroBatcherOptions<T, R>) {
    this.maxConcurrent = opts.maxConcurrentWrites ?? 1;
  }

  /** Resolves with the item's result once its batch is durable; rejects when its batch failed. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  get size(): number {
    return this.pending.length;
  }

  /** Writes everything pending and waits for every write in flight. */
  async close(): Promise<void> {
    this.closing = true;
    this.schedule();
    while (this.running.size > 0 || this.pending.length > 0) {
      await Promise.allSettled([...this.running]);
      this.schedule();
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    while (
      this.running.size < this.maxConcurrent &&
      this.pending.length > 0 &&
      (this.pending.length >= this.opts.maxItems || this.due || this.closing || this.opts.maxDelayMs === 0)
    ) {
      const batch = this.pending.splice(0, this.batchLength());
      this.due = false;
      const run = this.run(batch).finally(() => {
        this.running.delete(run);
        // Whatever queued up during this write has waited long enough: write it next.
        if (this.pending.length > 0) this.due = true;
        this.schedule();
      });
      this.running.add(run);
    }
    if (this.pending.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.due = false;
    } else if (!this.timer && !this.due) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.due = true;
        this.schedule();
      }, this.opts.maxDelayMs);
    }
  }

  /** How many pending items the next batch takes (maxItems, and maxWeight when set). */
  private batchLength(): number {
    const { weigh, maxWeight, maxItems } = this.opts;
    const limit = Math.min(maxItems, this.pending.length);
    if (!weigh || maxWeight === undefined) return limit;
    let total = 0;
    for (let i = 0; i < limit; i++) {
      total += weigh(this.pending[i]!.item);
      if (total > maxWeight) return Math.max(1, i);
    }
    return limit;
  }

  private async run(batch: Waiting<T, R>[]): Promise<void> {
    try {
      const results = await this.opts.write(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve((results ? results[i] : undefined) as R));
      return;
    } catch (err) {
      if (batch.length === 1 || !this.opts.isolateOn?.(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
    }
    for (const w of batch) {
      try {
        const results = await this.opts.write([w.item]);
        w.resolve((results ? results[0] : undefined) as R);
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
