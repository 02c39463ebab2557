import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './micro-batcher.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MicroBatcher', () => {
  it('when items have weights, then a batch stops before it would pass maxWeight (an overweight item goes alone)', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new MicroBatcher<number>({
      maxItems: 10,
      maxDelayMs: 0,
      weigh: (n) => n,
      maxWeight: 10,
      write: async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate;
      },
    });
    // The first item is written at once; the rest queue behind it and are split by weight.
    const all = Promise.all([b.add(1), b.add(4), b.add(5), b.add(2), b.add(30), b.add(3)]);
    await tick(5);
    release();
    await all;
    expect(batches).toEqual([[1], [4, 5], [2], [30], [3]]);
    await b.close();
  });

  it('when maxItems items arrive, then they are written as one batch without waiting for the delay', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number>({ maxItems: 3, maxDelayMs: 10_000, write: async (items) => void batches.push(items) });
    await Promise.all([b.add(1), b.add(2), b.add(3)]);
    expect(batches).toEqual([[1, 2, 3]]);
    await b.close();
  });

  it('when fewer items arrive, then they are written after maxDelayMs', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number>({ maxItems: 100, maxDelayMs: 20, write: async (items) => void batches.push(items) });
    const started = Date.now();
    await Promise.all([b.add(1), b.add(2)]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    expect(batches).toEqual([[1, 2]]);
    await b.close();
  });

  it('when items arrive during a write, then they form the next batch as soon as it finishes', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new MicroBatcher<number>({
      maxItems: 2,
      maxDelayMs: 10_000,
      write: async (items) => {
        batches.push(items);
        if (batches.length === 1) await gate;
      },
    });
    const first = Promise.all([b.add(1), b.add(2)]);
    await tick(5);
    const second = b.add(3);
    await tick(5);
    expect(batches).toEqual([[1, 2]]);
    release();
    await Promise.all([first, second]);
    expect(batches).toEqual([[1, 2], [3]]);
    await b.close();
  });

  it('when a batch write fails, then every waiting caller is rejected', async () => {
    const b = new MicroBatcher<number>({ maxItems: 2, maxDelayMs: 5, write: async () => Promise.reject(new Error('db down')) });
    const results = await Promise.allSettled([b.add(1), b.add(2)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await b.close();
  });

  it('when a batch fails on bad data, then each item is retried alone and only the bad one is rejected', async () => {
    const writes: number[][] = [];
    const b = new MicroBatcher<number>({
      maxItems: 3,
      maxDelayMs: 5,
      isolateOn: (err) => (err as Error).message === 'bad data',
      write: async (items) => {
        writes.push(items);
        if (items.includes(2)) throw new Error('bad data');
      },
    });
    const results = await Promise.allSettled([b.add(1), b.add(2), b.add(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(writes).toEqual([[1, 2, 3], [1], [2], [3]]);
    await b.close();
  });

  it('when closed, then pending items are written before close resolves', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number>({ maxItems: 100, maxDelayMs: 60_000, write: async (items) => void batches.push(items) });
    const pending = b.add(7);
    await b.close();
    await pending;
    expect(batches).toEqual([[7]]);
  });
});
