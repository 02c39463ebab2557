import { describe, expect, it } from 'vitest';
import { ConnectionPool, DestinationBusy, type PoolableConnection } from './connection-pool.js';
import type { ConnectionLimit, Slot } from './shared-limit.js';

class FakeConnection implements PoolableConnection {
  usable = true;
  onEnd: (() => void) | null = null;
  resets = 0;
  quits = 0;
  resetOk = true;
  async reset(): Promise<boolean> {
    this.resets++;
    return this.resetOk;
  }
  async quit(): Promise<void> {
    this.quits++;
    this.usable = false;
  }
  close(): void {
    this.usable = false;
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('ConnectionPool', () => {
  it('when a connection is released as reusable, then the next acquire reuses it after an RSET', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 2, idleMs: 1_000, resetTimeoutMs: 100 });
    let opened = 0;
    const open = async () => {
      opened++;
      return new FakeConnection();
    };
    const a = await pool.acquire('h:25', open);
    expect(a.reused).toBe(false);
    a.release(true);
    const b = await pool.acquire('h:25', open);
    expect(b.reused).toBe(true);
    expect(b.conn).toBe(a.conn);
    expect(b.conn.resets).toBe(1);
    expect(opened).toBe(1);
    b.release(true);
    await pool.close();
    expect(a.conn.quits).toBe(1);
  });

  it('when the limit per destination is reached, then the next acquire waits for a release', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 1, idleMs: 1_000, resetTimeoutMs: 100 });
    const open = async () => new FakeConnection();
    const first = await pool.acquire('h:25', open);
    let second: Awaited<ReturnType<typeof pool.acquire>> | null = null;
    const pending = pool.acquire('h:25', open).then((l) => (second = l));
    await tick();
    expect(second).toBeNull();
    // Another destination is not affected by this one's limit.
    const other = await pool.acquire('other:25', open);
    other.release(true);
    first.release(true);
    await pending;
    expect(second!.conn).toBe(first.conn);
    second!.release(false);
    expect(pool.openCount('h:25')).toBe(0);
    await pool.close();
  });

  it('when a kept connection fails its RSET, then it is dropped and a new one is opened', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 1, idleMs: 1_000, resetTimeoutMs: 100 });
    const open = async () => new FakeConnection();
    const a = await pool.acquire('h:25', open);
    a.conn.resetOk = false;
    a.release(true);
    const b = await pool.acquire('h:25', open);
    expect(b.conn).not.toBe(a.conn);
    expect(b.reused).toBe(false);
    expect(pool.openCount('h:25')).toBe(1);
    b.release(false);
    await pool.close();
  });

  it('when a connection stays idle longer than idleMs, then it is closed with QUIT', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 1, idleMs: 20, resetTimeoutMs: 100 });
    const a = await pool.acquire('h:25', async () => new FakeConnection());
    a.release(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(a.conn.quits).toBe(1);
    expect(pool.openCount('h:25')).toBe(0);
  });

  it('when the server ends an idle connection, then it is forgotten', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 1, idleMs: 1_000, resetTimeoutMs: 100 });
    const a = await pool.acquire('h:25', async () => new FakeConnection());
    a.release(true);
    a.conn.usable = false;
    a.conn.onEnd?.();
    expect(pool.openCount('h:25')).toBe(0);
    await pool.close();
  });

  it('when opening fails, then the slot is freed and the error reaches the caller', async () => {
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 1, idleMs: 1_000, resetTimeoutMs: 100 });
    await expect(pool.acquire('h:25', async () => Promise.reject(new Error('ECONNREFUSED')))).rejects.toThrow('ECONNREFUSED');
    expect(pool.openCount('h:25')).toBe(0);
    const ok = await pool.acquire('h:25', async () => new FakeConnection());
    ok.release(false);
    await pool.close();
  });
});

/** A shared limit whose answers the test controls. */
class FakeLimit implements ConnectionLimit {
  onShareChanged: ((key: string) => void) | null = null;
  free = 1;
  share = 10;
  wanting = new Map<string, boolean>();
  slots: Array<{ lost: boolean; onLost: (() => void) | null; release(): void; released: boolean }> = [];
  async acquire(): Promise<Slot | null> {
    if (this.free <= 0) return null;
    this.free--;
    const slot = {
      lost: false,
      released: false,
      onLost: null as (() => void) | null,
      release: () => {
        if (slot.released) return;
        slot.released = true;
        this.free++;
      },
    };
    this.slots.push(slot);
    return slot;
  }
  allowance(): number {
    return this.share;
  }
  setWanting(key: string, wanting: boolean): void {
    this.wanting.set(key, wanting);
  }
}

describe('ConnectionPool with a shared limit', () => {
  const open = async () => new FakeConnection();

  it('when the shared limit has no free slot, then acquire waits, says it wants one, and gets it when another sender frees it', async () => {
    const limit = new FakeLimit();
    limit.free = 0;
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit, waitMs: 5_000 });
    let got = false;
    const pending = pool.acquire('h:25', open).then((l) => {
      got = true;
      return l;
    });
    await tick();
    expect(got).toBe(false);
    expect(limit.wanting.get('h:25')).toBe(true);
    limit.free = 1;
    const lease = await pending;
    expect(limit.wanting.get('h:25')).toBe(false);
    lease.release(false);
    // Given back once the connection has ended (after its QUIT), not before.
    expect(limit.slots[0]!.released).toBe(false);
    await tick();
    expect(limit.slots[0]!.released).toBe(true);
    await pool.close();
  });

  it('when no slot frees within waitMs, then acquire throws DestinationBusy and nothing was opened', async () => {
    const limit = new FakeLimit();
    limit.free = 0;
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit, waitMs: 60 });
    let opened = 0;
    await expect(pool.acquire('h:25', async () => (opened++, new FakeConnection()))).rejects.toBeInstanceOf(DestinationBusy);
    expect(opened).toBe(0);
    expect(pool.openCount('h:25')).toBe(0);
    expect(limit.wanting.get('h:25')).toBe(false);
    await pool.close();
  });

  it('when opening fails, then the shared slot is given back', async () => {
    const limit = new FakeLimit();
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit });
    await expect(pool.acquire('h:25', async () => Promise.reject(new Error('ECONNREFUSED')))).rejects.toThrow('ECONNREFUSED');
    expect(limit.free).toBe(1);
    await pool.close();
  });

  it('when the fair share shrinks below what is held, then idle connections close at once and busy ones close on release instead of being kept', async () => {
    const limit = new FakeLimit();
    limit.free = 3;
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit });
    const a = await pool.acquire('h:25', open);
    const b = await pool.acquire('h:25', open);
    const c = await pool.acquire('h:25', open);
    a.release(true);
    limit.share = 1;
    limit.onShareChanged?.('h:25');
    expect(a.conn.quits).toBe(1);
    b.release(true);
    expect(b.conn.quits).toBe(1);
    await tick();
    expect(limit.free).toBe(2);
    // Within the share now: kept for reuse.
    c.release(true);
    expect(c.conn.quits).toBe(0);
    expect(pool.openCount('h:25')).toBe(1);
    await pool.close();
  });

  it('when an idle connection loses its slot, then it is closed at once; a busy one is not reused after its transaction', async () => {
    const limit = new FakeLimit();
    limit.free = 2;
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit });
    const a = await pool.acquire('h:25', open);
    const b = await pool.acquire('h:25', open);
    a.release(true);
    for (const slot of limit.slots) {
      slot.lost = true;
      slot.onLost?.();
    }
    expect(a.conn.quits).toBe(1);
    b.release(true);
    expect(b.conn.quits).toBe(1);
    expect(pool.openCount('h:25')).toBe(0);
    await pool.close();
  });
});

describe('ConnectionPool slot release grace', () => {
  it('when a connection closes, then its shared slot goes back only after the grace (the server may not have seen the close yet), or at once when the pool closes', async () => {
    const limit = new FakeLimit();
    limit.free = 2;
    const pool = new ConnectionPool<FakeConnection>({ maxPerDestination: 5, idleMs: 1_000, resetTimeoutMs: 100, shared: limit, slotReleaseGraceMs: 40 });
    const a = await pool.acquire('h:25', async () => new FakeConnection());
    const b = await pool.acquire('h:25', async () => new FakeConnection());
    a.release(false);
    await tick();
    expect(limit.slots[0]!.released).toBe(false);
    await new Promise((r) => setTimeout(r, 60));
    expect(limit.slots[0]!.released).toBe(true);
    b.release(false);
    await tick();
    expect(limit.slots[1]!.released).toBe(false);
    await pool.close();
    expect(limit.slots[1]!.released).toBe(true);
  });
});
