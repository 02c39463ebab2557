import { describe, expect, it } from 'vitest';
import { compare, formatComparison, spread, targets, type ComparedRun } from './compare.js';

function run(system: 'Moat' | 'Postfix', kind: string, deliveredPerSec: number, p99 = 20, cpu: Record<string, number> = { x: 1 }): ComparedRun {
  return { system, kind, size: 4096, messages: 1000, acceptedPerSec: deliveredPerSec * 1.1, deliveredPerSec, p50: 5, p99, cpuMsPerMessage: Object.values(cpu).reduce((a, b) => a + b, 0), cpuBreakdown: cpu, refused: 0, lost: 0, duplicates: 0 };
}

describe('spread', () => {
  it('gives the median of an odd and an even count, and the extremes', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
  });
});

describe('compare', () => {
  const runs = [
    run('Moat', 'saturation', 300, 900, { postgres: 2, ingress: 1 }),
    run('Postfix', 'saturation', 600),
    run('Postfix', 'saturation', 500),
    run('Moat', 'saturation', 320, 1000, { postgres: 4 }),
    run('Moat', 'saturation', 280, 800, { postgres: 3, ingress: 1 }),
    run('Postfix', 'saturation', 700),
    run('Moat', 'paced 200/s', 199, 45),
    run('Postfix', 'paced 200/s', 199, 12),
  ];

  it('groups by kind and size and divides the medians', () => {
    const rows = compare(runs);
    expect(rows.map((r) => r.kind)).toEqual(['saturation', 'paced 200/s']);
    expect(rows[0]!.moat.deliveredPerSec).toEqual({ median: 300, min: 280, max: 320 });
    expect(rows[0]!.postfix.deliveredPerSec).toEqual({ median: 600, min: 500, max: 700 });
    expect(rows[0]!.ratio).toBe(0.5);
    expect(rows[0]!.moat.runs).toBe(3);
  });

  it('averages CPU by process name over the runs, a missing name counting as 0', () => {
    const moat = compare(runs)[0]!.moat;
    expect(moat.cpuBreakdown.postgres).toBeCloseTo(3);
    expect(moat.cpuBreakdown.ingress).toBeCloseTo(2 / 3);
    expect(moat.cpuMsPerMessage).toBeCloseTo((3 + 4 + 4) / 3);
  });

  it('judges both targets of issue 4', () => {
    expect(targets(compare(runs), 'paced 200/s').map((v) => [v.value, v.met])).toEqual([
      ['0.50×', false],
      ['45.0 ms', true],
    ]);
    const faster = runs.map((r) => (r.system === 'Moat' && r.kind === 'saturation' ? { ...r, deliveredPerSec: r.deliveredPerSec * 3 } : r));
    expect(targets(compare(faster), 'paced 200/s')[0]).toMatchObject({ value: '1.50×', met: true });
  });

  it('prints the throughput line with median, spread and ratio', () => {
    const text = formatComparison(compare(runs)).join('\n');
    expect(text).toMatch(/saturation\s+4096\s+300 \(280–320\)\s+600 \(500–700\)\s+0\.50×/);
  });
});
