import { describe, expect, it } from 'vitest';
import { ConnectionPool, type PoolableConnection } from './connection-pool.js';

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
