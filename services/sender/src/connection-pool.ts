/** What the pool needs of a connection (an SmtpSession in production). */
export interface PoolableConnection {
  readonly usable: boolean;
  onEnd: (() => void) | null;
  reset(timeoutMs: number): Promise<boolean>;
  quit(): Promise<void>;
  close(): void;
}

export interface ConnectionPoolOptions {
  /** Connections (busy + idle + being opened) per destination; acquirers beyond wait in line. */
  maxPerDestination: number;
  /** An idle connection is closed (QUIT) after this long; 0 closes it as soon as it is released. */
  idleMs: number;
  /** Bound on the RSET that checks a kept connection before reuse. */
  resetTimeoutMs: number;
}

interface Entry<C extends PoolableConnection> {
  conn: C;
  key: string;
  idleTimer: NodeJS.Timeout | null;
  /** Counted in its destination's `open` until discarded (exactly once). */
  counted: boolean;
}

interface Destination<C extends PoolableConnection> {
  open: number;
  idle: Array<Entry<C>>;
  waiters: Array<() => void>;
}

export interface Lease<C extends PoolableConnection> {
  conn: C;
  /** True when this is a kept connection that already carried a transaction. */
  reused: boolean;
  /** Hands the connection back: kept for the next transaction when `reusable` and still alive. */
  release(reusable: boolean): void;
}

/**
 * Connection reuse per destination host:port, the way MTAs cache connections: a connection
 * that finished a transaction is kept idle for `idleMs`; the next transaction to the same
 * host:port takes it after an RSET. At most `maxPerDestination` connections exist per host:port,
 * so one busy customer server is never flooded (it would answer 421 "too many connections");
 * transactions beyond that limit wait for a connection to come free.
 */
export class ConnectionPool<C extends PoolableConnection> {
  private readonly destinations = new Map<string, Destination<C>>();
  private closing = false;

  constructor(private readonly opts: ConnectionPoolOptions) {}

  private destination(key: string): Destination<C> {
    let d = this.destinations.get(key);
    if (!d) {
      d = { open: 0, idle: [], waiters: [] };
      this.destinations.set(key, d);
    }
    return d;
  }

  /** Connections counted for a destination (busy, idle and being opened). */
  openCount(key: string): number {
    return this.destinations.get(key)?.open ?? 0;
  }

  async acquire(key: string, open: () => Promise<C>): Promise<Lease<C>> {
    for (;;) {
      if (this.closing) throw new Error('connection pool is closing');
      for (let entry = this.destination(key).idle.pop(); entry; entry = this.destination(key).idle.pop()) {
        this.clearIdle(entry);
        if (entry.conn.usable && (await entry.conn.reset(this.opts.resetTimeoutMs))) return this.lease(entry, true);
        this.discard(entry, 'close');
      }
      // Looked up again: discarding the last connection of a destination forgets its record.
      const d = this.destination(key);
      if (d.open < this.opts.maxPerDestination) {
        d.open++;
        let conn: C;
        try {
          conn = await open();
        } catch (err) {
          d.open--;
          this.wakeOne(d);
          throw err;
        }
        const fresh: Entry<C> = { conn, key, idleTimer: null, counted: true };
        conn.onEnd = () => this.onEnded(fresh);
        return this.lease(fresh, false);
      }
      await new Promise<void>((resolve) => d.waiters.push(resolve));
    }
  }

  private lease(entry: Entry<C>, reused: boolean): Lease<C> {
    let released = false;
    return {
      conn: entry.conn,
      reused,
      release: (reusable: boolean) => {
        if (released) return;
        released = true;
        this.release(entry, reusable);
      },
    };
  }

  private release(entry: Entry<C>, reusable: boolean): void {
    const d = this.destination(entry.key);
    if (!reusable || !entry.conn.usable || this.closing || this.opts.idleMs === 0) {
      this.discard(entry, 'quit');
      return;
    }
    d.idle.push(entry);
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = null;
      const i = d.idle.indexOf(entry);
      if (i >= 0) d.idle.splice(i, 1);
      this.discard(entry, 'quit');
    }, this.opts.idleMs);
    entry.idleTimer.unref();
    this.wakeOne(d);
  }

  /** The server (or an error) ended a connection: forget it if it was idle. */
  private onEnded(entry: Entry<C>): void {
    const d = this.destinations.get(entry.key);
    if (!d) return;
    const i = d.idle.indexOf(entry);
    if (i >= 0) {
      d.idle.splice(i, 1);
      this.clearIdle(entry);
      this.discard(entry, 'close');
    }
    // A busy connection is discarded when its transaction releases it.
  }

  private clearIdle(entry: Entry<C>): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
  }

  /** Forgets a connection (once) and ends it: politely with QUIT, or by closing the socket. */
  private discard(entry: Entry<C>, how: 'quit' | 'close'): Promise<void> {
    if (!entry.counted) return Promise.resolve();
    entry.counted = false;
    const ended = how === 'quit' ? entry.conn.quit() : Promise.resolve(entry.conn.close());
    this.uncount(entry);
    return ended;
  }

  private uncount(entry: Entry<C>): void {
    const d = this.destinations.get(entry.key);
    if (!d) return;
    d.open--;
    this.wakeOne(d);
    if (d.open === 0 && d.waiters.length === 0) this.destinations.delete(entry.key);
  }

  private wakeOne(d: Destination<C>): void {
    d.waiters.shift()?.();
  }

  /** QUITs every idle connection and refuses new acquisitions; busy ones close on release. */
  async close(): Promise<void> {
    this.closing = true;
    const quits: Array<Promise<void>> = [];
    for (const d of this.destinations.values()) {
      for (const entry of d.idle.splice(0)) {
        this.clearIdle(entry);
        quits.push(this.discard(entry, 'quit'));
      }
      for (const wake of d.waiters.splice(0)) wake();
    }
    await Promise.all(quits);
  }
}
