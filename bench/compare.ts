/**
 * The side-by-side summary of `pnpm bench --vs-postfix`: runs of both systems grouped by kind
 * and size, throughput as median and spread, the ratio of the medians, and the two targets of
 * issue 4. Pure: no processes, no clock.
 */

export type SystemName = 'Moat' | 'Postfix';

export interface ComparedRun {
  system: SystemName;
  /** "saturation" or "paced 200/s". */
  kind: string;
  size: number;
  messages: number;
  /** 250s per second while the client was sending. */
  acceptedPerSec: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  cpuMsPerMessage: number;
  /** CPU ms per delivered message by process name. */
  cpuBreakdown: Record<string, number>;
  refused: number;
  lost: number;
  duplicates: number;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN };
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]! };
}

export interface SystemFigures {
  runs: number;
  acceptedPerSec: Spread;
  deliveredPerSec: Spread;
  p50: Spread;
  p99: Spread;
  /** Mean over the runs, total and by process name. */
  cpuMsPerMessage: number;
  cpuBreakdown: Record<string, number>;
  refused: number;
  lost: number;
  duplicates: number;
}

export interface ComparisonRow {
  kind: string;
  size: number;
  moat: SystemFigures;
  postfix: SystemFigures;
  /** Moat's median delivered msg/s over Postfix's. */
  ratio: number;
}

function figures(runs: ComparedRun[]): SystemFigures {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const names = new Set(runs.flatMap((r) => Object.keys(r.cpuBreakdown)));
  return {
    runs: runs.length,
    acceptedPerSec: spread(runs.map((r) => r.acceptedPerSec)),
    deliveredPerSec: spread(runs.map((r) => r.deliveredPerSec)),
    p50: spread(runs.map((r) => r.p50)),
    p99: spread(runs.map((r) => r.p99)),
    cpuMsPerMessage: mean(runs.map((r) => r.cpuMsPerMessage)),
    cpuBreakdown: Object.fromEntries([...names].map((n) => [n, mean(runs.map((r) => r.cpuBreakdown[n] ?? 0))])),
    refused: runs.reduce((a, r) => a + r.refused, 0),
    lost: runs.reduce((a, r) => a + r.lost, 0),
    duplicates: runs.reduce((a, r) => a + r.duplicates, 0),
  };
}

/** One row per kind and size, in the order they were first run. */
export function compare(runs: ComparedRun[]): ComparisonRow[] {
  const keys: string[] = [];
  for (const r of runs) if (!keys.includes(`${r.kind}|${r.size}`)) keys.push(`${r.kind}|${r.size}`);
  return keys.map((key) => {
    const of = (system: SystemName) => runs.filter((r) => `${r.kind}|${r.size}` === key && r.system === system);
    const [kind, size] = key.split('|') as [string, string];
    const moat = figures(of('Moat'));
    const postfix = figures(of('Postfix'));
    return { kind, size: Number(size), moat, postfix, ratio: moat.deliveredPerSec.median / postfix.deliveredPerSec.median };
  });
}

export interface TargetVerdict {
  what: string;
  value: string;
  met: boolean;
}

/** Issue 4's targets: ≥ 1.0× Postfix delivered msg/s at 4 KiB; p99 ≤ 50 ms at a paced 200 msg/s. */
export function targets(rows: ComparisonRow[], pacedKind: string): TargetVerdict[] {
  const throughput = rows.find((r) => r.kind === 'saturation' && r.size === 4096);
  const paced = rows.find((r) => r.kind === pacedKind && r.size === 4096);
  const out: TargetVerdict[] = [];
  if (throughput) out.push({ what: 'Moat/Postfix delivered msg/s at 4 KiB ≥ 1.0×', value: `${throughput.ratio.toFixed(2)}×`, met: throughput.ratio >= 1 });
  if (paced) out.push({ what: `Moat p99 ≤ 50 ms at ${pacedKind} (median of the runs' p99)`, value: `${paced.moat.p99.median.toFixed(1)} ms`, met: paced.moat.p99.median <= 50 });
  return out;
}

const fmt = (s: Spread, digits = 0) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

/** The table printed at the end of the run and pasted into the README. */
export function formatComparison(rows: ComparisonRow[]): string[] {
  const byCpu = (b: Record<string, number>) =>
    Object.entries(b)
      .filter(([, v]) => v >= 0.005)
      .sort((x, y) => y[1] - x[1])
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ');
  return [
    'delivered msg/s: median (min–max) over the runs',
    'run                size   Moat               Postfix            Moat/Postfix',
    ...rows.map((r) => `${r.kind.padEnd(18)} ${String(r.size).padStart(6)}   ${fmt(r.moat.deliveredPerSec).padEnd(18)} ${fmt(r.postfix.deliveredPerSec).padEnd(18)} ${r.ratio.toFixed(2)}×`),
    '',
    'accepted msg/s (250s per second while the client sent): median (min–max)',
    'run                size   Moat               Postfix',
    ...rows.map((r) => `${r.kind.padEnd(18)} ${String(r.size).padStart(6)}   ${fmt(r.moat.acceptedPerSec).padEnd(18)} ${fmt(r.postfix.acceptedPerSec)}`),
    '',
    'end-to-end latency ms (sink arrival − send start): median of the runs’ p50, p99 median (min–max)',
    'run                size   Moat p50  Moat p99             Postfix p50  Postfix p99',
    ...rows.map(
      (r) =>
        `${r.kind.padEnd(18)} ${String(r.size).padStart(6)}   ${r.moat.p50.median.toFixed(1).padStart(8)}  ${fmt(r.moat.p99, 1).padEnd(20)} ${r.postfix.p50.median.toFixed(1).padStart(11)}  ${fmt(r.postfix.p99, 1)}`,
    ),
    '',
    'CPU ms per delivered message, all of each system’s processes (mean over the runs)',
    'run                size     Moat  Postfix',
    ...rows.map((r) => `${r.kind.padEnd(18)} ${String(r.size).padStart(6)} ${r.moat.cpuMsPerMessage.toFixed(2).padStart(8)} ${r.postfix.cpuMsPerMessage.toFixed(2).padStart(8)}`),
    ...rows.flatMap((r) => [`  ${r.kind} ${r.size} Moat:    ${byCpu(r.moat.cpuBreakdown)}`, `  ${r.kind} ${r.size} Postfix: ${byCpu(r.postfix.cpuBreakdown)}`]),
    '',
    'refused / lost / duplicated, all runs: ' +
      rows.map((r) => `${r.kind} ${r.size} Moat ${r.moat.refused}/${r.moat.lost}/${r.moat.duplicates}, Postfix ${r.postfix.refused}/${r.postfix.lost}/${r.postfix.duplicates}`).join('; '),
  ];
}
