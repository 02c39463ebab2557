import { describe, expect, it } from 'vitest';
import { bytesPerDelivery, drainStats, usedMemory, verifyExactlyOnce } from './backlog.js';

describe('drainStats', () => {
  it('when arrivals follow the sink coming up, then drain time runs from up to the last one and rates are per second', () => {
    const s = drainStats([10_500, 11_000, 11_200, 12_000, 14_000], 10_000);
    expect(s.delivered).toBe(5);
    expect(s.firstArrivalMs).toBe(500);
    expect(s.drainMs).toBe(4_000);
    expect(s.averagePerSec).toBeCloseTo(1.25);
    expect(s.flowingPerSec).toBeCloseTo(5 / 3.5);
    expect(s.peakPerSec).toBe(3);
    expect(s.p90Ms).toBe(4_000);
    expect(drainStats([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], 0).p90Ms).toBe(9);
  });
  it('when arrivals happened before the sink came up, then they do not count', () => {
    expect(drainStats([1, 2], 10).delivered).toBe(0);
  });
});

describe('Redis memory per delivery', () => {
  it('when INFO memory is read, then used_memory is the byte count, and growth is divided by the queued deliveries', () => {
    const info = '# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n';
    expect(usedMemory(info)).toBe(1_048_576);
    expect(bytesPerDelivery(1_000_000, 1_200_000, 1_000)).toBe(200);
    expect(bytesPerDelivery(1, 2, 0)).toBeNaN();
  });
});

describe('verifyExactlyOnce', () => {
  it('when a message is missing or arrived twice, then it is reported as lost or duplicated', () => {
    const arrivals = new Map([
      ['a', { benchId: 'a', rcpts: 3 }],
      ['b', { benchId: 'b', rcpts: 6 }],
    ]);
    expect(verifyExactlyOnce(['a', 'b', 'c'], arrivals, 3)).toEqual({ lost: ['c'], duplicated: ['b'] });
  });
});
