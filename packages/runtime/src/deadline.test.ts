import { describe, expect, it } from 'vitest';
import { withDeadline } from './deadline.js';

describe('withDeadline', () => {
  it('when the work settles first, then its value or error comes through', async () => {
    await expect(withDeadline(Promise.resolve(7), 1_000, () => new Error('late'))).resolves.toBe(7);
    await expect(withDeadline(Promise.reject(new Error('own')), 1_000, () => new Error('late'))).rejects.toThrow('own');
  });

  it('when the work takes longer than the bound, then the timeout error comes, at the bound', async () => {
    const started = Date.now();
    await expect(withDeadline(new Promise(() => {}), 50, () => new Error('took too long'))).rejects.toThrow('took too long');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });
});
