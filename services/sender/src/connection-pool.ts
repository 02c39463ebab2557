import type { ConnectionLimit, Slot } from './shared-limit.js';
import { slotPollDelayMs } from './shared-limit.js';

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
  /**
   * The limit shared with every other sender (Redis): a connection is opened only with one of its
   * slots, and this process keeps at most its fair share while other senders wait. Without it,
   * only `maxPerDestination` per process applies.
   */
  shared?: ConnectionLimit;
  /** Bound on waiting for a connection; beyond it acquire() throws DestinationBusy. Unset: no bound. */
  waitMs?: number;
  /**
   * How long a closed connection keeps its shared slot. The SMTP client counts a connection as
   * ended when the 221 to QUIT arrives and it sends its FIN; the server counts it until it has
   * processed that FIN. Without a grace, another sender's new connection can reach the server
   * first, and the server sees one more than the limit. Default 0.
   */
  slotReleaseGraceMs?: number;
}

/**
 * Every connection to a destination allowed to this process (or to Moat as a whole) stayed busy
 * for the whole wait: the transaction is deferred and retried later, never failed.
 */
export class DestinationBusy extends Error {
  override readonly name = 'DestinationBusy';
  constructor(
    readonly destination: string,
    readonly waitedMs: number,
  ) {
    super(`destination busy: every connection to ${destination} that Moat may open is in use (waited ${Math.round(waitedMs)} ms)`);
  }
}

interface Entry<C extends PoolableConnection> {
  conn: C;
  key: string;
  idleTimer: NodeJS.Timeout | null;
  /** Counted in its destination's `open` until discarded (exactly once). */
  counted: boolean;
  /** Its place under the shared limit (null without one). */
  slot: Slot | null;
}

interface Destination<C extends PoolableConnection> {
  key: string;
  open: number;
  idle: Array<Entry<C>>;
  waiters: Array<() => void>;
  /** Wakes the first waiter to ask for a shared slot again (one poll per destination at a time). */
  pollTimer: NodeJS.Timeout | null;
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
 *
 * With a shared limit, the bound holds for all senders together: each new connection needs a
 * slot from Redis; when none is free the transaction waits (polling for a slot, or taking a
 * connection this process releases), up to `waitMs`. While other senders wait for the same
 * destination, connections beyond this process's fair share are closed when released instead
 * of being kept, so the slots change hands and no sender's prefetched requests starve.
 */
export class ConnectionPool<C extends PoolableConnection> {
  private readonly destinations = new Map<string, Destination<C>>();
  private closing = false;
  /** Slots of closed connections waiting out their release grace. */
  private readonly graceful = new Map<Slot, NodeJS.Timeout>();

  constructor(private readonly opts: ConnectionPoolOptions) {
    if (opts.shared) opts.shared.onShareChanged = (key) => this.trim(key);
  }

  private destination(key: string): Destination<C> {
    let d = this.destinations.get(key);
    if (!d) {
      d = { key, open: 0, idle: [], waiters: [], pollTimer: null };
      this.destinations.set(key, d);
    }
    return d;
  }

  /** Connections counted for a destination (busy, idle and being opened). */
  openCount(key: string): number {
    return this.destinations.get(key)?.open ?? 0;
  }

  /** Connections this process may hold to a destination now. */
  private allowance(key: string): number {
    return Math.min(this.opts.maxPerDestination, this.opts.shared?.allowance(key) ?? Infinity);
  }

  async acquire(key: string, open: () => Promise<C>): Promise<Lease<C>> {
    const startedAt = Date.now();
    const deadline = this.opts.waitMs === undefined ? Infinity : startedAt + this.opts.waitMs;
    let refusals = 0;
    let retrying = false;
    for (;;) {
      if (this.closing) throw new Error('connection pool is closing');
      for (let entry = this.destination(key).idle.pop(); entry; entry = this.destination(key).idle.pop()) {
        this.clearIdle(entry);
        if (!entry.slot?.lost && entry.conn.usable && (await entry.conn.reset(this.opts.resetTimeoutMs))) return this.lease(entry, true);
        this.discard(entry, 'close');
      }
      // Looked up again: discarding the last connection of a destination forgets its record.
      const d = this.destination(key);
      if (d.open < this.allowance(key)) {
        d.open++;
        let slot: Slot | null = null;
        if (this.opts.shared) {
          slot = await this.opts.shared.acquire(key);
          if (!slot) {
            // Every slot is taken, by all senders together: ask again after a pause, first in line.
            d.open--;
            this.schedulePoll(d, refusals++);
            await this.waitTurn(d, startedAt, deadline, true);
            retrying = true;
            continue;
          }
        }
        let conn: C;
        try {
          if (this.closing) throw new Error('connection pool is closing');
          conn = await open();
        } catch (err) {
          slot?.release();
          d.open--;
          this.wakeOne(d);
          throw err;
        }
        const fresh: Entry<C> = { conn, key, idleTimer: null, counted: true, slot };
        conn.onEnd = () => this.onEnded(fresh);
        if (slot) slot.onLost = () => this.dropIfIdle(fresh);
        return this.lease(fresh, false);
      }
      await this.waitTurn(d, startedAt, deadline, retrying);
    }
  }

  /** Waits to be woken (a connection came free, or it is time to ask for a shared slot again), up to the deadline. */
  private waitTurn(d: Destination<C>, startedAt: number, deadline: number, first: boolean): Promise<void> {
    if (Date.now() >= deadline) return Promise.reject(new DestinationBusy(d.key, Date.now() - startedAt));
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | null = null;
      const wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      if (deadline !== Infinity) {
        timer = setTimeout(() => {
          const i = d.waiters.indexOf(wake);
          if (i >= 0) d.waiters.splice(i, 1);
          this.syncWanting(d);
          this.forgetIfUnused(d);
          reject(new DestinationBusy(d.key, Date.now() - startedAt));
        }, deadline - Date.now());
      }
      if (first) d.waiters.unshift(wake);
      else d.waiters.push(wake);
      this.syncWanting(d);
    });
  }

  private schedulePoll(d: Destination<C>, refusals: number): void {
    if (d.pollTimer) return;
    d.pollTimer = setTimeout(() => {
      d.pollTimer = null;
      this.wakeOne(d);
    }, slotPollDelayMs(refusals, Math.random()));
  }

  private syncWanting(d: Destination<C>): void {
    this.opts.shared?.setWanting(d.key, d.waiters.length > 0);
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
    // Beyond this process's share (another sender waits for this destination), or without a slot
    // any more: closed, so that the slot changes hands.
    if (!reusable || !entry.conn.usable || this.closing || this.opts.idleMs === 0 || entry.slot?.lost || d.open > this.allowance(entry.key)) {
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

  /** A connection that lost its shared slot closes at once when idle (else when released). */
  private dropIfIdle(entry: Entry<C>): void {
    const d = this.destinations.get(entry.key);
    const i = d ? d.idle.indexOf(entry) : -1;
    if (!d || i < 0) return;
    d.idle.splice(i, 1);
    this.clearIdle(entry);
    void this.discard(entry, 'quit');
  }

  /** The share of a destination shrank (another sender waits): idle connections beyond it are closed. */
  private trim(key: string): void {
    const d = this.destinations.get(key);
    if (!d) return;
    while (d.open > this.allowance(key) && d.idle.length > 0) {
      const entry = d.idle.shift()!;
      this.clearIdle(entry);
      void this.discard(entry, 'quit');
    }
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
    // The shared slot goes back once the connection has ended (QUIT answered), plus a grace, not
    // when the QUIT is sent: else another sender's new connection could overlap with this one
    // and the server would count one more than the limit.
    const slot = entry.slot;
    if (slot) void ended.finally(() => this.releaseAfterGrace(slot));
    this.uncount(entry);
    return ended;
  }

  private releaseAfterGrace(slot: Slot): void {
    const grace = this.opts.slotReleaseGraceMs ?? 0;
    if (grace <= 0) return slot.release();
    const timer = setTimeout(() => {
      this.graceful.delete(slot);
      slot.release();
    }, grace);
    timer.unref();
    this.graceful.set(slot, timer);
  }

  private uncount(entry: Entry<C>): void {
    const d = this.destinations.get(entry.key);
    if (!d) return;
    d.open--;
    this.wakeOne(d);
    this.forgetIfUnused(d);
  }

  private forgetIfUnused(d: Destination<C>): void {
    if (d.open === 0 && d.waiters.length === 0 && d.idle.length === 0 && this.destinations.get(d.key) === d) {
      if (d.pollTimer) clearTimeout(d.pollTimer);
      this.destinations.delete(d.key);
    }
  }

  private wakeOne(d: Destination<C>): void {
    d.waiters.shift()?.();
    this.syncWanting(d);
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
      if (d.pollTimer) clearTimeout(d.pollTimer);
      d.pollTimer = null;
      for (const wake of d.waiters.splice(0)) wake();
      this.syncWanting(d);
    }
    await Promise.all(quits);
    // Stopping: give back at once what waits out its grace, while Redis is still connected.
    for (const [slot, timer] of this.graceful) {
      clearTimeout(timer);
      slot.release();
    }
    this.graceful.clear();
  }
}
