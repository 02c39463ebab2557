import type { ClaimResult, Logger, WantMode } from '@moat/runtime';

/** What the shared limit needs of Redis (DestinationSlots in production). */
export interface SlotStore {
  claim(opts: { destination: string; leaseIds: readonly string[]; leaseMs: number; limit: number; senderId: string; want: WantMode; wantMs: number }): Promise<ClaimResult>;
  release(destination: string, leaseId: string): Promise<void>;
}

/** One connection's place under the limit shared by all senders. */
export interface Slot {
  /**
   * True once the place is no longer ours: its lease could not be renewed or re-taken (Redis was
   * away longer than the lease and others took the slots). The connection then finishes its
   * transaction and closes instead of being kept for the next one.
   */
  readonly lost: boolean;
  /** Called once when the slot is lost (the pool closes the connection at once if it is idle). */
  onLost: (() => void) | null;
  /** Gives the place back (the connection closed); more than once is harmless. */
  release(): void;
}

/** What the connection pool asks of a limit shared with other processes. */
export interface ConnectionLimit {
  /** A slot for one more connection to `key`, or null while every slot is taken. Never throws. */
  acquire(key: string): Promise<Slot | null>;
  /** How many connections to `key` this process may hold now: its fair share while others wait. */
  allowance(key: string): number;
  /** Whether this process has transactions waiting for a connection to `key`. */
  setWanting(key: string, wanting: boolean): void;
  /** Called when `key`'s allowance shrank (another sender started waiting): the pool trims idle connections. */
  onShareChanged: ((key: string) => void) | null;
}

/**
 * This sender's share of a destination's `limit` while `othersWanting` other senders wait for
 * connections to it: an equal split, rounded up (the hard limit is enforced by Redis anyway;
 * rounding up only means the last sender to ask may get fewer), never below one.
 */
export function fairShare(limit: number, othersWanting: number): number {
  if (othersWanting <= 0) return limit;
  return Math.max(1, Math.ceil(limit / (othersWanting + 1)));
}

/**
 * How long a transaction waits before asking Redis again for a slot of a full destination, after
 * `attempt` refusals (from 0): 25 ms doubling to 400 ms, scaled by 0.5–1 so that the senders
 * waiting for one destination do not ask in lock-step. `random` is in [0, 1).
 */
export function slotPollDelayMs(attempt: number, random: number): number {
  const raw = Math.min(25 * 2 ** Math.max(0, attempt), 400);
  return Math.round(raw * (0.5 + random / 2));
}

/** Rejects when `p` has not settled within `ms`: a hung Redis must not stall deliveries. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

class LeasedSlot implements Slot {
  lost = false;
  onLost: (() => void) | null = null;
  released = false;

  constructor(
    readonly key: string,
    readonly leaseId: string,
    /** Held in Redis; false while Redis is unreachable (counted only by the per-process limit). */
    public shared: boolean,
    private readonly owner: SharedConnectionLimit,
  ) {}

  release(): void {
    if (this.released) return;
    this.released = true;
    this.owner.forget(this);
  }

  lose(): void {
    if (this.lost || this.released) return;
    this.lost = true;
    this.onLost?.();
  }
}

export interface SharedConnectionLimitOptions {
  store: SlotStore;
  /** Unique per sender process (several senders may run on one host). */
  senderId: string;
  /** Connections per destination from all senders together (MOAT_MAX_CONNECTIONS_PER_DESTINATION). */
  limit: number;
  /** A slot whose holder stops renewing comes back after this long (a killed sender). */
  leaseMs: number;
  /** Bound on one Redis call; beyond it Redis counts as unreachable. */
  callTimeoutMs: number;
  log: Logger;
}

/**
 * The per-destination connection limit shared by every sender through Redis (DestinationSlots).
 * Leases of live connections are renewed on a timer (every third of the lease, at most every
 * second, which also keeps the view of other senders' waiting fresh). When Redis is unreachable
 * it falls back to the per-process limit, logs it once, and keeps delivering: a connection
 * opened meanwhile takes a lease at the next renewal once Redis is back, or closes after its
 * transaction when the slots are taken by then.
 */
export class SharedConnectionLimit implements ConnectionLimit {
  onShareChanged: ((key: string) => void) | null = null;
  private readonly slots = new Map<string, Set<LeasedSlot>>();
  private readonly wanting = new Set<string>();
  /** Destinations whose wish must be withdrawn from Redis at the next renewal. */
  private readonly toClear = new Set<string>();
  private readonly othersWanting = new Map<string, number>();
  private unreachable = false;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  /** Releases on their way, awaited by stop() so that a clean stop leaves no lease to expire. */
  private readonly releasing = new Set<Promise<void>>();

  constructor(private readonly opts: SharedConnectionLimitOptions) {}

  /** How often leases are renewed (and the others' wishes re-read). */
  get renewEveryMs(): number {
    return Math.max(50, Math.min(1_000, Math.floor(this.opts.leaseMs / 3)));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.renew(), this.renewEveryMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.renewing;
    for (const key of this.wanting) this.toClear.add(key);
    this.wanting.clear();
    await this.renew();
    await Promise.all([...this.releasing]);
  }

  allowance(key: string): number {
    return fairShare(this.opts.limit, this.othersWanting.get(key) ?? 0);
  }

  setWanting(key: string, wanting: boolean): void {
    if (wanting) {
      this.wanting.add(key);
      this.toClear.delete(key);
    } else if (this.wanting.delete(key)) {
      this.toClear.add(key);
    }
  }

  async acquire(key: string): Promise<Slot | null> {
    const leaseId = `${this.opts.senderId}#${++this.seq}`;
    // While Redis is away, do not make every new connection wait for a timeout: the renewal
    // timer finds out when it is back.
    if (this.unreachable) return this.track(new LeasedSlot(key, leaseId, false, this));
    try {
      const result = await within(
        this.opts.store.claim({ destination: key, leaseIds: [leaseId], leaseMs: this.opts.leaseMs, limit: this.opts.limit, senderId: this.opts.senderId, want: 'want-if-refused', wantMs: this.wantMs() }),
        this.opts.callTimeoutMs,
      );
      this.reachable();
      this.noteOthers(key, result.othersWanting);
      if (!result.granted[0]) return null;
      return this.track(new LeasedSlot(key, leaseId, true, this));
    } catch (err) {
      this.markUnreachable(err);
      return this.track(new LeasedSlot(key, leaseId, false, this));
    }
  }

  /** Renews every live lease, re-takes those opened while Redis was away, and refreshes wishes. */
  renew(): Promise<void> {
    if (this.renewing) return this.renewing;
    this.renewing = this.renewAll().finally(() => (this.renewing = null));
    return this.renewing;
  }

  private async renewAll(): Promise<void> {
    const keys = new Set([...this.slots.keys(), ...this.wanting, ...this.toClear]);
    for (const key of keys) {
      const held = [...(this.slots.get(key) ?? [])];
      const want: WantMode = this.wanting.has(key) ? 'want' : 'clear';
      if (held.length === 0 && want === 'clear' && !this.toClear.has(key)) continue;
      let result: ClaimResult;
      try {
        result = await within(
          this.opts.store.claim({ destination: key, leaseIds: held.map((s) => s.leaseId), leaseMs: this.opts.leaseMs, limit: this.opts.limit, senderId: this.opts.senderId, want, wantMs: this.wantMs() }),
          this.opts.callTimeoutMs,
        );
      } catch (err) {
        this.markUnreachable(err);
        return;
      }
      this.reachable();
      if (want === 'clear') this.toClear.delete(key);
      held.forEach((slot, i) => {
        if (slot.released) {
          // Closed while the renewal was on its way: give it back again.
          if (result.granted[i]) void this.opts.store.release(key, slot.leaseId).catch(() => {});
        } else if (result.granted[i]) {
          slot.shared = true;
        } else {
          this.opts.log.warn({ destination: key, lease: slot.leaseId }, 'connection lost its shared slot (others hold the limit); it closes after its transaction');
          slot.lose();
        }
      });
      this.noteOthers(key, result.othersWanting);
    }
  }

  /** A wish lives three renewals: withdrawn explicitly when the waiting ends, or it expires. */
  private wantMs(): number {
    return this.renewEveryMs * 3;
  }

  private noteOthers(key: string, others: number): void {
    const before = this.allowance(key);
    if (others > 0) this.othersWanting.set(key, others);
    else this.othersWanting.delete(key);
    if (this.allowance(key) < before) this.onShareChanged?.(key);
  }

  private track(slot: LeasedSlot): LeasedSlot {
    let set = this.slots.get(slot.key);
    if (!set) {
      set = new Set();
      this.slots.set(slot.key, set);
    }
    set.add(slot);
    return slot;
  }

  /** Called by a slot's release(). */
  forget(slot: LeasedSlot): void {
    const set = this.slots.get(slot.key);
    set?.delete(slot);
    if (set && set.size === 0) this.slots.delete(slot.key);
    if (slot.shared) {
      // A failed release is harmless: the lease expires by itself.
      const p: Promise<void> = within(this.opts.store.release(slot.key, slot.leaseId), this.opts.callTimeoutMs)
        .catch((err: unknown) => this.opts.log.debug({ destination: slot.key, err: (err as Error).message }, 'could not release a shared slot'))
        .finally(() => this.releasing.delete(p));
      this.releasing.add(p);
    }
  }

  private markUnreachable(err: unknown): void {
    if (!this.unreachable) {
      this.opts.log.warn(
        { err: (err as Error).message, limitPerProcess: this.opts.limit },
        'Redis unreachable: the connection limit per destination is enforced per sender only (MOAT_MAX_CONNECTIONS_PER_DESTINATION each) until it is back',
      );
    }
    this.unreachable = true;
    // Nobody's wishes can be read: no sender holds back for another.
    for (const key of [...this.othersWanting.keys()]) this.othersWanting.delete(key);
  }

  private reachable(): void {
    if (this.unreachable) this.opts.log.info('Redis reachable again: the connection limit per destination is shared by all senders again');
    this.unreachable = false;
  }
}
