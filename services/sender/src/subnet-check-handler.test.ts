import { describe, expect, it } from 'vitest';
import { sourceProblem } from './subnet-check-handler.js';

describe('sourceProblem', () => {
  const pool = { source: 'pool' as const, pool: 'a', cidrs: ['192.0.2.0/24', '2001:db8:1::/48'] };
  const outsider = { source: 'outsider' as const, pool: null, cidrs: ['192.0.2.0/24', '198.51.100.0/24'] };

  it('when a pool sender’s address lies in the pool’s ranges, then probes may go', () => {
    expect(sourceProblem(pool, '192.0.2.10')).toBeNull();
    expect(sourceProblem(pool, '2001:db8:1::25')).toBeNull();
  });

  it('when a pool sender has no source address or one outside the ranges, then the problem names the fix', () => {
    expect(sourceProblem(pool, undefined)).toContain('has no MOAT_SOURCE_IP');
    expect(sourceProblem(pool, '203.0.113.5')).toBe("this sender's source address 203.0.113.5 is not in pool a's ranges (192.0.2.0/24, 2001:db8:1::/48): fix MOAT_SENDERS or the pool's ranges");
  });

  it('when the outsider address lies in no published range, then it may probe; inside one, it is no outsider', () => {
    expect(sourceProblem(outsider, '203.0.113.9')).toBeNull();
    expect(sourceProblem(outsider, '198.51.100.3')).toContain('lies in the published range 198.51.100.0/24');
    expect(sourceProblem(outsider, undefined)).toContain('MOAT_SUBNET_CHECK_OUTSIDER_ADDRESS');
  });
});
