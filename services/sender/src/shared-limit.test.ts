import { describe, expect, it } from 'vitest';
import type { ClaimResult } from '@moat/runtime';
import { silentLog } from '@moat/testkit';
import { fairShare, SharedConnectionLimit, slotPollDelayMs, type SlotStore } from './shared-limit.js';

describe('fairShare', () => {
  it('when nobody else waits, then this sender may use the whole limit', () => {
    expect(fairShare(10, 0)).toBe(10);
  });
  it('when others wait, then the limit is split equally, rounded up, never below one', () => {
    expect(fairShare(10, 1)).toBe(5);
    expect(fairShare(10, 2)).toBe(4);
    expect(fairShare(3, 5)).toBe(1);
  });
});

describe('slotPollDelayMs', () => {
  it('when refusals repeat, then the pause doubles from 25 ms up to 400 ms, jittered between half and all of it', () => {
    expect(slotPollDelayMs(0, 0.999)).toBe(25);
    expect(slotPollDelayMs(0, 0)).toBe(13);
    expect(slotPollDelayMs(2, 0.999)).toBe(100);
    expect(slotPollDelayMs(10, 0.999)).toBe(400);
    expect(slotPollDelayMs(10, 0)).toBe(200);
  });
});

/** A store that answers what the test says; it records what it was asked. */
class ScriptedStore implements SlotStore {
  calls: Array<{ leaseIds: readonly string[]; want: string }> = [];
  released: string[] = [];
  answer: (leaseIds: readonly string[]) => ClaimResult | Error = (ids) => ({ granted: ids.map(() => true), othersWanting: 0 });
  async claim(opts: { leaseIds: readonly string[]; want: string }): Promise<ClaimResult> {
    this.calls.push({ leaseIds: opts.leaseIds, want: opts.want });
    const a = this.answer(opts.leaseIds);
    if (a instanceof Error) throw a;
    return a;
  }
  async release(_destination: string, leaseId: string): Promise<void> {
    this.released.push(leaseId);
  }
}

const limitOn = (store: SlotStore) => new SharedConnectionLimit({ store, senderId: 's1', limit: 4, leaseMs: 3_000, callTimeoutMs: 200, log: silentLog });

describe('SharedConnectionLimit', () => {
  it('when Redis refuses, then acquire answers null (wait), and registers the wish only on refusal', async () => {
    const store = new ScriptedStore();
    store.answer = () => ({ granted: [false], othersWanting: 0 });
    expect(await limitOn(store).acquire('h:25')).toBeNull();
    expect(store.calls[0]!.want).toBe('want-if-refused');
  });

  it('when another sender waits, then the allowance shrinks to the fair share and the pool is told', async () => {
    const store = new ScriptedStore();
    const limit = limitOn(store);
    const changed: string[] = [];
    limit.onShareChanged = (key) => changed.push(key);
    store.answer = (ids) => ({ granted: ids.map(() => true), othersWanting: 1 });
    const slot = await limit.acquire('h:25');
    expect(slot).not.toBeNull();
    expect(limit.allowance('h:25')).toBe(2);
    expect(changed).toEqual(['h:25']);
    slot!.release();
    await limit.stop();
    expect(store.released).toHaveLength(1);
  });

  it('when Redis is unreachable, then acquire still grants (per-process limit) without asking Redis again, and the renewal takes a real lease once Redis is back', async () => {
    const store = new ScriptedStore();
    store.answer = () => new Error('connect ECONNREFUSED');
    const limit = limitOn(store);
    const a = await limit.acquire('h:25');
    const b = await limit.acquire('h:25');
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(store.calls).toHaveLength(1);
    store.answer = (ids) => ({ granted: ids.map(() => true), othersWanting: 0 });
    await limit.renew();
    expect(store.calls.at(-1)!.leaseIds).toHaveLength(2);
    expect(a!.lost).toBe(false);
    // Shared now: releasing gives the lease back in Redis.
    a!.release();
    await limit.stop();
    expect(store.released).toHaveLength(1);
  });

  it('when a renewal finds the slot taken by others, then the slot is lost and its holder is told', async () => {
    const store = new ScriptedStore();
    const limit = limitOn(store);
    const slot = await limit.acquire('h:25');
    let told = false;
    slot!.onLost = () => (told = true);
    store.answer = (ids) => ({ granted: ids.map(() => false), othersWanting: 0 });
    await limit.renew();
    expect(slot!.lost).toBe(true);
    expect(told).toBe(true);
  });

  it('when the pool has waiters, then the renewal keeps the wish alive; when they are gone, it withdraws it once', async () => {
    const store = new ScriptedStore();
    const limit = limitOn(store);
    limit.setWanting('h:25', true);
    await limit.renew();
    expect(store.calls.at(-1)!.want).toBe('want');
    limit.setWanting('h:25', false);
    await limit.renew();
    expect(store.calls.at(-1)!.want).toBe('clear');
    const n = store.calls.length;
    await limit.renew();
    expect(store.calls).toHaveLength(n);
  });
});
